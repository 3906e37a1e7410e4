//! The payload specifications of a template (its JSON form) and the walk over their
//! template strings.

use serde::{Deserialize, Serialize};

use super::TemplateError;
use super::context::IdentityKind;
use super::text::Text;
use crate::apple::Restrictions;
use crate::windows::WindowsRestrictions;

/// A function applied to every template string, with the string's JSON path.
pub(crate) type TextFn<'a> = dyn FnMut(&str, &Text) -> Result<Text, TemplateError> + 'a;

/// Rebuilds a value with every template string passed through `f`.
///
/// One walk serves checking, collecting variables and resolving them, so a field cannot be
/// resolved at render time but skipped at save time. Each implementation destructures its
/// value completely, so a new field fails to compile until the walk covers it.
pub(crate) trait MapTexts: Sized {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError>;
}

fn text(path: &str, field: &str, value: &Text, f: &mut TextFn<'_>) -> Result<Text, TemplateError> {
    f(&format!("{path}.{field}"), value)
}

fn opt_text(
    path: &str,
    field: &str,
    value: &Option<Text>,
    f: &mut TextFn<'_>,
) -> Result<Option<Text>, TemplateError> {
    value
        .as_ref()
        .map(|value| text(path, field, value, f))
        .transpose()
}

fn texts(
    path: &str,
    field: &str,
    values: &[Text],
    f: &mut TextFn<'_>,
) -> Result<Vec<Text>, TemplateError> {
    values
        .iter()
        .enumerate()
        .map(|(index, value)| f(&format!("{path}.{field}[{index}]"), value))
        .collect()
}

fn default_true() -> bool {
    true
}

/// One payload of a template, under a key unique within the template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadSpecEntry {
    /// Short name (letters, digits, `.`, `-`, `_`); other payloads refer to this one by it,
    /// and Apple payload identifiers end in it.
    pub key: String,
    /// Apple `PayloadDisplayName`; derived from the payload when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<Text>,
    /// The payload.
    pub payload: PayloadSpec,
}

impl MapTexts for PayloadSpecEntry {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError> {
        let Self {
            key,
            display_name,
            payload,
        } = self;
        Ok(Self {
            key: key.clone(),
            display_name: opt_text(path, "display_name", display_name, f)?,
            payload: payload.map_texts(&format!("{path}.payload"), f)?,
        })
    }
}

/// A payload of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum PayloadSpec {
    /// A Wi-Fi network (Apple and Windows).
    Wifi(WifiSpec),
    /// A trusted root CA (Apple and Windows).
    RootCa(RootCaSpec),
    /// A client certificate issued by Flotte's CA (Apple and Windows).
    ClientIdentity(ClientIdentitySpec),
    /// A home-screen web clip (Apple only).
    WebClip(WebClipSpec),
    /// Restrictions, one part per platform.
    Restrictions(RestrictionsSpec),
    /// A mail account (Apple only).
    Mail(MailSpec),
    /// Lock-screen text (Apple) or the sign-in notice (Windows).
    LockScreen(LockScreenSpec),
    /// The device name (Apple: a `Settings` command sent with the profile; Windows: the
    /// computer name, effective after a reboot).
    DeviceName(DeviceNameSpec),
}

impl PayloadSpec {
    /// The value of `type` in JSON.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Wifi(_) => "wifi",
            Self::RootCa(_) => "root-ca",
            Self::ClientIdentity(_) => "client-identity",
            Self::WebClip(_) => "web-clip",
            Self::Restrictions(_) => "restrictions",
            Self::Mail(_) => "mail",
            Self::LockScreen(_) => "lock-screen",
            Self::DeviceName(_) => "device-name",
        }
    }
}

