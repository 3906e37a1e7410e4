//! Typed builders for the CSP nodes a school laptop needs.
//!
//! URIs are those of Microsoft's CSP reference (DDF). Notes on what the reference says about
//! each node are kept next to the builder.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha1::{Digest as _, Sha1};

use super::CspError;
use super::syncml::{CmdId, CmdIdSource, CommandBody, Format, Item, SyncMlCommand};
use super::wlan::{WlanProfile, hex_upper};

/// Whether a node applies to the device or to the signed-in user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// `./Device/…`.
    #[default]
    Device,
    /// `./User/…`; fails with 405 when no user is signed in.
    User,
}

impl Scope {
    fn prefix(self) -> &'static str {
        match self {
            Self::Device => "./Device",
            Self::User => "./User",
        }
    }
}

/// A certificate's SHA-1 thumbprint, the name Windows uses for certificates in its stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Thumbprint(String);

impl Thumbprint {
    /// The thumbprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(hex_upper(&Sha1::digest(der)))
    }

    /// Parses 40 hex digits (spaces and colons between bytes are ignored).
    pub fn from_hex(text: &str) -> Result<Self, CspError> {
        let digits: String = text.chars().filter(|c| !matches!(c, ' ' | ':')).collect();
        if digits.len() != 40 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CspError::InvalidField {
                field: "thumbprint",
                reason: format!("{text:?} is not 40 hex digits"),
            });
        }
        Ok(Self(digits.to_ascii_uppercase()))
    }

    /// Upper-case hex without separators, as used in CSP node names.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lower-case hex bytes separated by spaces, as `<TrustedRootCA>` in WLAN profiles
    /// expects.
    pub(crate) fn spaced_lower_hex(&self) -> String {
        self.0
            .as_bytes()
            .chunks(2)
            .map(|pair| String::from_utf8_lossy(pair).to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl TryFrom<String> for Thumbprint {
    type Error = CspError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::from_hex(&value)
    }
}

impl From<Thumbprint> for String {
    fn from(value: Thumbprint) -> Self {
        value.0
    }
}

// ---------------------------------------------------------------------------------------------
// Wi-Fi

/// The `WlanXml` node of a Wi-Fi profile.
///
/// The SSID becomes a URI segment, which must be a valid RFC 2396 URI (WiFi CSP: non-ASCII
/// characters must be %-escaped). Every byte outside RFC 2396's unreserved and segment
/// characters is therefore escaped, including `/`, space, `%`, `<`, `>` and `#`.
pub fn wifi_profile_uri(scope: Scope, ssid: &str) -> String {
    format!(
        "{}/Vendor/MSFT/WiFi/Profile/{}/WlanXml",
        scope.prefix(),
        escape_uri_segment(ssid)
    )
}

/// `<Add>` of a Wi-Fi profile (WiFi CSP). The WiFi CSP only accepts `Replace` for a node that
/// already exists, so installation is an `Add`; to change a profile, delete it first or send
/// a `Replace`.
pub fn wifi_profile(
    cmd_id: CmdId,
    scope: Scope,
    profile: &WlanProfile,
) -> Result<SyncMlCommand, CspError> {
    let xml = profile.to_xml()?;
    SyncMlCommand::new(
        cmd_id,
        CommandBody::Add(vec![Item::with_data(
            wifi_profile_uri(scope, &profile.ssid),
            Format::Chr,
            xml,
        )]),
    )
}

/// `<Delete>` of a Wi-Fi profile.
pub fn wifi_profile_delete(
    cmd_id: CmdId,
    scope: Scope,
    ssid: &str,
) -> Result<SyncMlCommand, CspError> {
    SyncMlCommand::new(
        cmd_id,
        CommandBody::Delete(vec![Item::target(wifi_profile_uri(scope, ssid))]),
    )
}

fn escape_uri_segment(segment: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'_'
                    | b'.'
                    | b'!'
                    | b'~'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b':'
                    | b'@'
                    | b'&'
                    | b'='
                    | b'+'
                    | b'$'
                    | b','
            );
        if keep {
            out.push(char::from(byte));
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Certificates

fn root_ca_uri(thumbprint: &Thumbprint) -> String {
    format!("{}/EncodedCertificate", root_ca_certificate_uri(thumbprint))
}

/// The node of a trusted root CA (RootCATrustedCertificates CSP); it exists while the
/// certificate is installed.
pub fn root_ca_certificate_uri(thumbprint: &Thumbprint) -> String {
    format!(
        "./Device/Vendor/MSFT/RootCATrustedCertificates/Root/{}",
        thumbprint.as_str()
    )
}

/// `<Add>` of a trusted root CA (RootCATrustedCertificates CSP, device scope only). The node is
/// named after the certificate's SHA-1 thumbprint, computed here from the DER bytes.
pub fn root_ca_certificate(cmd_id: CmdId, der: &[u8]) -> Result<SyncMlCommand, CspError> {
    if der.is_empty() {
        return Err(CspError::InvalidField {
            field: "EncodedCertificate",
            reason: "certificate must not be empty".to_owned(),
        });
    }
    SyncMlCommand::new(
        cmd_id,
        CommandBody::Add(vec![Item::with_data(
            root_ca_uri(&Thumbprint::of_der(der)),
            Format::B64,
            STANDARD.encode(der),
        )]),
    )
}

/// `<Delete>` of a trusted root CA.
pub fn root_ca_certificate_delete(
    cmd_id: CmdId,
    thumbprint: &Thumbprint,
) -> Result<SyncMlCommand, CspError> {
    SyncMlCommand::new(
        cmd_id,
        CommandBody::Delete(vec![Item::target(root_ca_certificate_uri(thumbprint))]),
    )
}

/// `KeyLocation` of a PFX installation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyLocation {
    /// 1: TPM, fail if there is none.
    TpmRequired,
    /// 2: TPM if present, otherwise software.
    #[default]
    TpmIfPresent,
    /// 3: software (the only location where the key can be exportable).
    Software,
}

impl KeyLocation {
    fn value(self) -> u8 {
        match self {
            Self::TpmRequired => 1,
            Self::TpmIfPresent => 2,
            Self::Software => 3,
        }
    }
}

/// A client certificate delivered as PKCS#12 (ClientCertificateInstall `PFXCertInstall`).
///
/// The password travels in clear text (`PFXCertPasswordEncryptionType` 0) inside the TLS
/// session; prefer SCEP where the CA supports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PfxCertificate {
    /// Node name under `PFXCertInstall`; Microsoft's example uses the certificate thumbprint.
    pub unique_id: String,
    /// The PKCS#12 file.
    #[serde(with = "crate::b64")]
    pub pfx: Vec<u8>,
    /// Its password.
    pub password: String,
    /// Where the private key goes.
    #[serde(default)]
    pub key_location: KeyLocation,
    /// `PFXKeyExportable`; Windows only accepts `true` with [`KeyLocation::Software`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_exportable: Option<bool>,
    /// `ContainerName` for the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

/// The node of a PFX installation (ClientCertificateInstall CSP); it exists while the
/// certificate is installed.
pub fn pfx_certificate_uri(scope: Scope, unique_id: &str) -> String {
    pfx_base(scope, unique_id)
}

fn pfx_base(scope: Scope, unique_id: &str) -> String {
    format!(
        "{}/Vendor/MSFT/ClientCertificateInstall/PFXCertInstall/{}",
        scope.prefix(),
        escape_uri_segment(unique_id)
    )
}

/// Installs a PKCS#12 client certificate: an `<Atomic>` whose commands set `KeyLocation`,
/// the password and its encryption type (0, clear text), the optional settings, and finally
/// `PFXCertBlob`. Microsoft requires the whole set inside one Atomic and the blob after the
/// other parameters, because adding the blob triggers the import.
pub fn pfx_certificate_install(
    ids: &mut impl CmdIdSource,
    scope: Scope,
    certificate: &PfxCertificate,
) -> Result<SyncMlCommand, CspError> {
    if certificate.unique_id.is_empty() {
        return Err(CspError::InvalidField {
            field: "UniqueID",
            reason: "must not be empty".to_owned(),
        });
    }
    if certificate.pfx.is_empty() {
        return Err(CspError::InvalidField {
            field: "PFXCertBlob",
            reason: "must not be empty".to_owned(),
        });
    }
    if certificate.key_exportable == Some(true) && certificate.key_location != KeyLocation::Software
    {
        return Err(CspError::InvalidField {
            field: "PFXKeyExportable",
            reason: "an exportable key needs KeyLocation Software".to_owned(),
        });
    }
    let base = pfx_base(scope, &certificate.unique_id);
    let atomic_id = ids.next_cmd_id();
    let mut add = |node: &str, format: Format, data: String| {
        SyncMlCommand::new(
            ids.next_cmd_id(),
            CommandBody::Add(vec![Item::with_data(
                format!("{base}/{node}"),
                format,
                data,
            )]),
        )
    };
    let mut commands = vec![
        add(
            "KeyLocation",
            Format::Int,
            certificate.key_location.value().to_string(),
        )?,
        add("PFXCertPassword", Format::Chr, certificate.password.clone())?,
        add("PFXCertPasswordEncryptionType", Format::Int, "0".to_owned())?,
    ];
    if let Some(container) = &certificate.container_name {
        commands.push(add("ContainerName", Format::Chr, container.clone())?);
    }
    if let Some(exportable) = certificate.key_exportable {
        commands.push(add(
            "PFXKeyExportable",
            Format::Bool,
            exportable.to_string(),
        )?);
    }
    // Microsoft's own example sends the base64 blob with Format chr.
    commands.push(add(
        "PFXCertBlob",
        Format::Chr,
        STANDARD.encode(&certificate.pfx),
    )?);
    SyncMlCommand::new(atomic_id, CommandBody::Atomic(commands))
}

/// `<Delete>` of a PFX installation (removes the certificate and its key).
pub fn pfx_certificate_delete(
    cmd_id: CmdId,
    scope: Scope,
    unique_id: &str,
) -> Result<SyncMlCommand, CspError> {
    SyncMlCommand::new(
        cmd_id,
        CommandBody::Delete(vec![Item::target(pfx_base(scope, unique_id))]),
    )
}

// ---------------------------------------------------------------------------------------------
// Policies

macro_rules! windows_restrictions {
    ($($(#[doc = $doc:literal])* $field:ident => $policy:literal,)*) => {
        /// A curated set of Policy CSP settings, each `true` = 1 / `false` = 0.
        ///
        /// Only fields that are set are sent; the rest keep the device's defaults. Unknown
        /// field names are refused when reading JSON, so a misspelt policy is not lost.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct WindowsRestrictions {
            $(
                $(#[doc = $doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<bool>,
            )*
        }

        impl WindowsRestrictions {
            /// Every policy path (below `./Device/Vendor/MSFT/Policy/Config/`) this type knows.
            pub const POLICIES: &'static [&'static str] = &[$($policy,)*];

            fn settings(&self) -> Vec<(&'static str, Option<bool>)> {
                vec![$(($policy, self.$field),)*]
            }
        }
    };
}

windows_restrictions! {
    /// `Camera/AllowCamera`.
    allow_camera => "Camera/AllowCamera",
    /// `Experience/AllowManualMDMUnenrollment`: `false` stops users removing the enrolment.
    allow_manual_mdm_unenrollment => "Experience/AllowManualMDMUnenrollment",
    /// `Experience/AllowCortana`.
    allow_cortana => "Experience/AllowCortana",
    /// `Experience/AllowWindowsConsumerFeatures` (suggested apps; Enterprise/Education).
    allow_windows_consumer_features => "Experience/AllowWindowsConsumerFeatures",
    /// `Accounts/AllowMicrosoftAccountConnection`.
    allow_microsoft_account_connection => "Accounts/AllowMicrosoftAccountConnection",
    /// `Accounts/AllowAddingNonMicrosoftAccountsManually`.
    allow_adding_non_microsoft_accounts_manually => "Accounts/AllowAddingNonMicrosoftAccountsManually",
    /// `ApplicationManagement/RequirePrivateStoreOnly`.
    require_private_store_only => "ApplicationManagement/RequirePrivateStoreOnly",
    /// `ApplicationManagement/BlockNonAdminUserInstall`.
    block_non_admin_user_install => "ApplicationManagement/BlockNonAdminUserInstall",
    /// `Storage/RemovableDiskDenyWriteAccess`.
    removable_disk_deny_write_access => "Storage/RemovableDiskDenyWriteAccess",
    /// `Education/IsEducationEnvironment`.
    is_education_environment => "Education/IsEducationEnvironment",
}

const POLICY_BASE: &str = "./Device/Vendor/MSFT/Policy/Config";

/// One `<Replace>` per set policy (Policy CSP adds missing nodes on Replace). Separate
/// commands give one `Status` per policy, so one unsupported setting (for example on an
/// edition that lacks it) does not hide the others.
pub fn restrictions(
    ids: &mut impl CmdIdSource,
    restrictions: &WindowsRestrictions,
) -> Result<Vec<SyncMlCommand>, CspError> {
    restrictions
        .settings()
        .into_iter()
        .filter_map(|(policy, value)| value.map(|value| (policy, value)))
        .map(|(policy, value)| {
            SyncMlCommand::new(
                ids.next_cmd_id(),
                CommandBody::Replace(vec![Item::with_data(
                    format!("{POLICY_BASE}/{policy}"),
                    Format::Int,
                    u8::from(value).to_string(),
                )]),
            )
        })
        .collect()
}

/// The sign-in screen notice (LocalPoliciesSecurityOptions
/// `InteractiveLogon_MessageTitleForUsersAttemptingToLogOn` and
/// `InteractiveLogon_MessageTextForUsersAttemptingToLogOn`): the closest Windows has to an
/// iPad lock-screen footnote. Windows shows it before every sign-in and the user must confirm.
pub fn lock_screen_message(
    ids: &mut impl CmdIdSource,
    title: Option<&str>,
    text: &str,
) -> Result<Vec<SyncMlCommand>, CspError> {
    if text.trim().is_empty() {
        return Err(CspError::InvalidField {
            field: "InteractiveLogon_MessageTextForUsersAttemptingToLogOn",
            reason: "must not be empty".to_owned(),
        });
    }
    let base = format!("{POLICY_BASE}/LocalPoliciesSecurityOptions");
    let mut commands = Vec::new();
    if let Some(title) = title {
        commands.push(SyncMlCommand::new(
            ids.next_cmd_id(),
            CommandBody::Replace(vec![Item::with_data(
                format!("{base}/InteractiveLogon_MessageTitleForUsersAttemptingToLogOn"),
                Format::Chr,
                title,
            )]),
        )?);
    }
    commands.push(SyncMlCommand::new(
        ids.next_cmd_id(),
        CommandBody::Replace(vec![Item::with_data(
            format!("{base}/InteractiveLogon_MessageTextForUsersAttemptingToLogOn"),
            Format::Chr,
            text,
        )]),
    )?);
    Ok(commands)
}

/// Which node renames the computer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComputerNameNode {
    /// `./DevDetail/Ext/Microsoft/DNSComputerName` (`Replace`), Windows 10 2004 and later;
    /// Microsoft says it replaces the Accounts CSP node on desktops.
    #[default]
    DevDetailDnsComputerName,
    /// `./Device/Vendor/MSFT/Accounts/Domain/ComputerName` (`Add`, Windows 10 1803+).
    AccountsDomainComputerName,
}

/// Renames the computer. Both nodes take effect only after a reboot (send [`reboot_now`]) and
/// accept the macros `%SERIAL%` and `%RAND:n%`; NetBIOS limits the name to 15 characters when
/// a macro is used with the Accounts node.
pub fn computer_name(
    cmd_id: CmdId,
    name: &str,
    node: ComputerNameNode,
) -> Result<SyncMlCommand, CspError> {
    if name.is_empty() || name.len() > 63 || name.chars().any(char::is_whitespace) {
        return Err(CspError::InvalidField {
            field: "ComputerName",
            reason: format!("{name:?} must be 1 to 63 characters without spaces"),
        });
    }
    let body = match node {
        ComputerNameNode::DevDetailDnsComputerName => CommandBody::Replace(vec![Item::with_data(
            "./DevDetail/Ext/Microsoft/DNSComputerName",
            Format::Chr,
            name,
        )]),
        ComputerNameNode::AccountsDomainComputerName => CommandBody::Add(vec![Item::with_data(
            "./Device/Vendor/MSFT/Accounts/Domain/ComputerName",
            Format::Chr,
            name,
        )]),
    };
    SyncMlCommand::new(cmd_id, body)
}

// ---------------------------------------------------------------------------------------------
// Inventory and actions

/// Nodes worth reading for the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryNode {
    /// `./DevDetail/SwV`: OS version `Major.Minor.Build.QFE`.
    OsVersion,
    /// `./DevDetail/Ext/Microsoft/OSPlatform`: product name, for example "Windows 10 Pro".
    OsPlatform,
    /// `./Vendor/MSFT/DeviceStatus/OS/Edition`: numeric edition (SKU).
    OsEdition,
    /// `./DevDetail/Ext/Microsoft/LocalTime`: the device clock (ISO 8601).
    LocalTime,
    /// `./DevInfo/Man`: manufacturer.
    Manufacturer,
    /// `./DevInfo/Mod`: model.
    Model,
    /// `./DevDetail/Ext/Microsoft/SMBIOSSerialNumber`: serial number (1809+).
    SerialNumber,
    /// `./DevDetail/Ext/Microsoft/DNSComputerName`: computer name (2004+).
    ComputerName,
    /// `./DevDetail/Ext/Microsoft/TotalRAM`: memory in MB.
    TotalRam,
    /// `./DevDetail/Ext/Microsoft/TotalStorage`: storage in MB. Microsoft documents this node
    /// for Windows 10 Mobile only; desktops may answer 404.
    TotalStorage,
    /// `./Vendor/MSFT/DeviceStatus/Battery/EstimatedChargeRemaining`.
    BatteryChargeRemaining,
    /// `./Vendor/MSFT/DeviceStatus/Compliance/EncryptionCompliance`.
    EncryptionCompliance,
    /// `./Vendor/MSFT/DeviceStatus/SecureBootState`.
    SecureBootState,
    /// Any other node.
    Other(String),
}

