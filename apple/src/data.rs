//! Plumbing shared by the message types: `<data>` fields and the plist dictionary helpers
//! that keep unmodelled keys.

use std::io::Cursor;

use plist::{Dictionary, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AppleError;

/// Serde for `<data>` fields held as `Vec<u8>`: serde's default for `Vec<u8>` is a sequence,
/// which the plist format would write as an array of integers.
pub(crate) mod bytes {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    pub(crate) struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("data")
        }

        fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<Vec<u8>, E> {
            Ok(value.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, value: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(value)
        }

        // JSON (and other self-describing formats without a bytes type) write bytes as a
        // sequence of numbers; accept that so the types also round-trip through JSON.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(byte) = seq.next_element::<u8>()? {
                out.push(byte);
            }
            Ok(out)
        }
    }

    /// The same for `Option<Vec<u8>>`.
    pub(crate) mod option {
        use serde::de::{self, Visitor};
        use serde::{Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            value: &Option<Vec<u8>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(bytes) => serializer.serialize_some(&Wrapper(bytes)),
                None => serializer.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Vec<u8>>, D::Error> {
            deserializer.deserialize_option(OptionVisitor)
        }

        struct Wrapper<'a>(&'a [u8]);

        impl serde::Serialize for Wrapper<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }

        struct OptionVisitor;

        impl<'de> Visitor<'de> for OptionVisitor {
            type Value = Option<Vec<u8>>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("optional data")
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Self::Value, D::Error> {
                super::deserialize(deserializer).map(Some)
            }
        }
    }
}

/// Reads a plist body (XML or binary) whose root must be a dictionary.
pub(crate) fn read_dictionary(body: &[u8]) -> Result<Dictionary, AppleError> {
    let value = Value::from_reader(Cursor::new(body))
        .map_err(|error| AppleError::MalformedPlist(error.to_string()))?;
    value.into_dictionary().ok_or(AppleError::NotADictionary)
}

/// Reads a string-valued key that decides how the rest is parsed (`MessageType`, `Status`).
pub(crate) fn discriminator<'a>(
    dict: &'a Dictionary,
    key: &str,
    missing: AppleError,
) -> Result<&'a str, AppleError> {
    match dict.get(key) {
        None => Err(missing),
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(AppleError::invalid(key, "not a string")),
    }
}

/// Decodes the typed part of a message and keeps every other key (except `skip`) as `extra`.
///
/// The known keys are whatever the typed value serialises to, so the split stays right when a
/// field is added to a message type.
pub(crate) fn decode_with_extra<T: Serialize + DeserializeOwned>(
    context: &str,
    dict: Dictionary,
    skip: &[&str],
) -> Result<(T, Dictionary), AppleError> {
    let value = Value::Dictionary(dict);
    let typed: T = plist::from_value(&value)
        .map_err(|error| AppleError::invalid(context, describe(&error)))?;
    let known = known_keys(&typed)?;
    let extra = value
        .into_dictionary()
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| !known.contains_key(key) && !skip.contains(&key.as_str()))
        .collect();
    Ok((typed, extra))
}

/// plist's `Display` prints its error kind with `Debug` (`Serde("missing field `Token`")`);
/// the serde message inside is the part worth logging.
fn describe(error: &plist::Error) -> String {
    let text = error.to_string();
    match text
        .strip_prefix("Serde(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
    {
        Some(inner) => inner.replace("\\\"", "\""),
        None => text,
    }
}

fn known_keys<T: Serialize>(typed: &T) -> Result<Dictionary, AppleError> {
    plist::to_value(typed)
        .map_err(|error| AppleError::invalid("message", error))?
        .into_dictionary()
        .ok_or(AppleError::NotADictionary)
}

/// Serialises a message: `first` keys, then the typed fields, then the kept extra keys.
pub(crate) fn encode_with_extra<T: Serialize>(
    first: &[(&str, Value)],
    typed: &T,
    extra: &Dictionary,
) -> Vec<u8> {
    let mut out = Dictionary::new();
    for (key, value) in first {
        out.insert((*key).to_owned(), value.clone());
    }
    // The message types contain only strings, booleans, integers, data and plist values, all
    // of which the plist serialiser accepts, so this cannot fail.
    let fields = plist::to_value(typed)
        .expect("message types always serialise to a plist dictionary")
        .into_dictionary()
        .unwrap_or_default();
    for (key, value) in fields {
        out.insert(key, value);
    }
    for (key, value) in extra {
        if !out.contains_key(key) {
            out.insert(key.clone(), value.clone());
        }
    }
    let mut bytes = Vec::new();
    Value::Dictionary(out)
        .to_writer_xml(&mut bytes)
        .expect("writing a plist into memory cannot fail");
    bytes.push(b'\n');
    bytes
}
