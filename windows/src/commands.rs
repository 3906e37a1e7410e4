//! Typed Windows commands for the shared command queue.
//!
//! The admin API queues `{request_type, parameters}`; for a Windows device the request type is
//! one of [`REQUEST_TYPES`] and [`validate_command`] turns the parameters into the payload that
//! is stored. When the device next asks for work, [`render_command`] builds the SyncML command
//! from the stored payload, with the queue's command id as `CmdID` (Windows accepts any
//! string), so that the device's `Status`/`Results` name the queued command directly.
//!
//! The CSP blocks themselves come from `flotte-profiles`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flotte_profiles::windows::{
    CmdId, CommandBody, CspError, Format, InventoryNode, Item, PfxCertificate, Scope,
    SyncMlCommand, WlanProfile, pfx_certificate_install, reboot_now, remote_lock, remote_wipe,
    root_ca_certificate, wifi_profile,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every request type of a Windows command starts with this.
pub const PREFIX: &str = "Windows:";

/// The request types a Windows device accepts, with what each does.
pub const REQUEST_TYPES: &[(&str, &str)] = &[
    (
        "Windows:Inventory",
        "read the inventory nodes (optional `nodes`: CSP URIs)",
    ),
    ("Windows:Get", "read CSP nodes: `uris`"),
    (
        "Windows:Add",
        "add CSP nodes: `items` [{uri, format, data, type}]",
    ),
    ("Windows:Replace", "set CSP nodes: `items`"),
    ("Windows:Exec", "run CSP actions: `items`"),
    ("Windows:Delete", "delete CSP nodes: `uris`"),
    ("Windows:Reboot", "restart now"),
    (
        "Windows:Lock",
        "lock the screen (RemoteLock; desktops may answer 405)",
    ),
    ("Windows:Wipe", "reset to factory state, user data gone"),
    (
        "Windows:WiFi",
        "install a Wi-Fi profile: `profile` (WlanProfile), optional `scope`",
    ),
    (
        "Windows:RootCertificate",
        "trust a root CA: `certificate` (base64 DER or PEM)",
    ),
    (
        "Windows:ClientCertificate",
        "install a PKCS#12 client certificate: `certificate` (PfxCertificate), optional `scope`",
    ),
];

/// The nodes of an inventory query when none are named: the profiles crate's routine set
/// plus the system drive's size and free space through the WMI bridge (`./cimV2`), the only
/// source of free storage on desktops.
pub const FREE_SPACE_URI: &str =
    "./cimV2/Win32_LogicalDisk/Win32_LogicalDisk.DeviceID=\"C:\"/FreeSpace";
/// The system drive's size, see [`FREE_SPACE_URI`].
pub const DISK_SIZE_URI: &str = "./cimV2/Win32_LogicalDisk/Win32_LogicalDisk.DeviceID=\"C:\"/Size";

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not a Windows request type.
    #[error("unknown Windows request type {0:?}; known: {known}", known = known_types())]
    UnknownRequestType(String),
    /// The parameters do not fit the request type.
    #[error("invalid parameters for {request_type}: {reason}")]
    InvalidParameters {
        /// The request type.
        request_type: String,
        /// What is wrong.
        reason: String,
    },
}

