//! Profile templates: what an administrator saves, and its rendering for one device.
//!
//! A [`ProfileTemplate`] is the JSON the API stores and `flotte profile …` edits. Its strings
//! ([`Text`]) may contain `{{variable}}` placeholders from the closed list [`Variable`];
//! [`ProfileTemplate::validate`] runs when a template is saved and refuses unknown variables,
//! malformed placeholders, dangling certificate references and payload values a device would
//! reject, naming the JSON path of the offending field. [`ProfileTemplate::render`] resolves
//! the variables for one device ([`RenderContext`]) and returns the unsigned `.mobileconfig`
//! (Apple) or SyncML commands (Windows) together with a checksum.
//!
//! # The checksum
//!
//! "Send only what changed" needs a checksum that changes exactly when what the device would
//! receive changes. Hashing the output bytes alone does not work: the PKCS#12 of a client
//! identity is re-encrypted with a fresh salt and password each time it is packed, and the
//! Windows `CmdID`s are queue ids. So every rendering is built twice: once for real, and once
//! with each identity replaced by a stand-in naming its certificate's SHA-256 (and an empty
//! password) and with fixed `CmdID`s. The checksum is the SHA-256 of the second build. It
//! covers everything the device sees (resolved variables, the CA certificates, which client
//! certificate, and the renderer's own output, so a fix in a builder reaches the devices) and
//! nothing volatile. A renewed certificate changes it; re-packing the same one does not.
//!
//! On Apple devices, the profile's top-level `PayloadUUID` is derived from the checksum
//! ([`flotte_core::assignment::profile_version_uuid`]) so that `ProfileList` reveals which
//! version a device has; the inner payloads keep identifier-derived UUIDs, so a new version
//! replaces the old one in place.
//!
//! # What each payload becomes
//!
//! | `type` | Apple | Windows |
//! |---|---|---|
//! | `wifi` | `com.apple.wifi.managed` | WiFi CSP (WPA2 only) |
//! | `root-ca` | `com.apple.security.root` | RootCATrustedCertificates |
//! | `client-identity` | `com.apple.security.pkcs12` | ClientCertificateInstall (PFX) |
//! | `web-clip` | `com.apple.webClip.managed` | refused |
//! | `restrictions` | `com.apple.applicationaccess` | Policy CSP |
//! | `mail` | `com.apple.mail.managed` | refused |
//! | `lock-screen` | `com.apple.shareddeviceconfiguration` | sign-in notice |
//! | `device-name` | `Settings` command | computer name |

mod context;
mod render;
mod spec;
mod text;

use std::collections::{BTreeSet, HashMap};

use flotte_core::device::Platform;
use serde::{Deserialize, Serialize};

pub use context::{
    DeviceVars, IdentityKind, IssuedIdentity, PersonVars, RenderContext, SchoolVars,
};
pub use render::{RenderedOutput, RenderedProfile};
pub use spec::{
    CaSource, ClientIdentitySpec, DeviceNameSpec, LockScreenSpec, MailAuth, MailProtocol,
    MailServerSpec, MailSpec, PayloadSpec, PayloadSpecEntry, RestrictionsSpec, RootCaSpec,
    TrustSpec, WebClipSpec, WifiEncryption, WifiSecuritySpec, WifiSpec,
};
pub use text::{Text, UnknownVariable, Variable, VariableSource};

use crate::apple::ProfileError;
use crate::windows::CspError;
use spec::MapTexts;
use text::{Segment, TextError};

/// The platforms a template renders for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlatformTargets {
    /// iPads (and other Apple devices).
    Apple,
    /// Windows laptops.
    Windows,
    /// Both.
    Both,
}

impl PlatformTargets {
    /// Whether the template renders for `platform`.
    pub fn includes(self, platform: Platform) -> bool {
        matches!(
            (self, platform),
            (Self::Both, _) | (Self::Apple, Platform::Apple) | (Self::Windows, Platform::Windows)
        )
    }

    /// The platforms, Apple first.
    pub fn platforms(self) -> Vec<Platform> {
        [Platform::Apple, Platform::Windows]
            .into_iter()
            .filter(|platform| self.includes(*platform))
            .collect()
    }
}

/// A profile template: the stored, editable form of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileTemplate {
    /// Reverse-DNS identifier (letters, digits, `.`, `-`, `_`), the same for every version:
    /// the Apple `PayloadIdentifier`, and the key of assignments. Keep it under Flotte's
    /// prefix (`flotte_core::assignment::ProfileOwnership`), or it can never be removed.
    pub identifier: String,
    /// Name shown on the device.
    pub display_name: Text,
    /// The organisation shown on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<Text>,
    /// Description shown on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Text>,
    /// The platforms it renders for.
    pub platforms: PlatformTargets,
    /// Apple `PayloadRemovalDisallowed` (honoured on supervised devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_disallowed: Option<bool>,
    /// The payloads, in order.
    pub payloads: Vec<PayloadSpecEntry>,
}