impl InventoryNode {
    /// The node's URI.
    pub fn uri(&self) -> &str {
        match self {
            Self::OsVersion => "./DevDetail/SwV",
            Self::OsPlatform => "./DevDetail/Ext/Microsoft/OSPlatform",
            Self::OsEdition => "./Vendor/MSFT/DeviceStatus/OS/Edition",
            Self::LocalTime => "./DevDetail/Ext/Microsoft/LocalTime",
            Self::Manufacturer => "./DevInfo/Man",
            Self::Model => "./DevInfo/Mod",
            Self::SerialNumber => "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber",
            Self::ComputerName => "./DevDetail/Ext/Microsoft/DNSComputerName",
            Self::TotalRam => "./DevDetail/Ext/Microsoft/TotalRAM",
            Self::TotalStorage => "./DevDetail/Ext/Microsoft/TotalStorage",
            Self::BatteryChargeRemaining => {
                "./Vendor/MSFT/DeviceStatus/Battery/EstimatedChargeRemaining"
            }
            Self::EncryptionCompliance => {
                "./Vendor/MSFT/DeviceStatus/Compliance/EncryptionCompliance"
            }
            Self::SecureBootState => "./Vendor/MSFT/DeviceStatus/SecureBootState",
            Self::Other(uri) => uri,
        }
    }

