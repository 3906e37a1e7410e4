//! Typed payloads and the keys they render to.
//!
//! Key names and value ranges follow Apple's device-management schema
//! (`mdm/profiles/<PayloadType>.yaml`).

use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};

use super::ProfileError;
use super::profile::{RefKind, Resolver};

/// A payload of a configuration profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    /// `com.apple.wifi.managed`.
    Wifi(Wifi),
    /// `com.apple.security.root`.
    RootCertificate(RootCertificate),
    /// `com.apple.security.pkcs12`.
    Pkcs12(Pkcs12Identity),
    /// `com.apple.security.scep`.
    Scep(Scep),
    /// `com.apple.webClip.managed`.
    WebClip(WebClip),
    /// `com.apple.applicationaccess`.
    Restrictions(Restrictions),
    /// `com.apple.mail.managed`.
    Mail(MailAccount),
    /// `com.apple.shareddeviceconfiguration`.
    LockScreenMessage(LockScreenMessage),
    /// `com.apple.mdm`.
    MdmEnrollment(MdmEnrollment),
}

impl Payload {
    /// The `PayloadType` string.
    pub fn payload_type(&self) -> &'static str {
        match self {
            Self::Wifi(_) => "com.apple.wifi.managed",
            Self::RootCertificate(_) => "com.apple.security.root",
            Self::Pkcs12(_) => "com.apple.security.pkcs12",
            Self::Scep(_) => "com.apple.security.scep",
            Self::WebClip(_) => "com.apple.webClip.managed",
            Self::Restrictions(_) => "com.apple.applicationaccess",
            Self::Mail(_) => "com.apple.mail.managed",
            Self::LockScreenMessage(_) => "com.apple.shareddeviceconfiguration",
            Self::MdmEnrollment(_) => "com.apple.mdm",
        }
    }

    /// Apple's schema marks these payload types `multiple: false`.
    pub(crate) fn is_singleton(&self) -> bool {
        matches!(self, Self::LockScreenMessage(_) | Self::MdmEnrollment(_))
    }

    pub(crate) fn default_display_name(&self) -> String {
        match self {
            Self::Wifi(wifi) => format!("Wi-Fi ({})", wifi.ssid),
            Self::RootCertificate(_) => "Root certificate".to_owned(),
            Self::Pkcs12(_) => "Certificate identity".to_owned(),
            Self::Scep(_) => "SCEP certificate".to_owned(),
            Self::WebClip(clip) => format!("Web clip ({})", clip.label),
            Self::Restrictions(_) => "Restrictions".to_owned(),
            Self::Mail(mail) => mail
                .account_description
                .clone()
                .unwrap_or_else(|| "Mail account".to_owned()),
            Self::LockScreenMessage(_) => "Lock screen message".to_owned(),
            Self::MdmEnrollment(_) => "Device management".to_owned(),
        }
    }

    pub(crate) fn write_keys(
        &self,
        key: &str,
        resolver: &Resolver<'_>,
        dict: &mut Dictionary,
    ) -> Result<(), ProfileError> {
        match self {
            Self::Wifi(wifi) => wifi.write_keys(key, resolver, dict),
            Self::RootCertificate(root) => root.write_keys(key, dict),
            Self::Pkcs12(identity) => identity.write_keys(key, dict),
            Self::Scep(scep) => scep.write_keys(key, dict),
            Self::WebClip(clip) => clip.write_keys(key, dict),
            Self::Restrictions(restrictions) => {
                restrictions.write_keys(dict);
                Ok(())
            }
            Self::Mail(mail) => mail.write_keys(key, dict),
            Self::LockScreenMessage(message) => message.write_keys(key, dict),
            Self::MdmEnrollment(mdm) => mdm.write_keys(key, resolver, dict),
        }
    }
}

macro_rules! impl_into_payload {
    ($($ty:ident => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for Payload {
            fn from(value: $ty) -> Self {
                Self::$variant(value)
            }
        })*
    };
}

impl_into_payload!(
    Wifi => Wifi,
    RootCertificate => RootCertificate,
    Pkcs12Identity => Pkcs12,
    Scep => Scep,
    WebClip => WebClip,
    Restrictions => Restrictions,
    MailAccount => Mail,
    LockScreenMessage => LockScreenMessage,
    MdmEnrollment => MdmEnrollment,
);

