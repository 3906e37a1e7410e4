//! The `Configuration` envelope and stable identifier derivation.

use std::collections::{HashMap, HashSet};

use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ProfileError;
use super::payload::Payload;

/// The namespace in which profile and payload UUIDs are derived (UUID v5).
///
/// Use one namespace per organisation and never change it: a different namespace gives every
/// profile new UUIDs, and devices would then install the next version beside the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProfileNamespace(Uuid);

impl ProfileNamespace {
    /// Wraps a namespace UUID chosen by the operator.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// Derives the namespace from the organisation's DNS name (UUID v5 in the DNS namespace),
    /// so that it can be recomputed from configuration rather than stored.
    pub fn from_dns_name(name: &str) -> Self {
        Self(Uuid::new_v5(&Uuid::NAMESPACE_DNS, name.as_bytes()))
    }

    /// The namespace UUID itself.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The stable UUID of a profile or payload identifier.
    pub fn uuid_for(&self, identifier: &str) -> Uuid {
        Uuid::new_v5(&self.0, identifier.as_bytes())
    }
}

/// `PayloadScope` of a profile (macOS only; iOS ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayloadScope {
    /// Installed for the whole machine.
    System,
    /// Installed for the user whose channel receives it.
    User,
}

impl PayloadScope {
    fn as_str(self) -> &'static str {
        match self {
            Self::System => "System",
            Self::User => "User",
        }
    }
}

/// One payload of a profile, under a key that is unique within the profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadEntry {
    /// Short name, unique in the profile; becomes the last component of the payload's
    /// identifier and is how other payloads refer to this one.
    pub key: String,
    /// `PayloadDisplayName`; a name derived from the payload is used when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `PayloadDescription`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The payload itself.
    pub payload: Payload,
}

/// A configuration profile (`PayloadType` `Configuration`, `PayloadVersion` 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Namespace for the derived UUIDs.
    pub namespace: ProfileNamespace,
    /// `PayloadIdentifier`, reverse-DNS style; decides whether the device replaces or adds.
    pub identifier: String,
    /// `PayloadDisplayName`.
    pub display_name: String,
    /// `PayloadOrganization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// `PayloadDescription`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `PayloadRemovalDisallowed` (honoured on supervised devices only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_disallowed: Option<bool>,
    /// `PayloadScope` (macOS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<PayloadScope>,
    /// The payloads, in the order they are rendered.
    pub payloads: Vec<PayloadEntry>,
}

impl Profile {
    /// Starts an empty profile.
    pub fn new(
        namespace: ProfileNamespace,
        identifier: impl Into<String>,
        display_name: impl Into<String>,
    ) -> Self {
        Self {
            namespace,
            identifier: identifier.into(),
            display_name: display_name.into(),
            organization: None,
            description: None,
            removal_disallowed: None,
            scope: None,
            payloads: Vec::new(),
        }
    }

    /// Sets `PayloadOrganization`.
    #[must_use]
    pub fn organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }

    /// Sets `PayloadDescription`.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets `PayloadRemovalDisallowed`.
    #[must_use]
    pub fn removal_disallowed(mut self, disallowed: bool) -> Self {
        self.removal_disallowed = Some(disallowed);
        self
    }

    /// Sets `PayloadScope`.
    #[must_use]
    pub fn scope(mut self, scope: PayloadScope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Appends a payload under `key` with a derived display name.
    #[must_use]
    pub fn with_payload(mut self, key: impl Into<String>, payload: impl Into<Payload>) -> Self {
        self.payloads.push(PayloadEntry {
            key: key.into(),
            display_name: None,
            description: None,
            payload: payload.into(),
        });
        self
    }

    /// Appends a payload under `key` with an explicit display name.
    #[must_use]
    pub fn with_named_payload(
        mut self,
        key: impl Into<String>,
        display_name: impl Into<String>,
        payload: impl Into<Payload>,
    ) -> Self {
        self.payloads.push(PayloadEntry {
            key: key.into(),
            display_name: Some(display_name.into()),
            description: None,
            payload: payload.into(),
        });
        self
    }

    /// The profile's `PayloadUUID`.
    pub fn uuid(&self) -> Uuid {
        self.namespace.uuid_for(&self.identifier)
    }

    /// The `PayloadIdentifier` of the payload stored under `key`.
    pub fn payload_identifier(&self, key: &str) -> String {
        format!("{}.{}", self.identifier, key)
    }

    /// The `PayloadUUID` of the payload stored under `key`.
    pub fn payload_uuid(&self, key: &str) -> Uuid {
        self.namespace.uuid_for(&self.payload_identifier(key))
    }

    /// Validates the profile and renders it as a plist dictionary.
    pub fn to_dictionary(&self) -> Result<Dictionary, ProfileError> {
        check_identifier(&self.identifier)?;
        let resolver = Resolver::new(self)?;

        let mut content = Vec::with_capacity(self.payloads.len());
        for entry in &self.payloads {
            let mut dict = Dictionary::new();
            dict.insert("PayloadType".into(), entry.payload.payload_type().into());
            dict.insert("PayloadVersion".into(), Value::Integer(1.into()));
            dict.insert(
                "PayloadIdentifier".into(),
                self.payload_identifier(&entry.key).into(),
            );
            dict.insert(
                "PayloadUUID".into(),
                format_uuid(self.payload_uuid(&entry.key)).into(),
            );
            let display_name = entry
                .display_name
                .clone()
                .unwrap_or_else(|| entry.payload.default_display_name());
            dict.insert("PayloadDisplayName".into(), display_name.into());
            if let Some(description) = &entry.description {
                dict.insert("PayloadDescription".into(), description.clone().into());
            }
            if let Some(organization) = &self.organization {
                dict.insert("PayloadOrganization".into(), organization.clone().into());
            }
            entry.payload.write_keys(&entry.key, &resolver, &mut dict)?;
            content.push(Value::Dictionary(dict));
        }

        let mut top = Dictionary::new();
        top.insert("PayloadType".into(), "Configuration".into());
        top.insert("PayloadVersion".into(), Value::Integer(1.into()));
        top.insert("PayloadIdentifier".into(), self.identifier.clone().into());
        top.insert("PayloadUUID".into(), format_uuid(self.uuid()).into());
        top.insert(
            "PayloadDisplayName".into(),
            self.display_name.clone().into(),
        );
        if let Some(description) = &self.description {
            top.insert("PayloadDescription".into(), description.clone().into());
        }
        if let Some(organization) = &self.organization {
            top.insert("PayloadOrganization".into(), organization.clone().into());
        }
        if let Some(disallowed) = self.removal_disallowed {
            top.insert("PayloadRemovalDisallowed".into(), disallowed.into());
        }
        if let Some(scope) = self.scope {
            top.insert("PayloadScope".into(), scope.as_str().into());
        }
        top.insert("PayloadContent".into(), Value::Array(content));
        Ok(top)
    }

    /// Validates the profile and renders it as an unsigned `.mobileconfig` (XML plist bytes).
    pub fn to_mobileconfig(&self) -> Result<Vec<u8>, ProfileError> {
        Ok(xml_plist_bytes(&Value::Dictionary(self.to_dictionary()?)))
    }
}