/// Why a template cannot be saved or rendered. Every variant about a field names its JSON
/// path, for example `payloads[2].payload.ssid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A placeholder names a variable outside [`Variable::ALL`].
    #[error(
        "{path}: unknown variable {name:?}; known variables are {}",
        Variable::names()
    )]
    UnknownVariable {
        /// The name as written.
        name: String,
        /// Where.
        path: String,
    },
    /// A placeholder is not well-formed.
    #[error("{path}: malformed placeholder at byte {offset}: {reason}")]
    MalformedPlaceholder {
        /// Where.
        path: String,
        /// Byte offset of the problem within the string.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// Template text contains control characters, which profiles cannot carry.
    #[error("{path}: contains control characters, which profiles cannot carry")]
    ControlCharacter {
        /// Where.
        path: String,
    },
    /// A variable the template uses has no value for this device.
    #[error("{path}: {variable} has no value for this device")]
    MissingValue {
        /// The variable.
        variable: Variable,
        /// Where it is used.
        path: String,
    },
    /// A variable's value contains control characters.
    #[error("{path}: the value of {variable} contains control characters")]
    UnencodableValue {
        /// The variable.
        variable: Variable,
        /// Where it is used.
        path: String,
    },
    /// A payload refers to a key that is not a payload of the needed type.
    #[error("{path}: {key:?} is not a {expected} payload of this template")]
    UnknownReference {
        /// Where the reference is.
        path: String,
        /// The key referred to.
        key: String,
        /// The payload type needed.
        expected: &'static str,
    },
    /// The template needs a client certificate the context does not carry.
    #[error("{path}: needs a {kind} certificate, but none was issued for this rendering")]
    MissingIdentity {
        /// Whose certificate.
        kind: IdentityKind,
        /// The `client-identity` payload.
        path: String,
    },
    /// The template installs Flotte's root CA, but the context does not carry it.
    #[error("{path}: Flotte's root CA certificate was not supplied")]
    MissingRootCa {
        /// The `root-ca` payload.
        path: String,
    },
    /// A payload has no form on a platform the template renders for.
    #[error("{path}: cannot be rendered for {platform}: {reason}")]
    Unsupported {
        /// Where.
        path: String,
        /// The platform.
        platform: Platform,
        /// Why.
        reason: String,
    },
    /// The template does not render for the device's platform.
    #[error("the template does not render for {0}")]
    NotForPlatform(Platform),
    /// Any other invalid value.
    #[error("{path}: {reason}")]
    Invalid {
        /// Where.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The Apple payload builders refused the rendered profile.
    #[error("Apple profile: {0}")]
    Apple(#[source] ProfileError),
    /// The Windows builders refused a rendered payload.
    #[error("{path}: Windows: {source}")]
    Windows {
        /// The payload.
        path: String,
        /// The builder's reason.
        #[source]
        source: CspError,
    },
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

pub(crate) fn text_error(path: &str, error: TextError) -> TemplateError {
    match error {
        TextError::Malformed { offset, reason } => TemplateError::MalformedPlaceholder {
            path: path.to_owned(),
            offset,
            reason,
        },
        TextError::Unknown(name) => TemplateError::UnknownVariable {
            name,
            path: path.to_owned(),
        },
        TextError::ControlCharacter => TemplateError::ControlCharacter {
            path: path.to_owned(),
        },
    }
}

fn valid_identifier(identifier: &str) -> bool {
    !identifier.is_empty()
        && identifier
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The JSON path of the payload at `index`.
pub(crate) fn payload_path(index: usize) -> String {
    format!("payloads[{index}].payload")
}

impl ProfileTemplate {
    /// Whether the template renders for `platform`.
    pub fn renders_for(&self, platform: Platform) -> bool {
        self.platforms.includes(platform)
    }

    /// Checks the template as it is saved: placeholders and variables, keys and references,
    /// inline certificates, platform support, and then renders it for every platform it
    /// targets with sample values, so that the payload builders' own checks run too (an
    /// SSID too long, a pre-shared key too short, an empty mail server). Values that only
    /// fail for a particular device (a resolved SSID over 32 bytes) surface at render time.
    pub fn validate(&self) -> Result<(), TemplateError> {
        self.check()?;
        for platform in self.platforms.platforms() {
            render::render_checked(self, &RenderContext::sample(platform))?;
        }
        Ok(())
    }

    /// Renders the template for one device. Runs the structural checks of
    /// [`validate`](Self::validate) first, so a template that slipped past them is still
    /// refused; a variable without a value is [`TemplateError::MissingValue`] naming it.
    pub fn render(&self, ctx: &RenderContext) -> Result<RenderedProfile, TemplateError> {
        self.check()?;
        render::render_checked(self, ctx)
    }

    /// The variables the template uses (in strings that parse; run
    /// [`validate`](Self::validate) for the others).
    pub fn template_variables_used(&self) -> BTreeSet<Variable> {
        let mut used = BTreeSet::new();
        // The closure never fails, so neither does the walk.
        let _ = self.map_texts(&mut |_, text| {
            if let Ok(segments) = text.parse() {
                used.extend(segments.into_iter().filter_map(|segment| match segment {
                    Segment::Variable(variable) => Some(variable),
                    Segment::Literal(_) => None,
                }));
            }
            Ok(text.clone())
        });
        used
    }

    /// The client certificates the caller must issue before rendering.
    pub fn required_identities(&self) -> BTreeSet<IdentityKind> {
        self.payloads
            .iter()
            .filter_map(|entry| match &entry.payload {
                PayloadSpec::ClientIdentity(identity) => Some(identity.certificate),
                _ => None,
            })
            .collect()
    }

    /// Whether rendering needs the person the device is lent to: a `person.*` variable or a
    /// per-person certificate. Such a template cannot be rendered for a device without a
    /// loan.
    pub fn needs_person(&self) -> bool {
        self.template_variables_used()
            .iter()
            .any(|variable| variable.source() == VariableSource::Person)
            || self
                .required_identities()
                .contains(&IdentityKind::PerPerson)
    }

    /// Applies `f` to every template string, with its JSON path.
    pub(crate) fn map_texts(&self, f: &mut spec::TextFn<'_>) -> Result<Self, TemplateError> {
        let Self {
            identifier,
            display_name,
            organisation,
            description,
            platforms,
            removal_disallowed,
            payloads,
        } = self;
        let optional = |field: &str, value: &Option<Text>, f: &mut spec::TextFn<'_>| {
            value.as_ref().map(|value| f(field, value)).transpose()
        };
        Ok(Self {
            identifier: identifier.clone(),
            display_name: f("display_name", display_name)?,
            organisation: optional("organisation", organisation, f)?,
            description: optional("description", description, f)?,
            platforms: *platforms,
            removal_disallowed: *removal_disallowed,
            payloads: payloads
                .iter()
                .enumerate()
                .map(|(index, entry)| entry.map_texts(&format!("payloads[{index}]"), f))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Everything that can be checked without rendering.
    fn check(&self) -> Result<(), TemplateError> {
        if !valid_identifier(&self.identifier) {
            return Err(invalid(
                "identifier",
                "use letters, digits, '.', '-' and '_' only",
            ));
        }
        if self.display_name.as_str().trim().is_empty() {
            return Err(invalid("display_name", "must not be empty"));
        }
        if self.payloads.is_empty() {
            return Err(invalid("payloads", "a template needs at least one payload"));
        }
        self.map_texts(&mut |path, text| {
            text.parse().map_err(|error| text_error(path, error))?;
            Ok(text.clone())
        })?;
        let kinds = self.check_keys()?;
        for (index, entry) in self.payloads.iter().enumerate() {
            let path = payload_path(index);
            match &entry.payload {
                PayloadSpec::Wifi(wifi) => check_wifi(&path, wifi, &kinds)?,
                PayloadSpec::RootCa(RootCaSpec {
                    ca: CaSource::Pem(pem),
                }) => {
                    render::pem_to_der(pem)
                        .map_err(|reason| invalid(format!("{path}.ca.pem"), reason))?;
                }
                PayloadSpec::LockScreen(lock)
                    if lock.footnote.is_none() && lock.asset_tag.is_none() =>
                {
                    return Err(invalid(path, "set a footnote, an asset tag or both"));
                }
                _ => {}
            }
        }
        for platform in self.platforms.platforms() {
            self.check_platform(platform)?;
        }
        Ok(())
    }

    /// Checks keys and singletons; answers each key's payload type.
    fn check_keys(&self) -> Result<HashMap<&str, &'static str>, TemplateError> {
        let mut kinds = HashMap::new();
        let mut identities = BTreeSet::new();
        let mut singletons = BTreeSet::new();
        for (index, entry) in self.payloads.iter().enumerate() {
            let path = format!("payloads[{index}].key");
            if !valid_identifier(&entry.key) {
                return Err(invalid(path, "use letters, digits, '.', '-' and '_' only"));
            }
            let type_name = entry.payload.type_name();
            if kinds.insert(entry.key.as_str(), type_name).is_some() {
                return Err(invalid(path, format!("key {:?} is used twice", entry.key)));
            }
            match &entry.payload {
                PayloadSpec::ClientIdentity(identity)
                    if !identities.insert(identity.certificate) =>
                {
                    return Err(invalid(
                        payload_path(index),
                        format!(
                            "a template may hold one {} certificate",
                            identity.certificate
                        ),
                    ));
                }
                // The device keeps one lock-screen text and one name; a second would silently
                // overwrite the first.
                PayloadSpec::LockScreen(_) | PayloadSpec::DeviceName(_)
                    if !singletons.insert(type_name) =>
                {
                    return Err(invalid(
                        payload_path(index),
                        format!("a template may hold one {type_name} payload"),
                    ));
                }
                _ => {}
            }
        }
        Ok(kinds)
    }

    fn check_platform(&self, platform: Platform) -> Result<(), TemplateError> {
        let unsupported = |path: String, reason: &str| TemplateError::Unsupported {
            path,
            platform,
            reason: reason.to_owned(),
        };
        let mut configuration_payloads = 0;
        for (index, entry) in self.payloads.iter().enumerate() {
            let path = payload_path(index);
            match (&entry.payload, platform) {
                (PayloadSpec::DeviceName(_), _) => {}
                (PayloadSpec::WebClip(_), Platform::Windows) => {
                    return Err(unsupported(
                        path,
                        "Windows has no CSP for a single shortcut; make an Apple-only template",
                    ));
                }
                (PayloadSpec::Mail(_), Platform::Windows) => {
                    return Err(unsupported(
                        path,
                        "Windows has no mail account CSP; make an Apple-only template",
                    ));
                }
                (PayloadSpec::Wifi(wifi), Platform::Windows)
                    if wifi_encryption(wifi) == WifiEncryption::Wpa3 =>
                {
                    return Err(unsupported(
                        format!("{path}.security.encryption"),
                        "Flotte writes WPA2 Wi-Fi profiles for Windows; use wpa2 or any",
                    ));
                }
                (PayloadSpec::Restrictions(restrictions), Platform::Apple)
                    if restrictions.apple.is_none() =>
                {
                    return Err(invalid(
                        format!("{path}.apple"),
                        "the template renders for Apple, so give the Apple part ({} for none)",
                    ));
                }
                (PayloadSpec::Restrictions(restrictions), Platform::Windows)
                    if restrictions.windows.is_none() =>
                {
                    return Err(invalid(
                        format!("{path}.windows"),
                        "the template renders for Windows, so give the Windows part ({} for none)",
                    ));
                }
                _ => configuration_payloads += 1,
            }
        }
        if platform == Platform::Apple && configuration_payloads == 0 {
            // Flotte tracks Apple profiles through ProfileList; a device name alone would
            // leave nothing there, and would be sent again and again.
            return Err(invalid(
                "payloads",
                "an Apple rendering needs a configuration payload besides the device name",
            ));
        }
        Ok(())
    }
}

fn wifi_encryption(wifi: &WifiSpec) -> WifiEncryption {
    match &wifi.security {
        WifiSecuritySpec::Psk { encryption, .. }
        | WifiSecuritySpec::EapTls { encryption, .. }
        | WifiSecuritySpec::Peap { encryption, .. } => *encryption,
    }
}

fn check_wifi(
    path: &str,
    wifi: &WifiSpec,
    kinds: &HashMap<&str, &'static str>,
) -> Result<(), TemplateError> {
    let refers = |field: String, key: &str, expected: &'static str| {
        if kinds.get(key) == Some(&expected) {
            Ok(())
        } else {
            Err(TemplateError::UnknownReference {
                path: field,
                key: key.to_owned(),
                expected,
            })
        }
    };
    let trust = match &wifi.security {
        WifiSecuritySpec::Psk { .. } => return Ok(()),
        WifiSecuritySpec::EapTls {
            identity, trust, ..
        } => {
            refers(
                format!("{path}.security.identity"),
                identity,
                "client-identity",
            )?;
            trust
        }
        WifiSecuritySpec::Peap { trust, .. } => trust,
    };
    let trust_path = format!("{path}.security.trust");
    // Without both, the device would let a pupil accept whatever certificate a rogue access
    // point presents (Apple prompts; Windows refuses to build such a profile anyway).
    if trust.root_cas.is_empty() {
        return Err(invalid(
            format!("{trust_path}.root_cas"),
            "name at least one root-ca payload that issued the RADIUS certificate",
        ));
    }
    if trust.server_names.is_empty() {
        return Err(invalid(
            format!("{trust_path}.server_names"),
            "name at least one RADIUS server certificate name",
        ));
    }
    for (index, key) in trust.root_cas.iter().enumerate() {
        refers(format!("{trust_path}.root_cas[{index}]"), key, "root-ca")?;
    }
    Ok(())
}