fn known_types() -> String {
    REQUEST_TYPES
        .iter()
        .map(|(t, _)| *t)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `request_type` names a Windows command.
pub fn is_windows_request_type(request_type: &str) -> bool {
    request_type.starts_with(PREFIX)
}

/// One item of a raw CSP command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawItem {
    /// The node, e.g. `./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera`.
    pub uri: String,
    /// `Meta/Format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// `Meta/Type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// `Data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Uris {
    uris: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryParams {
    #[serde(default)]
    nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Items {
    items: Vec<RawItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WiFiParams {
    #[serde(default)]
    scope: Scope,
    profile: WlanProfile,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootCertificateParams {
    /// Base64 DER, or PEM.
    certificate: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientCertificateParams {
    #[serde(default)]
    scope: Scope,
    certificate: PfxCertificate,
}

/// A Windows command, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowsCommand {
    /// `Get` of inventory nodes.
    Inventory(Vec<String>),
    /// `Get` of arbitrary nodes.
    Get(Vec<String>),
    /// `Add` items.
    Add(Vec<RawItem>),
    /// `Replace` items.
    Replace(Vec<RawItem>),
    /// `Exec` items.
    Exec(Vec<RawItem>),
    /// `Delete` nodes.
    Delete(Vec<String>),
    /// `Exec` Reboot/RebootNow.
    Reboot,
    /// `Exec` RemoteLock/Lock.
    Lock,
    /// `Exec` RemoteWipe/doWipe.
    Wipe,
    /// `Add` of a WLAN profile.
    WiFi {
        /// Device or user.
        scope: Scope,
        /// The network.
        profile: WlanProfile,
    },
    /// `Add` of a trusted root.
    RootCertificate(Vec<u8>),
    /// `Atomic` PFX installation.
    ClientCertificate {
        /// Device or user.
        scope: Scope,
        /// The PKCS#12 and how to import it.
        certificate: PfxCertificate,
    },
}

fn params<T: serde::de::DeserializeOwned>(
    request_type: &str,
    parameters: &Value,
) -> Result<T, CommandError> {
    // `null` (no parameters given) means "none", which is what `{}` says too.
    let value = if parameters.is_null() {
        Value::Object(Default::default())
    } else {
        parameters.clone()
    };
    serde_json::from_value(value).map_err(|e| CommandError::InvalidParameters {
        request_type: request_type.to_owned(),
        reason: e.to_string(),
    })
}

fn certificate_der(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim();
    let body = match trimmed.strip_prefix("-----BEGIN CERTIFICATE-----") {
        Some(rest) => rest
            .split("-----END CERTIFICATE-----")
            .next()
            .unwrap_or_default(),
        None => trimmed,
    };
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(compact)
        .map_err(|e| format!("certificate is neither PEM nor base64 DER: {e}"))?;
    // A DER certificate is a SEQUENCE; anything else is certainly not one.
    if der.first() != Some(&0x30) {
        return Err("certificate is not DER".into());
    }
    Ok(der)
}

impl WindowsCommand {
    /// Reads a command from the API's request type and parameters, or from a stored payload.
    pub fn parse(request_type: &str, parameters: &Value) -> Result<Self, CommandError> {
        let invalid = |reason: String| CommandError::InvalidParameters {
            request_type: request_type.to_owned(),
            reason,
        };
        let command = match request_type {
            "Windows:Inventory" => {
                let p: InventoryParams = params(request_type, parameters)?;
                Self::Inventory(if p.nodes.is_empty() {
                    default_inventory_uris()
                } else {
                    p.nodes
                })
            }
            "Windows:Get" => Self::Get(params::<Uris>(request_type, parameters)?.uris),
            "Windows:Delete" => Self::Delete(params::<Uris>(request_type, parameters)?.uris),
            "Windows:Add" => Self::Add(params::<Items>(request_type, parameters)?.items),
            "Windows:Replace" => Self::Replace(params::<Items>(request_type, parameters)?.items),
            "Windows:Exec" => Self::Exec(params::<Items>(request_type, parameters)?.items),
            "Windows:Reboot" | "Windows:Lock" | "Windows:Wipe" => {
                params::<NoParams>(request_type, parameters)?;
                match request_type {
                    "Windows:Reboot" => Self::Reboot,
                    "Windows:Lock" => Self::Lock,
                    _ => Self::Wipe,
                }
            }
            "Windows:WiFi" => {
                let p: WiFiParams = params(request_type, parameters)?;
                Self::WiFi {
                    scope: p.scope,
                    profile: p.profile,
                }
            }
            "Windows:RootCertificate" => {
                let p: RootCertificateParams = params(request_type, parameters)?;
                Self::RootCertificate(certificate_der(&p.certificate).map_err(invalid)?)
            }
            "Windows:ClientCertificate" => {
                let p: ClientCertificateParams = params(request_type, parameters)?;
                Self::ClientCertificate {
                    scope: p.scope,
                    certificate: p.certificate,
                }
            }
            other => return Err(CommandError::UnknownRequestType(other.to_owned())),
        };
        // Building the SyncML once checks everything the device would trip over (absolute
        // URIs, characters XML cannot carry, empty item lists, WLAN profile rules).
        command
            .to_syncml("check")
            .map_err(|e| invalid(e.to_string()))?;
        Ok(command)
    }

    /// The request type this command is queued under.
    pub fn request_type(&self) -> &'static str {
        match self {
            Self::Inventory(_) => "Windows:Inventory",
            Self::Get(_) => "Windows:Get",
            Self::Add(_) => "Windows:Add",
            Self::Replace(_) => "Windows:Replace",
            Self::Exec(_) => "Windows:Exec",
            Self::Delete(_) => "Windows:Delete",
            Self::Reboot => "Windows:Reboot",
            Self::Lock => "Windows:Lock",
            Self::Wipe => "Windows:Wipe",
            Self::WiFi { .. } => "Windows:WiFi",
            Self::RootCertificate(_) => "Windows:RootCertificate",
            Self::ClientCertificate { .. } => "Windows:ClientCertificate",
        }
    }

    /// The payload to store: the parameters in normal form (defaults filled in).
    pub fn payload(&self) -> Value {
        match self {
            Self::Inventory(nodes) => json(&InventoryParams {
                nodes: nodes.clone(),
            }),
            Self::Get(uris) | Self::Delete(uris) => json(&Uris { uris: uris.clone() }),
            Self::Add(items) | Self::Replace(items) | Self::Exec(items) => json(&Items {
                items: items.clone(),
            }),
            Self::Reboot | Self::Lock | Self::Wipe => json(&NoParams {}),
            Self::WiFi { scope, profile } => json(&WiFiParams {
                scope: *scope,
                profile: profile.clone(),
            }),
            Self::RootCertificate(der) => json(&RootCertificateParams {
                certificate: STANDARD.encode(der),
            }),
            Self::ClientCertificate { scope, certificate } => json(&ClientCertificateParams {
                scope: *scope,
                certificate: certificate.clone(),
            }),
        }
    }

    /// The SyncML command with `cmd_id`. Commands that need several SyncML commands (the
    /// PFX `Atomic`) number the inner ones `<cmd_id>.1`, `<cmd_id>.2`, … so that every
    /// `Status` the device sends maps back to `cmd_id` through [`queued_command_id`].
    pub fn to_syncml(&self, cmd_id: &str) -> Result<SyncMlCommand, CspError> {
        let id = CmdId::new(cmd_id)?;
        let items = |items: &[RawItem]| {
            items
                .iter()
                .map(|i| Item {
                    target: i.uri.clone(),
                    format: i.format,
                    mime_type: i.mime_type.clone(),
                    data: i.data.clone(),
                })
                .collect::<Vec<_>>()
        };
        let targets = |uris: &[String]| uris.iter().map(Item::target).collect::<Vec<_>>();
        match self {
            Self::Inventory(uris) | Self::Get(uris) => {
                SyncMlCommand::new(id, CommandBody::Get(targets(uris)))
            }
            Self::Delete(uris) => SyncMlCommand::new(id, CommandBody::Delete(targets(uris))),
            Self::Add(list) => SyncMlCommand::new(id, CommandBody::Add(items(list))),
            Self::Replace(list) => SyncMlCommand::new(id, CommandBody::Replace(items(list))),
            Self::Exec(list) => SyncMlCommand::new(id, CommandBody::Exec(items(list))),
            Self::Reboot => reboot_now(id),
            Self::Lock => remote_lock(id),
            Self::Wipe => remote_wipe(id),
            Self::WiFi { scope, profile } => wifi_profile(id, *scope, profile),
            Self::RootCertificate(der) => root_ca_certificate(id, der),
            Self::ClientCertificate { scope, certificate } => {
                let mut n = 0u32;
                let mut ids = || {
                    n += 1;
                    let next = if n == 1 {
                        cmd_id.to_owned()
                    } else {
                        format!("{cmd_id}.{}", n - 1)
                    };
                    // `cmd_id` already passed CmdId::new and a suffix of digits keeps it valid.
                    CmdId::new(next).unwrap_or_else(|_| id.clone())
                };
                pfx_certificate_install(&mut ids, *scope, certificate)
            }
        }
    }
}

/// The routine inventory nodes.
pub fn default_inventory_uris() -> Vec<String> {
    InventoryNode::default_inventory()
        .iter()
        .map(|n| n.uri().to_owned())
        .chain([FREE_SPACE_URI.to_owned(), DISK_SIZE_URI.to_owned()])
        .collect()
}

/// Checks a queued Windows command and returns the payload to store. This is what the admin
/// API calls for a Windows device.
pub fn validate_command(request_type: &str, parameters: &Value) -> Result<Value, CommandError> {
    Ok(WindowsCommand::parse(request_type, parameters)?.payload())
}

/// Builds the SyncML command for a queued command's stored payload.
pub fn render_command(
    request_type: &str,
    payload: &Value,
    cmd_id: &str,
) -> Result<SyncMlCommand, CommandError> {
    WindowsCommand::parse(request_type, payload)?
        .to_syncml(cmd_id)
        .map_err(|e| CommandError::InvalidParameters {
            request_type: request_type.to_owned(),
            reason: e.to_string(),
        })
}

/// The queued command a `CmdRef` belongs to: the part before the first `.`.
pub fn queued_command_id(cmd_ref: &str) -> &str {
    cmd_ref.split('.').next().unwrap_or(cmd_ref)
}

/// The parameter structs serialise infallibly (no maps with non-string keys).
fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotte_profiles::windows::WlanSecurity;
    use serde_json::json;

    #[test]
    fn every_documented_request_type_is_known() {
        for (request_type, _) in REQUEST_TYPES {
            let err = WindowsCommand::parse(request_type, &json!({"bogus": 1}));
            assert!(
                matches!(err, Err(CommandError::InvalidParameters { .. })),
                "{request_type}: {err:?}"
            );
        }
        assert!(matches!(
            WindowsCommand::parse("Windows:Shutdown", &json!({})),
            Err(CommandError::UnknownRequestType(_))
        ));
    }

    #[test]
    fn inventory_without_nodes_reads_the_routine_set_and_free_space() {
        let payload = validate_command("Windows:Inventory", &Value::Null).unwrap();
        let nodes = payload["nodes"].as_array().unwrap();
        assert!(nodes.iter().any(|n| n == FREE_SPACE_URI));
        assert!(
            nodes
                .iter()
                .any(|n| n == "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber")
        );
        let command = render_command("Windows:Inventory", &payload, "ABC").unwrap();
        assert_eq!(command.element_name(), "Get");
        assert_eq!(command.cmd_id().as_str(), "ABC");
    }

    #[test]
    fn raw_commands_are_checked_before_they_are_queued() {
        let absolute = json!({"items": [{"uri": "/Device/x", "format": "int", "data": "1"}]});
        assert!(validate_command("Windows:Replace", &absolute).is_err());
        assert!(validate_command("Windows:Get", &json!({"uris": []})).is_err());
        let ok = json!({"items": [{"uri": "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera", "format": "int", "data": "0"}]});
        let payload = validate_command("Windows:Replace", &ok).unwrap();
        let command = render_command("Windows:Replace", &payload, "Q1").unwrap();
        assert_eq!(
            command.target_uris(),
            ["./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera"]
        );
    }

    #[test]
    fn profile_blocks_render_with_queue_ids() {
        let wifi = WindowsCommand::WiFi {
            scope: Scope::Device,
            profile: WlanProfile {
                ssid: "Schule".into(),
                hidden: false,
                auto_connect: true,
                security: WlanSecurity::Wpa2Personal {
                    passphrase: "geheim123".into(),
                },
            },
        };
        let payload = wifi.payload();
        assert_eq!(
            WindowsCommand::parse("Windows:WiFi", &payload).unwrap(),
            wifi
        );
        let pfx = json!({"certificate": {"unique_id": "wifi", "pfx": STANDARD.encode(b"pfx"), "password": "pw"}});
        let payload = validate_command("Windows:ClientCertificate", &pfx).unwrap();
        let command = render_command("Windows:ClientCertificate", &payload, "Q7").unwrap();
        assert_eq!(command.element_name(), "Atomic");
        let CommandBody::Atomic(inner) = command.body() else {
            panic!("atomic")
        };
        let inner_ids: Vec<&str> = inner.iter().map(|c| c.cmd_id().as_str()).collect();
        assert_eq!(inner_ids, ["Q7.1", "Q7.2", "Q7.3", "Q7.4"]);
        assert!(inner_ids.iter().all(|id| queued_command_id(id) == "Q7"));
    }

    #[test]
    fn root_certificates_are_accepted_as_pem_or_base64_der() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x01];
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(der)
        );
        let from_pem =
            WindowsCommand::parse("Windows:RootCertificate", &json!({"certificate": pem})).unwrap();
        assert_eq!(from_pem, WindowsCommand::RootCertificate(der.to_vec()));
        assert!(
            WindowsCommand::parse(
                "Windows:RootCertificate",
                &json!({"certificate": "bm90IGRlcg=="})
            )
            .is_err()
        );
    }
}
