//! Apple configuration profiles and MDM command plists.
//!
//! A [`Profile`] is the `Configuration` envelope; its [`Payload`]s are the typed payload
//! dictionaries. Payloads inside one profile refer to each other (a Wi-Fi payload names the
//! identity and trust anchors it uses) by a short *key* that is unique within the profile; the
//! renderer turns keys into the payloads' `PayloadUUID`s.
//!
//! Identifiers are stable: the profile's `PayloadIdentifier` is chosen by the caller, every
//! `PayloadUUID` is a UUID v5 of that identifier in the caller's [`ProfileNamespace`], and every
//! inner payload's identifier is `<profile identifier>.<key>`. Rendering the next version of the
//! same profile therefore yields the same identifiers, which is what makes the device replace
//! the installed payloads instead of adding new ones (Apple, `CommonPayloadKeys`: "During a
//! profile replacement, the system updates payloads with the same PayloadIdentifier and
//! PayloadUUID in the old and new profiles").

mod command;
mod payload;
mod profile;

pub use command::{Command, DEFAULT_DEVICE_INFORMATION_QUERIES, SettingValue, SettingsItem};
pub use payload::{
    AppRating, InnerAuthentication, LockScreenMessage, MailAccount, MailAccountType,
    MailAuthentication, MailServer, MdmEnrollment, MdmServerCapability, Payload, Pkcs12Identity,
    Restrictions, RootCertificate, Scep, ScepSubjectAltName, ServerTrust, WebClip, Wifi,
    WifiEncryption, WifiSecurity,
};
pub use profile::{PayloadEntry, PayloadScope, Profile, ProfileNamespace};
pub(crate) use profile::{format_uuid, xml_plist_bytes};

/// Why a profile could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// A profile identifier or payload key is empty or contains characters outside
    /// `A-Z a-z 0-9 . - _`.
    #[error("invalid identifier {0:?}: use letters, digits, '.', '-' and '_' only")]
    InvalidIdentifier(String),
    /// Two payloads in one profile share a key, so they would share an identifier and UUID.
    #[error("payload key {0:?} is used twice in the profile")]
    DuplicatePayloadKey(String),
    /// A payload refers to a key that no payload in the profile has.
    #[error("payload {from:?} refers to {to:?}, which is not a payload of this profile")]
    UnknownReference {
        /// Key of the referring payload.
        from: String,
        /// The missing key.
        to: String,
    },
    /// A payload refers to a payload of the wrong kind (for example a Wi-Fi identity that is
    /// not a certificate identity).
    #[error("payload {from:?} refers to {to:?}, which is a {found}, but needs {expected}")]
    WrongReferenceKind {
        /// Key of the referring payload.
        from: String,
        /// Key of the referenced payload.
        to: String,
        /// What was found (a payload type).
        found: &'static str,
        /// What the reference requires.
        expected: &'static str,
    },
    /// Apple allows at most one payload of this type per profile.
    #[error("a profile may contain only one {0} payload")]
    SingletonPayload(&'static str),
    /// A payload field has a value the device would reject.
    #[error("payload {key:?}: {reason}")]
    InvalidField {
        /// Key of the payload (or `profile` for the envelope).
        key: String,
        /// What is wrong.
        reason: String,
    },
}