fn invalid(key: &str, reason: impl Into<String>) -> ProfileError {
    ProfileError::InvalidField {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn require_text(key: &str, field: &str, value: &str) -> Result<(), ProfileError> {
    if value.trim().is_empty() {
        Err(invalid(key, format!("{field} must not be empty")))
    } else {
        Ok(())
    }
}

fn string_array(values: &[String]) -> Value {
    Value::Array(values.iter().cloned().map(Value::String).collect())
}

fn insert_opt_str(dict: &mut Dictionary, name: &str, value: Option<&String>) {
    if let Some(value) = value {
        dict.insert(name.into(), value.clone().into());
    }
}

fn insert_opt_bool(dict: &mut Dictionary, name: &str, value: Option<bool>) {
    if let Some(value) = value {
        dict.insert(name.into(), value.into());
    }
}

// ---------------------------------------------------------------------------------------------
// Wi-Fi

/// `EncryptionType` of a protected network.
///
/// Since iOS 16 `WPA2` also joins WPA3 networks and `WPA3` joins WPA3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WifiEncryption {
    /// `WPA2`.
    Wpa2,
    /// `WPA3`.
    Wpa3,
    /// `Any`.
    Any,
}

impl WifiEncryption {
    fn as_str(self) -> &'static str {
        match self {
            Self::Wpa2 => "WPA2",
            Self::Wpa3 => "WPA3",
            Self::Any => "Any",
        }
    }
}

/// `TTLSInnerAuthentication` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InnerAuthentication {
    /// `PAP`.
    Pap,
    /// `CHAP`.
    Chap,
    /// `MSCHAP`.
    Mschap,
    /// `MSCHAPv2` (Apple's default).
    Mschapv2,
    /// `EAP`.
    Eap,
}

impl InnerAuthentication {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pap => "PAP",
            Self::Chap => "CHAP",
            Self::Mschap => "MSCHAP",
            Self::Mschapv2 => "MSCHAPv2",
            Self::Eap => "EAP",
        }
    }
}

/// How the device decides to trust the RADIUS server's certificate.
///
/// Listing anchors or server names switches off the user's "trust this certificate?" prompt,
/// which is what a school wants: pupils must not be able to accept a rogue access point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerTrust {
    /// Keys of root certificate payloads in this profile (`PayloadCertificateAnchorUUID`).
    #[serde(default)]
    pub anchor_certificates: Vec<String>,
    /// Accepted server certificate common names (`TLSTrustedServerNames`), wildcards allowed.
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// The security of a Wi-Fi network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum WifiSecurity {
    /// No encryption (`EncryptionType` `None`).
    Open,
    /// Pre-shared key.
    Personal {
        /// `EncryptionType`.
        encryption: WifiEncryption,
        /// `Password`.
        password: String,
    },
    /// EAP-TLS (`AcceptEAPTypes` `[13]`) with a certificate identity from this profile.
    EapTls {
        /// `EncryptionType`.
        encryption: WifiEncryption,
        /// Key of the PKCS#12 or SCEP payload that supplies the client certificate
        /// (`PayloadCertificateUUID`).
        identity: String,
        /// Optional `UserName` (outer identity name some RADIUS servers log).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_name: Option<String>,
        /// Server certificate trust.
        trust: ServerTrust,
    },
    /// PEAP (`AcceptEAPTypes` `[25]`) with user name and password.
    Peap {
        /// `EncryptionType`.
        encryption: WifiEncryption,
        /// `UserName`; the device asks when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_name: Option<String>,
        /// `UserPassword`; the device asks when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// `OuterIdentity` (anonymous identity outside the tunnel).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outer_identity: Option<String>,
        /// `TTLSInnerAuthentication`. Apple documents this key for TTLS; PEAP always
        /// uses MSCHAPv2 inside, so leave it unset unless a RADIUS setup needs it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inner_authentication: Option<InnerAuthentication>,
        /// Server certificate trust.
        trust: ServerTrust,
    },
}

/// `com.apple.wifi.managed`: a Wi-Fi network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wifi {
    /// `SSID_STR` (1 to 32 bytes).
    pub ssid: String,
    /// `HIDDEN_NETWORK`.
    #[serde(default)]
    pub hidden_network: bool,
    /// `AutoJoin`.
    #[serde(default = "default_true")]
    pub auto_join: bool,
    /// Encryption and authentication.
    pub security: WifiSecurity,
}

fn default_true() -> bool {
    true
}