    /// The nodes a routine inventory reads.
    pub fn default_inventory() -> Vec<Self> {
        vec![
            Self::OsVersion,
            Self::OsPlatform,
            Self::OsEdition,
            Self::LocalTime,
            Self::Manufacturer,
            Self::Model,
            Self::SerialNumber,
            Self::ComputerName,
            Self::TotalRam,
            Self::TotalStorage,
            Self::BatteryChargeRemaining,
        ]
    }
}

/// One `<Get>` with an item per node; the device answers with one `<Results>` item per node.
pub fn get_nodes(cmd_id: CmdId, nodes: &[InventoryNode]) -> Result<SyncMlCommand, CspError> {
    SyncMlCommand::new(
        cmd_id,
        CommandBody::Get(nodes.iter().map(|node| Item::target(node.uri())).collect()),
    )
}

/// One `<Delete>` with an item per URI, to remove settings a device should no longer have.
pub fn delete_nodes(cmd_id: CmdId, uris: &[&str]) -> Result<SyncMlCommand, CspError> {
    SyncMlCommand::new(
        cmd_id,
        CommandBody::Delete(uris.iter().map(|uri| Item::target(*uri)).collect()),
    )
}

fn exec(cmd_id: CmdId, uri: &str) -> Result<SyncMlCommand, CspError> {
    SyncMlCommand::new(cmd_id, CommandBody::Exec(vec![Item::target(uri)]))
}

/// `<Exec>` `./Device/Vendor/MSFT/Reboot/RebootNow`.
pub fn reboot_now(cmd_id: CmdId) -> Result<SyncMlCommand, CspError> {
    exec(cmd_id, "./Device/Vendor/MSFT/Reboot/RebootNow")
}

/// `<Exec>` `./Device/Vendor/MSFT/RemoteLock/Lock`. Microsoft's RemoteLock reference says the
/// CSP is supported on Windows 10 Mobile only, so desktops are expected to answer with an
/// error status (405 when no PIN is set); keep it for devices that do support it.
pub fn remote_lock(cmd_id: CmdId) -> Result<SyncMlCommand, CspError> {
    exec(cmd_id, "./Device/Vendor/MSFT/RemoteLock/Lock")
}

/// `<Exec>` `./Device/Vendor/MSFT/RemoteWipe/doWipe`: reset to factory state, user data gone.
pub fn remote_wipe(cmd_id: CmdId) -> Result<SyncMlCommand, CspError> {
    exec(cmd_id, "./Device/Vendor/MSFT/RemoteWipe/doWipe")
}