impl MapTexts for PayloadSpec {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError> {
        Ok(match self {
            Self::Wifi(spec) => Self::Wifi(spec.map_texts(path, f)?),
            Self::RootCa(spec) => Self::RootCa(spec.clone()),
            Self::ClientIdentity(spec) => Self::ClientIdentity(spec.clone()),
            Self::WebClip(spec) => Self::WebClip(spec.map_texts(path, f)?),
            Self::Restrictions(spec) => Self::Restrictions(spec.clone()),
            Self::Mail(spec) => Self::Mail(spec.map_texts(path, f)?),
            Self::LockScreen(spec) => Self::LockScreen(spec.map_texts(path, f)?),
            Self::DeviceName(spec) => Self::DeviceName(spec.map_texts(path, f)?),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Wi-Fi

/// Encryption of a protected Wi-Fi network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WifiEncryption {
    /// WPA2 (Apple also joins WPA3 networks with it since iOS 16).
    #[default]
    Wpa2,
    /// WPA3 only (Apple only: the Windows builder knows WPA2 profiles).
    Wpa3,
    /// Whatever the network offers (Apple `Any`; WPA2 on Windows).
    Any,
}

/// How the device decides to trust the RADIUS server. Both lists are required: without
/// them, a pupil could be asked to trust a rogue access point's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSpec {
    /// Keys of `root-ca` payloads of this template that may issue the server certificate.
    pub root_cas: Vec<String>,
    /// Accepted RADIUS server certificate names.
    pub server_names: Vec<Text>,
}

impl MapTexts for TrustSpec {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError> {
        let Self {
            root_cas,
            server_names,
        } = self;
        Ok(Self {
            root_cas: root_cas.clone(),
            server_names: texts(path, "server_names", server_names, f)?,
        })
    }
}

/// Authentication of a Wi-Fi network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum WifiSecuritySpec {
    /// WPA2/WPA3 Personal with a pre-shared key.
    Psk {
        /// Encryption.
        #[serde(default)]
        encryption: WifiEncryption,
        /// The passphrase (8 to 63 characters, or 64 hex digits).
        password: Text,
    },
    /// WPA2/WPA3 Enterprise with EAP-TLS and a client certificate from this template.
    EapTls {
        /// Encryption.
        #[serde(default)]
        encryption: WifiEncryption,
        /// Key of the `client-identity` payload with the client certificate.
        identity: String,
        /// Apple `UserName` (the outer identity some RADIUS servers log), for example
        /// `{{person.mail}}`; Windows takes the identity from the certificate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_name: Option<Text>,
        /// Server trust.
        trust: TrustSpec,
    },
    /// WPA2/WPA3 Enterprise with PEAP-MSCHAPv2. The device asks the user for the password:
    /// Flotte never holds user passwords.
    Peap {
        /// Encryption.
        #[serde(default)]
        encryption: WifiEncryption,
        /// Apple `UserName`, for example `{{person.username}}`; the device asks when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_name: Option<Text>,
        /// Apple `OuterIdentity` (anonymous identity outside the tunnel).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outer_identity: Option<Text>,
        /// Server trust.
        trust: TrustSpec,
    },
}

impl MapTexts for WifiSecuritySpec {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError> {
        Ok(match self {
            Self::Psk {
                encryption,
                password,
            } => Self::Psk {
                encryption: *encryption,
                password: text(path, "password", password, f)?,
            },
            Self::EapTls {
                encryption,
                identity,
                user_name,
                trust,
            } => Self::EapTls {
                encryption: *encryption,
                identity: identity.clone(),
                user_name: opt_text(path, "user_name", user_name, f)?,
                trust: trust.map_texts(&format!("{path}.trust"), f)?,
            },
            Self::Peap {
                encryption,
                user_name,
                outer_identity,
                trust,
            } => Self::Peap {
                encryption: *encryption,
                user_name: opt_text(path, "user_name", user_name, f)?,
                outer_identity: opt_text(path, "outer_identity", outer_identity, f)?,
                trust: trust.map_texts(&format!("{path}.trust"), f)?,
            },
        })
    }
}

/// A Wi-Fi network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiSpec {
    /// The SSID (1 to 32 bytes once resolved), for example `Schule-{{school.code}}`.
    pub ssid: Text,
    /// The network hides its SSID.
    #[serde(default)]
    pub hidden: bool,
    /// Join automatically.
    #[serde(default = "default_true")]
    pub auto_join: bool,
    /// Authentication.
    pub security: WifiSecuritySpec,
}

impl MapTexts for WifiSpec {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError> {
        let Self {
            ssid,
            hidden,
            auto_join,
            security,
        } = self;
        Ok(Self {
            ssid: text(path, "ssid", ssid, f)?,
            hidden: *hidden,
            auto_join: *auto_join,
            security: security.map_texts(&format!("{path}.security"), f)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// Which CA certificate a `root-ca` payload installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaSource {
    /// Flotte's own root CA (`"flotte-root"`), supplied at render time.
    FlotteRoot,
    /// A certificate given inline (`{"pem": "-----BEGIN CERTIFICATE-----…"}`), for example
    /// the school's RADIUS CA.
    Pem(String),
}

/// A trusted root CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootCaSpec {
    /// Which certificate.
    pub ca: CaSource,
}

/// A client certificate from Flotte's CA. The caller issues it (subject and SANs from
/// `flotte_core::certificates`) and passes it in the render context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIdentitySpec {
    /// Whose certificate.
    pub certificate: IdentityKind,
}

// ---------------------------------------------------------------------------------------------
// Web clip

/// A home-screen icon that opens a URL (Apple only: Windows has no CSP for a single
/// shortcut).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebClipSpec {
    /// The URL.
    pub url: Text,
    /// The label under the icon.
    pub label: Text,
    /// Whether the user may remove it.
    #[serde(default = "default_true")]
    pub removable: bool,
    /// Open as a web app without Safari's interface.
    #[serde(default)]
    pub full_screen: bool,
    /// PNG icon, base64.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::b64::option"
    )]
    pub icon: Option<Vec<u8>>,
    /// Apple `Precomposed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precomposed: Option<bool>,
    /// Apple `IgnoreManifestScope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_manifest_scope: Option<bool>,
}