impl Wifi {
    fn write_keys(
        &self,
        key: &str,
        resolver: &Resolver<'_>,
        dict: &mut Dictionary,
    ) -> Result<(), ProfileError> {
        if self.ssid.is_empty() || self.ssid.len() > 32 {
            return Err(invalid(key, "SSID must be 1 to 32 bytes long"));
        }
        dict.insert("SSID_STR".into(), self.ssid.clone().into());
        dict.insert("HIDDEN_NETWORK".into(), self.hidden_network.into());
        dict.insert("AutoJoin".into(), self.auto_join.into());
        match &self.security {
            WifiSecurity::Open => {
                dict.insert("EncryptionType".into(), "None".into());
            }
            WifiSecurity::Personal {
                encryption,
                password,
            } => {
                // 8..=63 characters is the WPA passphrase range; 64 hex digits is a raw PSK.
                let len = password.chars().count();
                let raw_psk = len == 64 && password.chars().all(|c| c.is_ascii_hexdigit());
                if !(8..=63).contains(&len) && !raw_psk {
                    return Err(invalid(key, "WPA password must be 8 to 63 characters"));
                }
                dict.insert("EncryptionType".into(), encryption.as_str().into());
                dict.insert("Password".into(), password.clone().into());
            }
            WifiSecurity::EapTls {
                encryption,
                identity,
                user_name,
                trust,
            } => {
                dict.insert("EncryptionType".into(), encryption.as_str().into());
                let identity_uuid = resolver.resolve(key, identity, RefKind::Identity)?;
                dict.insert("PayloadCertificateUUID".into(), identity_uuid.into());
                let mut eap = Dictionary::new();
                eap.insert(
                    "AcceptEAPTypes".into(),
                    Value::Array(vec![Value::Integer(13.into())]),
                );
                insert_opt_str(&mut eap, "UserName", user_name.as_ref());
                write_trust(key, trust, resolver, &mut eap)?;
                dict.insert("EAPClientConfiguration".into(), Value::Dictionary(eap));
            }
            WifiSecurity::Peap {
                encryption,
                user_name,
                password,
                outer_identity,
                inner_authentication,
                trust,
            } => {
                dict.insert("EncryptionType".into(), encryption.as_str().into());
                let mut eap = Dictionary::new();
                eap.insert(
                    "AcceptEAPTypes".into(),
                    Value::Array(vec![Value::Integer(25.into())]),
                );
                insert_opt_str(&mut eap, "UserName", user_name.as_ref());
                insert_opt_str(&mut eap, "UserPassword", password.as_ref());
                insert_opt_str(&mut eap, "OuterIdentity", outer_identity.as_ref());
                if let Some(inner) = inner_authentication {
                    eap.insert("TTLSInnerAuthentication".into(), inner.as_str().into());
                }
                write_trust(key, trust, resolver, &mut eap)?;
                dict.insert("EAPClientConfiguration".into(), Value::Dictionary(eap));
            }
        }
        Ok(())
    }
}