/// Renders a plist value as XML plist bytes.
pub(crate) fn xml_plist_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing a well-formed `Value` into memory has no failure path: there is no I/O and
    // every `Value` variant has an XML form.
    value
        .to_writer_xml(&mut out)
        .expect("writing a plist value to memory cannot fail");
    out.push(b'\n');
    out
}

/// Apple tools write UUIDs in upper case; matching that keeps diffs against exported
/// profiles small.
pub(crate) fn format_uuid(uuid: Uuid) -> String {
    uuid.hyphenated()
        .encode_upper(&mut Uuid::encode_buffer())
        .to_owned()
}

fn check_identifier(identifier: &str) -> Result<(), ProfileError> {
    let valid = !identifier.is_empty()
        && identifier
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if valid {
        Ok(())
    } else {
        Err(ProfileError::InvalidIdentifier(identifier.to_owned()))
    }
}

/// Turns payload keys into UUIDs while checking that each reference points at a payload of
/// the kind it needs.
pub(crate) struct Resolver<'a> {
    profile: &'a Profile,
    kinds: HashMap<&'a str, &'a Payload>,
}

/// What a payload reference must point at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RefKind {
    /// A certificate identity (PKCS#12 or SCEP).
    Identity,
    /// A trust anchor (root certificate).
    Anchor,
}

impl<'a> Resolver<'a> {
    fn new(profile: &'a Profile) -> Result<Self, ProfileError> {
        let mut kinds = HashMap::new();
        let mut singletons = HashSet::new();
        for entry in &profile.payloads {
            check_identifier(&entry.key)?;
            if kinds.insert(entry.key.as_str(), &entry.payload).is_some() {
                return Err(ProfileError::DuplicatePayloadKey(entry.key.clone()));
            }
            if entry.payload.is_singleton() && !singletons.insert(entry.payload.payload_type()) {
                return Err(ProfileError::SingletonPayload(entry.payload.payload_type()));
            }
        }
        Ok(Self { profile, kinds })
    }

    /// The `PayloadUUID` (as rendered) of the payload under `to`.
    pub(crate) fn resolve(
        &self,
        from: &str,
        to: &str,
        kind: RefKind,
    ) -> Result<String, ProfileError> {
        let target = self
            .kinds
            .get(to)
            .ok_or_else(|| ProfileError::UnknownReference {
                from: from.to_owned(),
                to: to.to_owned(),
            })?;
        let (fits, expected) = match kind {
            RefKind::Identity => (
                matches!(target, Payload::Pkcs12(_) | Payload::Scep(_)),
                "a certificate identity (PKCS#12 or SCEP)",
            ),
            RefKind::Anchor => (
                matches!(target, Payload::RootCertificate(_)),
                "a root certificate",
            ),
        };
        if !fits {
            return Err(ProfileError::WrongReferenceKind {
                from: from.to_owned(),
                to: to.to_owned(),
                found: target.payload_type(),
                expected,
            });
        }
        Ok(format_uuid(self.profile.payload_uuid(to)))
    }
}
