//! Template strings and the closed list of variables they may use.
//!
//! Syntax: `{{ name }}` is replaced by the variable's value (spaces inside the braces are
//! optional). `{{` and `}}` are reserved everywhere in a template string; to write them
//! literally, quote them in a placeholder: `{{"{{"}}` gives `{{`, `{{"}}"}}` gives `}}`.
//! Reserving both makes a typo such as `{person.mail}}` an error at save time instead of text
//! on a thousand devices. Values are inserted once and never parsed again, so a directory
//! value that happens to contain `{{device.serial}}` stays literal text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A variable a template string may use.
///
/// The list is closed: a template that names anything else is refused when it is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Variable {
    /// `person.username`: the directory `uid`.
    PersonUsername,
    /// `person.mail`: the directory mail address.
    PersonMail,
    /// `person.given_name`.
    PersonGivenName,
    /// `person.family_name`.
    PersonFamilyName,
    /// `person.external_id`: the directory `entryUUID` (lower-case, hyphenated).
    PersonExternalId,
    /// `person.class`: the person's class at the device's school (the caller picks one).
    PersonClass,
    /// `device.serial`: the hardware serial number.
    DeviceSerial,
    /// `device.udid`: Apple's UDID, or the Windows device id.
    DeviceUdid,
    /// `device.name`: the device name in the inventory.
    DeviceName,
    /// `device.asset_tag`: the school board's inventory number.
    DeviceAssetTag,
    /// `device.model`: the model identifier, for example `iPad13,18`.
    DeviceModel,
    /// `school.name`: the school's display name.
    SchoolName,
    /// `school.code`: the school's short code (the UCS@school OU name).
    SchoolCode,
}

/// Which part of the context a variable comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableSource {
    /// The person the device is lent to.
    Person,
    /// The device.
    Device,
    /// The device's school.
    School,
}

impl Variable {
    /// Every variable, in documentation order.
    pub const ALL: [Self; 13] = [
        Self::PersonUsername,
        Self::PersonMail,
        Self::PersonGivenName,
        Self::PersonFamilyName,
        Self::PersonExternalId,
        Self::PersonClass,
        Self::DeviceSerial,
        Self::DeviceUdid,
        Self::DeviceName,
        Self::DeviceAssetTag,
        Self::DeviceModel,
        Self::SchoolName,
        Self::SchoolCode,
    ];

    /// The name used in placeholders.
    pub fn name(self) -> &'static str {
        match self {
            Self::PersonUsername => "person.username",
            Self::PersonMail => "person.mail",
            Self::PersonGivenName => "person.given_name",
            Self::PersonFamilyName => "person.family_name",
            Self::PersonExternalId => "person.external_id",
            Self::PersonClass => "person.class",
            Self::DeviceSerial => "device.serial",
            Self::DeviceUdid => "device.udid",
            Self::DeviceName => "device.name",
            Self::DeviceAssetTag => "device.asset_tag",
            Self::DeviceModel => "device.model",
            Self::SchoolName => "school.name",
            Self::SchoolCode => "school.code",
        }
    }

    /// Where the value comes from.
    pub fn source(self) -> VariableSource {
        match self {
            Self::PersonUsername
            | Self::PersonMail
            | Self::PersonGivenName
            | Self::PersonFamilyName
            | Self::PersonExternalId
            | Self::PersonClass => VariableSource::Person,
            Self::DeviceSerial
            | Self::DeviceUdid
            | Self::DeviceName
            | Self::DeviceAssetTag
            | Self::DeviceModel => VariableSource::Device,
            Self::SchoolName | Self::SchoolCode => VariableSource::School,
        }
    }

    /// Every variable name, comma-separated, for error messages.
    pub(crate) fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text is not a known variable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variable {0:?}")]
pub struct UnknownVariable(pub String);

impl FromStr for Variable {
    type Err = UnknownVariable;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|variable| variable.name() == name)
            .ok_or_else(|| UnknownVariable(name.to_owned()))
    }
}

impl TryFrom<String> for Variable {
    type Error = UnknownVariable;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<Variable> for &'static str {
    fn from(variable: Variable) -> Self {
        variable.name()
    }
}

/// A string of a template that may contain `{{placeholders}}`.
///
/// It is stored as written; syntax and variables are checked by
/// [`ProfileTemplate::validate`](super::ProfileTemplate::validate), so that the error can name
/// the field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    /// Wraps template text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Splits the text into literal parts and variables.
    pub(crate) fn parse(&self) -> Result<Vec<Segment<'_>>, TextError> {
        parse(&self.0)
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// A piece of a parsed template string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    Literal(&'a str),
    Variable(Variable),
}

/// What is wrong with a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TextError {
    Malformed { offset: usize, reason: String },
    Unknown(String),
    ControlCharacter,
}