fn write_trust(
    key: &str,
    trust: &ServerTrust,
    resolver: &Resolver<'_>,
    eap: &mut Dictionary,
) -> Result<(), ProfileError> {
    if !trust.anchor_certificates.is_empty() {
        let anchors = trust
            .anchor_certificates
            .iter()
            .map(|anchor| {
                resolver
                    .resolve(key, anchor, RefKind::Anchor)
                    .map(Value::String)
            })
            .collect::<Result<Vec<_>, _>>()?;
        eap.insert("PayloadCertificateAnchorUUID".into(), Value::Array(anchors));
    }
    if !trust.server_names.is_empty() {
        eap.insert(
            "TLSTrustedServerNames".into(),
            string_array(&trust.server_names),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// `com.apple.security.root`: a trusted root certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootCertificate {
    /// The certificate, DER encoded (`PayloadContent`).
    #[serde(with = "crate::b64")]
    pub der: Vec<u8>,
    /// `PayloadCertificateFileName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

impl RootCertificate {
    fn write_keys(&self, key: &str, dict: &mut Dictionary) -> Result<(), ProfileError> {
        if self.der.is_empty() {
            return Err(invalid(key, "certificate data must not be empty"));
        }
        insert_opt_str(dict, "PayloadCertificateFileName", self.file_name.as_ref());
        dict.insert("PayloadContent".into(), Value::Data(self.der.clone()));
        Ok(())
    }
}

/// `com.apple.security.pkcs12`: a client identity (certificate and private key).
///
/// Apple warns that such profiles are only obfuscated, not encrypted; deliver them through MDM
/// only, or prefer [`Scep`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pkcs12Identity {
    /// The PKCS#12 file (`PayloadContent`).
    #[serde(with = "crate::b64")]
    pub pkcs12: Vec<u8>,
    /// `Password` protecting the PKCS#12 file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `PayloadCertificateFileName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

impl Pkcs12Identity {
    fn write_keys(&self, key: &str, dict: &mut Dictionary) -> Result<(), ProfileError> {
        if self.pkcs12.is_empty() {
            return Err(invalid(key, "PKCS#12 data must not be empty"));
        }
        insert_opt_str(dict, "PayloadCertificateFileName", self.file_name.as_ref());
        insert_opt_str(dict, "Password", self.password.as_ref());
        dict.insert("PayloadContent".into(), Value::Data(self.pkcs12.clone()));
        Ok(())
    }
}

/// `SubjectAltName` of a SCEP request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScepSubjectAltName {
    /// `rfc822Name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc822_name: Option<String>,
    /// `dNSName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// `uniformResourceIdentifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// `ntPrincipalName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nt_principal_name: Option<String>,
}

/// `com.apple.security.scep`: the device generates a key and asks a SCEP server for a
/// certificate, so the private key never leaves the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scep {
    /// `URL` of the SCEP endpoint.
    pub url: String,
    /// `Name` (CA instance name), if the server needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Subject` as (attribute, value) pairs, one relative distinguished name each, for
    /// example `("CN", "%SerialNumber%")`.
    #[serde(default)]
    pub subject: Vec<(String, String)>,
    /// `Challenge` (pre-shared or one-time secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// `Keysize` in bits: 1024, 2048 or 4096. Apple's default is 1024, so always set it.
    pub key_size: u32,
    /// `Key Usage` bit mask: 1 signing, 4 encryption, 5 both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_usage: Option<u32>,
    /// `CAFingerprint` (hash of the CA certificate).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::b64::option"
    )]
    pub ca_fingerprint: Option<Vec<u8>>,
    /// `Retries` after a PENDING answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// `RetryDelay` in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<u32>,
    /// `SubjectAltName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_alt_name: Option<ScepSubjectAltName>,
}

impl Scep {
    fn write_keys(&self, key: &str, dict: &mut Dictionary) -> Result<(), ProfileError> {
        require_text(key, "SCEP URL", &self.url)?;
        if !matches!(self.key_size, 1024 | 2048 | 4096) {
            return Err(invalid(key, "SCEP key size must be 1024, 2048 or 4096"));
        }
        let mut content = Dictionary::new();
        content.insert("URL".into(), self.url.clone().into());
        insert_opt_str(&mut content, "Name", self.name.as_ref());
        if !self.subject.is_empty() {
            // Each RDN is an array holding one [attribute, value] pair.
            let rdns = self
                .subject
                .iter()
                .map(|(attribute, value)| {
                    Value::Array(vec![Value::Array(vec![
                        Value::String(attribute.clone()),
                        Value::String(value.clone()),
                    ])])
                })
                .collect();
            content.insert("Subject".into(), Value::Array(rdns));
        }
        insert_opt_str(&mut content, "Challenge", self.challenge.as_ref());
        content.insert("Keysize".into(), Value::Integer(self.key_size.into()));
        content.insert("Key Type".into(), "RSA".into());
        if let Some(usage) = self.key_usage {
            content.insert("Key Usage".into(), Value::Integer(usage.into()));
        }
        if let Some(fingerprint) = &self.ca_fingerprint {
            content.insert("CAFingerprint".into(), Value::Data(fingerprint.clone()));
        }
        if let Some(retries) = self.retries {
            content.insert("Retries".into(), Value::Integer(retries.into()));
        }
        if let Some(delay) = self.retry_delay {
            content.insert("RetryDelay".into(), Value::Integer(delay.into()));
        }
        if let Some(san) = &self.subject_alt_name {
            let mut alt = Dictionary::new();
            insert_opt_str(&mut alt, "rfc822Name", san.rfc822_name.as_ref());
            insert_opt_str(&mut alt, "dNSName", san.dns_name.as_ref());
            insert_opt_str(&mut alt, "uniformResourceIdentifier", san.uri.as_ref());
            insert_opt_str(&mut alt, "ntPrincipalName", san.nt_principal_name.as_ref());
            content.insert("SubjectAltName".into(), Value::Dictionary(alt));
        }
        dict.insert("PayloadContent".into(), Value::Dictionary(content));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Web clip

/// `com.apple.webClip.managed`: a home-screen icon that opens a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebClip {
    /// `URL`.
    pub url: String,
    /// `Label` shown under the icon.
    pub label: String,
    /// `IsRemovable`.
    #[serde(default = "default_true")]
    pub is_removable: bool,
    /// `FullScreen` (opens as a web app without Safari UI).
    #[serde(default)]
    pub full_screen: bool,
    /// `Icon`, PNG data.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::b64::option"
    )]
    pub icon: Option<Vec<u8>>,
    /// `Precomposed` (no shine added to the icon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precomposed: Option<bool>,
    /// `IgnoreManifestScope` (full-screen clip may navigate elsewhere without Safari UI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_manifest_scope: Option<bool>,
}