impl MapTexts for WebClipSpec {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError> {
        let Self {
            url,
            label,
            removable,
            full_screen,
            icon,
            precomposed,
            ignore_manifest_scope,
        } = self;
        Ok(Self {
            url: text(path, "url", url, f)?,
            label: text(path, "label", label, f)?,
            removable: *removable,
            full_screen: *full_screen,
            icon: icon.clone(),
            precomposed: *precomposed,
            ignore_manifest_scope: *ignore_manifest_scope,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Restrictions

/// Restrictions; the settings differ so much between platforms that each has its own part.
/// A template that renders for a platform needs that platform's part (`{}` for none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictionsSpec {
    /// Apple restrictions (the fields of `apple::Restrictions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple: Option<Restrictions>,
    /// Windows policies (the fields of `windows::WindowsRestrictions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<WindowsRestrictions>,
}

// ---------------------------------------------------------------------------------------------
// Mail

/// Mail account protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailProtocol {
    /// IMAP.
    Imap,
    /// POP.
    Pop,
}

/// Mail server authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailAuth {
    /// None.
    None,
    /// Password (asked on the device: Flotte never holds user passwords).
    Password,
    /// CRAM-MD5.
    CramMd5,
    /// NTLM.
    Ntlm,
    /// HTTP MD5 digest.
    HttpMd5,
}

/// One direction of a mail account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailServerSpec {
    /// Host name.
    pub host_name: Text,
    /// Port; the protocol default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// TLS.
    #[serde(default = "default_true")]
    pub use_ssl: bool,
    /// User name, for example `{{person.username}}`; the device asks when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Text>,
    /// Authentication.
    pub authentication: MailAuth,
}

impl MapTexts for MailServerSpec {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError> {
        let Self {
            host_name,
            port,
            use_ssl,
            username,
            authentication,
        } = self;
        Ok(Self {
            host_name: text(path, "host_name", host_name, f)?,
            port: *port,
            use_ssl: *use_ssl,
            username: opt_text(path, "username", username, f)?,
            authentication: *authentication,
        })
    }
}

/// A mail account (Apple only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSpec {
    /// IMAP or POP.
    pub protocol: MailProtocol,
    /// Description shown in Mail and Settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_description: Option<Text>,
    /// The sender's name, for example `{{person.given_name}} {{person.family_name}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<Text>,
    /// The address, for example `{{person.mail}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<Text>,
    /// Incoming server.
    pub incoming: MailServerSpec,
    /// Outgoing server.
    pub outgoing: MailServerSpec,
    /// The outgoing password is the incoming one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outgoing_password_same_as_incoming: Option<bool>,
    /// Mails cannot be moved to other accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prevent_move: Option<bool>,
}

impl MapTexts for MailSpec {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError> {
        let Self {
            protocol,
            account_description,
            account_name,
            email_address,
            incoming,
            outgoing,
            outgoing_password_same_as_incoming,
            prevent_move,
        } = self;
        Ok(Self {
            protocol: *protocol,
            account_description: opt_text(path, "account_description", account_description, f)?,
            account_name: opt_text(path, "account_name", account_name, f)?,
            email_address: opt_text(path, "email_address", email_address, f)?,
            incoming: incoming.map_texts(&format!("{path}.incoming"), f)?,
            outgoing: outgoing.map_texts(&format!("{path}.outgoing"), f)?,
            outgoing_password_same_as_incoming: *outgoing_password_same_as_incoming,
            prevent_move: *prevent_move,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Lock screen and device name

/// Lock-screen text. Apple shows footnote and asset tag on the lock screen (supervised
/// devices); Windows shows them, one per line, as the notice before sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockScreenSpec {
    /// For example "Eigentum der {{school.name}}. Gefunden? Bitte im Sekretariat abgeben."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footnote: Option<Text>,
    /// For example `{{device.asset_tag}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_tag: Option<Text>,
    /// Title of the Windows sign-in notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_title: Option<Text>,
}

impl MapTexts for LockScreenSpec {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError> {
        let Self {
            footnote,
            asset_tag,
            windows_title,
        } = self;
        Ok(Self {
            footnote: opt_text(path, "footnote", footnote, f)?,
            asset_tag: opt_text(path, "asset_tag", asset_tag, f)?,
            windows_title: opt_text(path, "windows_title", windows_title, f)?,
        })
    }
}

/// The device name, for example `{{school.code}}-{{device.asset_tag}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceNameSpec {
    /// The name.
    pub name: Text,
}

impl MapTexts for DeviceNameSpec {
    fn map_texts(&self, path: &str, f: &mut TextFn<'_>) -> Result<Self, TemplateError> {
        let Self { name } = self;
        Ok(Self {
            name: text(path, "name", name, f)?,
        })
    }
}