/// XML 1.0, and with it both plists and SyncML, cannot carry C0 control characters other than
/// tab, line feed and carriage return.
pub(crate) fn has_control_character(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

fn malformed(offset: usize, reason: impl Into<String>) -> TextError {
    TextError::Malformed {
        offset,
        reason: reason.into(),
    }
}

fn parse(text: &str) -> Result<Vec<Segment<'_>>, TextError> {
    if has_control_character(text) {
        return Err(TextError::ControlCharacter);
    }
    let mut segments = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    loop {
        let open = rest.find("{{");
        let close = rest.find("}}");
        let Some(open) = open.filter(|&open| close.is_none_or(|close| open < close)) else {
            if let Some(close) = close {
                return Err(malformed(
                    offset + close,
                    r#"unmatched "}}"; write {{"}}"}} for literal braces"#,
                ));
            }
            if !rest.is_empty() {
                segments.push(Segment::Literal(rest));
            }
            return Ok(segments);
        };
        if open > 0 {
            segments.push(Segment::Literal(&rest[..open]));
        }
        let inner = &rest[open + 2..];
        let body = inner.trim_start();
        let consumed = if let Some(quoted) = body.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(|| {
                malformed(offset + open, "string literal without its closing quote")
            })?;
            let after = &quoted[end + 1..];
            let tail = after.trim_start();
            if !tail.starts_with("}}") {
                return Err(malformed(
                    offset + open,
                    r#"expected "}}" after the string literal"#,
                ));
            }
            if end > 0 {
                segments.push(Segment::Literal(&quoted[..end]));
            }
            // Everything up to and including the closing braces.
            rest.len() - tail.len() + 2
        } else {
            let end = inner
                .find("}}")
                .ok_or_else(|| malformed(offset + open, r#""{{" without a closing "}}""#))?;
            let name = inner[..end].trim();
            if name.is_empty() {
                return Err(malformed(offset + open, "empty placeholder"));
            }
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
            {
                return Err(malformed(
                    offset + open,
                    format!("{name:?} is not a variable name"),
                ));
            }
            let variable = name
                .parse::<Variable>()
                .map_err(|UnknownVariable(name)| TextError::Unknown(name))?;
            segments.push(Segment::Variable(variable));
            open + 2 + end + 2
        };
        rest = &rest[consumed..];
        offset += consumed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(text: &str) -> Vec<Segment<'_>> {
        parse(text).unwrap()
    }

    #[test]
    fn placeholders_split_literal_text() {
        assert_eq!(
            segments("WLAN-{{school.code}}/{{ person.username }}"),
            [
                Segment::Literal("WLAN-"),
                Segment::Variable(Variable::SchoolCode),
                Segment::Literal("/"),
                Segment::Variable(Variable::PersonUsername),
            ]
        );
        assert_eq!(segments(""), []);
        assert_eq!(
            segments("{single} braces"),
            [Segment::Literal("{single} braces")]
        );
    }

    #[test]
    fn quoted_literals_write_reserved_braces() {
        assert_eq!(
            segments(r#"a{{"{{"}}b{{ "}}" }}c"#),
            [
                Segment::Literal("a"),
                Segment::Literal("{{"),
                Segment::Literal("b"),
                Segment::Literal("}}"),
                Segment::Literal("c"),
            ]
        );
    }

    #[test]
    fn malformed_placeholders_name_their_offset() {
        let cases = [
            ("abc {{person.mail", 4),
            ("x }} y", 2),
            ("{person.mail}}", 12),
            ("ok {{  }}", 3),
            ("{{person mail}}", 0),
            (r#"{{"open}}"#, 0),
            (r#"{{"a" b}}"#, 0),
            ("{{{person.mail}}}", 0),
        ];
        for (text, expected) in cases {
            match parse(text) {
                Err(TextError::Malformed { offset, .. }) => {
                    assert_eq!(offset, expected, "{text:?}");
                }
                other => panic!("{text:?}: expected a malformed placeholder, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_names_and_control_characters_are_refused() {
        assert_eq!(
            parse("{{person.password}}"),
            Err(TextError::Unknown("person.password".to_owned()))
        );
        assert_eq!(
            parse("{{Person.Mail}}"),
            Err(TextError::Unknown("Person.Mail".to_owned()))
        );
        assert_eq!(parse("bell\u{7}"), Err(TextError::ControlCharacter));
        assert!(parse("tab\tand\nnewline").is_ok());
    }

    #[test]
    fn every_variable_round_trips_through_its_name() {
        for variable in Variable::ALL {
            assert_eq!(variable.name().parse::<Variable>(), Ok(variable));
            let json = serde_json::to_string(&variable).unwrap();
            assert_eq!(json, format!("{:?}", variable.name()));
            assert_eq!(serde_json::from_str::<Variable>(&json).unwrap(), variable);
        }
    }
}