impl WebClip {
    fn write_keys(&self, key: &str, dict: &mut Dictionary) -> Result<(), ProfileError> {
        require_text(key, "web clip URL", &self.url)?;
        require_text(key, "web clip label", &self.label)?;
        dict.insert("URL".into(), self.url.clone().into());
        dict.insert("Label".into(), self.label.clone().into());
        dict.insert("IsRemovable".into(), self.is_removable.into());
        dict.insert("FullScreen".into(), self.full_screen.into());
        if let Some(icon) = &self.icon {
            dict.insert("Icon".into(), Value::Data(icon.clone()));
        }
        insert_opt_bool(dict, "Precomposed", self.precomposed);
        insert_opt_bool(dict, "IgnoreManifestScope", self.ignore_manifest_scope);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Restrictions

/// Maximum app age rating (`ratingApps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppRating {
    /// No apps (0).
    None,
    /// 4+ (100).
    Age4,
    /// 9+ (200).
    Age9,
    /// 12+ (300).
    Age12,
    /// 17+ (600).
    Age17,
    /// All apps (1000).
    All,
}

impl AppRating {
    fn value(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Age4 => 100,
            Self::Age9 => 200,
            Self::Age12 => 300,
            Self::Age17 => 600,
            Self::All => 1000,
        }
    }
}

