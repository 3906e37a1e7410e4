//! What a template is rendered with: the values of its variables and the certificates it
//! embeds, for one device.

use std::fmt;

use flotte_core::device::Platform;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::text::Variable;
use crate::apple::ProfileNamespace;

/// The person a device is lent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonVars {
    /// `person.username`.
    pub username: String,
    /// `person.mail`.
    pub mail: Option<String>,
    /// `person.given_name`.
    pub given_name: String,
    /// `person.family_name`.
    pub family_name: String,
    /// `person.external_id` (the directory `entryUUID`).
    pub external_id: Uuid,
    /// `person.class`: one class, chosen by the caller (the class at the device's school).
    pub class: Option<String>,
}

/// The device being rendered for. Fields are optional because the inventory learns them
/// over time (a device registered from a delivery list has no UDID yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceVars {
    /// `device.serial`.
    pub serial_number: Option<String>,
    /// `device.udid`.
    pub udid: Option<String>,
    /// `device.name`.
    pub name: Option<String>,
    /// `device.asset_tag`.
    pub asset_tag: Option<String>,
    /// `device.model`.
    pub model: Option<String>,
}

/// The device's school.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchoolVars {
    /// `school.name`.
    pub name: String,
    /// `school.code`.
    pub code: String,
}

/// Whose client certificate a template embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    /// The certificate of the person the device is lent to.
    PerPerson,
    /// The device's own certificate.
    PerDevice,
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PerPerson => "per-person",
            Self::PerDevice => "per-device",
        })
    }
}

/// A client certificate the caller issued for this rendering.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedIdentity {
    /// The certificate alone, DER: names the Windows certificate node (its thumbprint) and
    /// stands for the identity in the checksum.
    pub certificate_der: Vec<u8>,
    /// Certificate and private key as PKCS#12 (also the Windows PFX).
    pub pkcs12: Vec<u8>,
    /// The PKCS#12 password.
    pub password: String,
}

// The PKCS#12 and its password unlock a pupil's network identity; they stay out of logs.
impl fmt::Debug for IssuedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedIdentity")
            .field(
                "certificate_der",
                &format_args!("{} bytes", self.certificate_der.len()),
            )
            .field("pkcs12", &format_args!("{} bytes", self.pkcs12.len()))
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Everything one rendering needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderContext {
    /// The device's platform; the template must render for it.
    pub platform: Platform,
    /// The organisation's namespace for Apple payload UUIDs.
    pub namespace: ProfileNamespace,
    /// The person the device is lent to, if any.
    pub person: Option<PersonVars>,
    /// The device.
    pub device: DeviceVars,
    /// The device's school, if it has one.
    pub school: Option<SchoolVars>,
    /// Flotte's root CA certificate, DER, for `root-ca` payloads with `"ca": "flotte-root"`.
    pub root_ca_der: Vec<u8>,
    /// The person's client certificate, for `per-person` identities.
    pub person_identity: Option<IssuedIdentity>,
    /// The device's client certificate, for `per-device` identities.
    pub device_identity: Option<IssuedIdentity>,
}

impl RenderContext {
    /// The value of a variable, if the context has one. Blank values count as missing: an
    /// empty user name in a Wi-Fi identity is as useless as none.
    pub fn value(&self, variable: Variable) -> Option<String> {
        let person = self.person.as_ref();
        let device = &self.device;
        let school = self.school.as_ref();
        let value = match variable {
            Variable::PersonUsername => person.map(|p| p.username.clone()),
            Variable::PersonMail => person.and_then(|p| p.mail.clone()),
            Variable::PersonGivenName => person.map(|p| p.given_name.clone()),
            Variable::PersonFamilyName => person.map(|p| p.family_name.clone()),
            Variable::PersonExternalId => person.map(|p| p.external_id.hyphenated().to_string()),
            Variable::PersonClass => person.and_then(|p| p.class.clone()),
            Variable::DeviceSerial => device.serial_number.clone(),
            Variable::DeviceUdid => device.udid.clone(),
            Variable::DeviceName => device.name.clone(),
            Variable::DeviceAssetTag => device.asset_tag.clone(),
            Variable::DeviceModel => device.model.clone(),
            Variable::SchoolName => school.map(|s| s.name.clone()),
            Variable::SchoolCode => school.map(|s| s.code.clone()),
        };
        value.filter(|value| !value.trim().is_empty())
    }

    /// The issued certificate of one kind.
    pub fn identity(&self, kind: IdentityKind) -> Option<&IssuedIdentity> {
        match kind {
            IdentityKind::PerPerson => self.person_identity.as_ref(),
            IdentityKind::PerDevice => self.device_identity.as_ref(),
        }
    }

    /// A context with a short, plausible value for everything, used to run the payload
    /// builders' checks when a template is saved.
    pub(crate) fn sample(platform: Platform) -> Self {
        let identity = |who: &str| IssuedIdentity {
            certificate_der: format!("0 sample {who} certificate").into_bytes(),
            pkcs12: format!("0 sample {who} PKCS#12").into_bytes(),
            password: "sample".to_owned(),
        };
        Self {
            platform,
            namespace: ProfileNamespace::from_uuid(Uuid::nil()),
            person: Some(PersonVars {
                username: "sample.user".to_owned(),
                mail: Some("sample.user@example.org".to_owned()),
                given_name: "Sam".to_owned(),
                family_name: "Sample".to_owned(),
                external_id: Uuid::nil(),
                class: Some("5a".to_owned()),
            }),
            device: DeviceVars {
                serial_number: Some("SAMPLE0001".to_owned()),
                udid: Some("00008020-000A1B2C3D4E".to_owned()),
                name: Some("Sample-01".to_owned()),
                asset_tag: Some("INV-0001".to_owned()),
                model: Some("iPad13,18".to_owned()),
            },
            school: Some(SchoolVars {
                name: "Sample School".to_owned(),
                code: "sample".to_owned(),
            }),
            root_ca_der: b"0 sample root CA".to_vec(),
            person_identity: Some(identity("person")),
            device_identity: Some(identity("device")),
        }
    }
}