macro_rules! restrictions {
    ($($(#[doc = $doc:literal])* $field:ident => $apple_key:literal,)*) => {
        /// `com.apple.applicationaccess`: a curated, typed subset of Apple's restrictions.
        ///
        /// Every field is optional; only the fields that are set are rendered, so the device
        /// keeps its defaults for the rest. Many of these keys only work on supervised devices
        /// (all iPads enrolled through Apple School Manager are).
        ///
        /// Unknown field names are refused when reading JSON: a misspelt restriction would
        /// otherwise vanish silently and leave the device unrestricted.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Restrictions {
            $(
                $(#[doc = $doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<bool>,
            )*
            /// `ratingApps`: maximum app age rating.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub rating_apps: Option<AppRating>,
            /// `ratingRegion`, two-letter region for the rating scheme (for example `de`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub rating_region: Option<String>,
        }

        impl Restrictions {
            /// The Apple key of every boolean restriction this type knows, in render order.
            pub const BOOLEAN_KEYS: &'static [&'static str] = &[$($apple_key,)*];

            fn booleans(&self) -> Vec<(&'static str, Option<bool>)> {
                vec![$(($apple_key, self.$field),)*]
            }
        }
    };
}

restrictions! {
    /// `allowCamera`.
    allow_camera => "allowCamera",
    /// `allowScreenShot` (also stops Classroom screen observation when false).
    allow_screen_shot => "allowScreenShot",
    /// `allowRemoteScreenObservation` (Classroom).
    allow_remote_screen_observation => "allowRemoteScreenObservation",
    /// `allowAppInstallation` (supervised).
    allow_app_installation => "allowAppInstallation",
    /// `allowUIAppInstallation`: App Store app (supervised).
    allow_ui_app_installation => "allowUIAppInstallation",
    /// `allowAppRemoval` (supervised).
    allow_app_removal => "allowAppRemoval",
    /// `allowInAppPurchases`.
    allow_in_app_purchases => "allowInAppPurchases",
    /// `allowExplicitContent` (supervised).
    allow_explicit_content => "allowExplicitContent",
    /// `allowBookstoreErotica`.
    allow_bookstore_erotica => "allowBookstoreErotica",
    /// `allowEraseContentAndSettings` (supervised).
    allow_erase_content_and_settings => "allowEraseContentAndSettings",
    /// `forceAutomaticDateAndTime` (supervised).
    force_automatic_date_and_time => "forceAutomaticDateAndTime",
    /// `allowAccountModification` (supervised).
    allow_account_modification => "allowAccountModification",
    /// `allowDeviceNameModification` (supervised).
    allow_device_name_modification => "allowDeviceNameModification",
    /// `allowPasscodeModification` (supervised).
    allow_passcode_modification => "allowPasscodeModification",
    /// `allowWallpaperModification` (supervised).
    allow_wallpaper_modification => "allowWallpaperModification",
    /// `allowSafari` (supervised).
    allow_safari => "allowSafari",
    /// `allowAirDrop` (supervised).
    allow_air_drop => "allowAirDrop",
    /// `allowGameCenter` (supervised).
    allow_game_center => "allowGameCenter",
    /// `allowMultiplayerGaming` (supervised).
    allow_multiplayer_gaming => "allowMultiplayerGaming",
    /// `allowAddingGameCenterFriends` (supervised).
    allow_adding_game_center_friends => "allowAddingGameCenterFriends",
    /// `allowAssistant` (Siri).
    allow_assistant => "allowAssistant",
    /// `allowCloudBackup`.
    allow_cloud_backup => "allowCloudBackup",
    /// `allowUIConfigurationProfileInstallation` (supervised).
    allow_ui_configuration_profile_installation => "allowUIConfigurationProfileInstallation",
    /// `allowEnterpriseAppTrust`.
    allow_enterprise_app_trust => "allowEnterpriseAppTrust",
    /// `allowVPNCreation` (supervised).
    allow_vpn_creation => "allowVPNCreation",
    /// `allowAppClips` (supervised).
    allow_app_clips => "allowAppClips",
    /// `allowEnablingRestrictions`: Screen Time (supervised).
    allow_enabling_restrictions => "allowEnablingRestrictions",
    /// `allowBluetoothModification` (supervised).
    allow_bluetooth_modification => "allowBluetoothModification",
    /// `allowDiagnosticSubmission`.
    allow_diagnostic_submission => "allowDiagnosticSubmission",
    /// `forceWiFiToAllowedNetworksOnly` (supervised).
    force_wifi_to_allowed_networks_only => "forceWiFiToAllowedNetworksOnly",
    /// `forceWiFiPowerOn` (supervised).
    force_wifi_power_on => "forceWiFiPowerOn",
    /// `forceEncryptedBackup`.
    force_encrypted_backup => "forceEncryptedBackup",
    /// `forceClassroomAutomaticallyJoinClasses` (supervised).
    force_classroom_automatically_join_classes => "forceClassroomAutomaticallyJoinClasses",
    /// `forceClassroomUnpromptedAppAndDeviceLock` (supervised).
    force_classroom_unprompted_app_and_device_lock => "forceClassroomUnpromptedAppAndDeviceLock",
    /// `forceClassroomUnpromptedScreenObservation` (supervised).
    force_classroom_unprompted_screen_observation => "forceClassroomUnpromptedScreenObservation",
    /// `forceClassroomRequestPermissionToLeaveClasses` (supervised).
    force_classroom_request_permission_to_leave_classes => "forceClassroomRequestPermissionToLeaveClasses",
}

impl Restrictions {
    fn write_keys(&self, dict: &mut Dictionary) {
        for (apple_key, value) in self.booleans() {
            insert_opt_bool(dict, apple_key, value);
        }
        if let Some(rating) = self.rating_apps {
            dict.insert("ratingApps".into(), Value::Integer(rating.value().into()));
        }
        insert_opt_str(dict, "ratingRegion", self.rating_region.as_ref());
    }
}

// ---------------------------------------------------------------------------------------------
// Mail

/// `EmailAccountType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailAccountType {
    /// `EmailTypeIMAP`.
    Imap,
    /// `EmailTypePOP`.
    Pop,
}

/// `IncomingMailServerAuthentication` / `OutgoingMailServerAuthentication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailAuthentication {
    /// `EmailAuthNone`.
    None,
    /// `EmailAuthPassword`.
    Password,
    /// `EmailAuthCRAMMD5`.
    CramMd5,
    /// `EmailAuthNTLM`.
    Ntlm,
    /// `EmailAuthHTTPMD5`.
    HttpMd5,
}

impl MailAuthentication {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "EmailAuthNone",
            Self::Password => "EmailAuthPassword",
            Self::CramMd5 => "EmailAuthCRAMMD5",
            Self::Ntlm => "EmailAuthNTLM",
            Self::HttpMd5 => "EmailAuthHTTPMD5",
        }
    }
}

/// One direction (incoming or outgoing) of a mail account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailServer {
    /// `…MailServerHostName`.
    pub host_name: String,
    /// `…MailServerPortNumber`; the protocol default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `…MailServerUseSSL`.
    #[serde(default = "default_true")]
    pub use_ssl: bool,
    /// `…MailServerUsername`; the device asks when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `…MailServerAuthentication`.
    pub authentication: MailAuthentication,
    /// `IncomingPassword` / `OutgoingPassword`. Apple advises this only in encrypted profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `com.apple.mail.managed`: an IMAP or POP mail account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailAccount {
    /// `EmailAccountType`.
    pub account_type: MailAccountType,
    /// `EmailAccountDescription` shown in Mail and Settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_description: Option<String>,
    /// `EmailAccountName`: the sender's full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// `EmailAddress`; the device asks when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    /// Incoming server.
    pub incoming: MailServer,
    /// Outgoing (SMTP) server.
    pub outgoing: MailServer,
    /// `OutgoingPasswordSameAsIncomingPassword`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outgoing_password_same_as_incoming: Option<bool>,
    /// `PreventMove`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prevent_move: Option<bool>,
}

impl MailAccount {
    fn write_keys(&self, key: &str, dict: &mut Dictionary) -> Result<(), ProfileError> {
        require_text(key, "incoming mail server", &self.incoming.host_name)?;
        require_text(key, "outgoing mail server", &self.outgoing.host_name)?;
        let account_type = match self.account_type {
            MailAccountType::Imap => "EmailTypeIMAP",
            MailAccountType::Pop => "EmailTypePOP",
        };
        dict.insert("EmailAccountType".into(), account_type.into());
        insert_opt_str(
            dict,
            "EmailAccountDescription",
            self.account_description.as_ref(),
        );
        insert_opt_str(dict, "EmailAccountName", self.account_name.as_ref());
        insert_opt_str(dict, "EmailAddress", self.email_address.as_ref());
        write_mail_server(dict, "Incoming", &self.incoming);
        write_mail_server(dict, "Outgoing", &self.outgoing);
        insert_opt_bool(
            dict,
            "OutgoingPasswordSameAsIncomingPassword",
            self.outgoing_password_same_as_incoming,
        );
        insert_opt_bool(dict, "PreventMove", self.prevent_move);
        Ok(())
    }
}

fn write_mail_server(dict: &mut Dictionary, direction: &str, server: &MailServer) {
    dict.insert(
        format!("{direction}MailServerHostName"),
        server.host_name.clone().into(),
    );
    if let Some(port) = server.port {
        dict.insert(
            format!("{direction}MailServerPortNumber"),
            Value::Integer(port.into()),
        );
    }
    dict.insert(
        format!("{direction}MailServerUseSSL"),
        server.use_ssl.into(),
    );
    if let Some(username) = &server.username {
        dict.insert(
            format!("{direction}MailServerUsername"),
            username.clone().into(),
        );
    }
    dict.insert(
        format!("{direction}MailServerAuthentication"),
        server.authentication.as_str().into(),
    );
    if let Some(password) = &server.password {
        dict.insert(format!("{direction}Password"), password.clone().into());
    }
}

// ---------------------------------------------------------------------------------------------
// Lock screen

/// `com.apple.shareddeviceconfiguration`: text on the lock screen (supervised devices).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockScreenMessage {
    /// `LockScreenFootnote`, for example "If found, return to …".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footnote: Option<String>,
    /// `AssetTagInformation`, for example the inventory number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_tag: Option<String>,
}

impl LockScreenMessage {
    fn write_keys(&self, key: &str, dict: &mut Dictionary) -> Result<(), ProfileError> {
        if self.footnote.is_none() && self.asset_tag.is_none() {
            return Err(invalid(key, "set a footnote, an asset tag or both"));
        }
        insert_opt_str(dict, "AssetTagInformation", self.asset_tag.as_ref());
        insert_opt_str(dict, "LockScreenFootnote", self.footnote.as_ref());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// MDM enrolment

/// Values of `ServerCapabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MdmServerCapability {
    /// `com.apple.mdm.per-user-connections` (required for Shared iPad; cannot be added or
    /// removed by a later profile update).
    PerUserConnections,
    /// `com.apple.mdm.bootstraptoken`.
    BootstrapToken,
    /// `com.apple.mdm.token` (the `GetToken` check-in).
    Token,
}

impl MdmServerCapability {
    fn as_str(self) -> &'static str {
        match self {
            Self::PerUserConnections => "com.apple.mdm.per-user-connections",
            Self::BootstrapToken => "com.apple.mdm.bootstraptoken",
            Self::Token => "com.apple.mdm.token",
        }
    }
}

/// `com.apple.mdm`: the enrolment payload.
///
/// `ServerURL`, `CheckInURL` and `Topic` must never change once devices are enrolled, and
/// `AccessRights` may not grow: the device rejects such an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdmEnrollment {
    /// `ServerURL` (commands and reports), `https://` only.
    pub server_url: String,
    /// `CheckInURL`; `ServerURL` is used when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_in_url: Option<String>,
    /// `Topic`: the push certificate's topic, `com.apple.mgmt.…`.
    pub topic: String,
    /// Key of the PKCS#12 or SCEP payload holding the device identity
    /// (`IdentityCertificateUUID`).
    pub identity: String,
    /// `SignMessage`: the device signs every request (`Mdm-Signature` header).
    #[serde(default)]
    pub sign_message: bool,
    /// `AccessRights` bit mask; 8191 grants everything.
    #[serde(default = "MdmEnrollment::all_access_rights")]
    pub access_rights: u32,
    /// `CheckOutWhenRemoved`.
    #[serde(default)]
    pub check_out_when_removed: bool,
    /// `ServerCapabilities`.
    #[serde(default)]
    pub server_capabilities: Vec<MdmServerCapability>,
    /// `UseDevelopmentAPNS`; leave unset for certificates from Apple's push portal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_development_apns: Option<bool>,
}

impl MdmEnrollment {
    /// Every access right (1 | 2 | … | 4096).
    pub const ALL_ACCESS_RIGHTS: u32 = 8191;

    fn all_access_rights() -> u32 {
        Self::ALL_ACCESS_RIGHTS
    }

    fn write_keys(
        &self,
        key: &str,
        resolver: &Resolver<'_>,
        dict: &mut Dictionary,
    ) -> Result<(), ProfileError> {
        if !self.server_url.starts_with("https://") {
            return Err(invalid(key, "ServerURL must start with https://"));
        }
        if let Some(url) = &self.check_in_url
            && !url.starts_with("https://")
        {
            return Err(invalid(key, "CheckInURL must start with https://"));
        }
        if !self.topic.starts_with("com.apple.mgmt.") {
            return Err(invalid(key, "Topic must start with com.apple.mgmt."));
        }
        let rights = self.access_rights;
        if rights == 0 || rights > Self::ALL_ACCESS_RIGHTS {
            return Err(invalid(key, "AccessRights must be between 1 and 8191"));
        }
        // Apple: "Specify 1 if you specify 2. Specify 64 if you specify 128."
        if (rights & 2 != 0 && rights & 1 == 0) || (rights & 128 != 0 && rights & 64 == 0) {
            return Err(invalid(
                key,
                "AccessRights: right 2 needs right 1 and right 128 needs right 64",
            ));
        }
        let identity = resolver.resolve(key, &self.identity, RefKind::Identity)?;
        dict.insert("IdentityCertificateUUID".into(), identity.into());
        dict.insert("Topic".into(), self.topic.clone().into());
        dict.insert("ServerURL".into(), self.server_url.clone().into());
        insert_opt_str(dict, "CheckInURL", self.check_in_url.as_ref());
        dict.insert("SignMessage".into(), self.sign_message.into());
        dict.insert("AccessRights".into(), Value::Integer(rights.into()));
        dict.insert(
            "CheckOutWhenRemoved".into(),
            self.check_out_when_removed.into(),
        );
        if !self.server_capabilities.is_empty() {
            let mut seen = Vec::new();
            for capability in &self.server_capabilities {
                if !seen.contains(capability) {
                    seen.push(*capability);
                }
            }
            dict.insert(
                "ServerCapabilities".into(),
                Value::Array(
                    seen.iter()
                        .map(|capability| Value::String(capability.as_str().to_owned()))
                        .collect(),
                ),
            );
        }
        insert_opt_bool(dict, "UseDevelopmentAPNS", self.use_development_apns);
        Ok(())
    }
}
