//! MDM commands sent to Apple devices.
//!
//! A command travels as `{CommandUUID, Command: {RequestType, …}}` in the body of the answer
//! to a device's report. The same [`Command`] value serialises to JSON (serde) so the server
//! can keep it in its queue and render the plist when the device asks.

use std::collections::BTreeMap;

use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};

use super::profile::xml_plist_bytes;

/// The queries sent by [`Command::device_information`]: what the inventory needs, all of which
/// are available on iPadOS with the device- or network-information access rights.
pub const DEFAULT_DEVICE_INFORMATION_QUERIES: &[&str] = &[
    "UDID",
    "SerialNumber",
    "DeviceName",
    "Model",
    "ModelName",
    "ProductName",
    "OSVersion",
    "BuildVersion",
    "DeviceCapacity",
    "AvailableDeviceCapacity",
    "BatteryLevel",
    "WiFiMAC",
    "IsSupervised",
];

/// A scalar value of a generic `Settings` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Integer(i64),
    /// A real number.
    Real(f64),
    /// A string.
    String(String),
}

impl SettingValue {
    fn to_value(&self) -> Value {
        match self {
            Self::Bool(value) => Value::Boolean(*value),
            Self::Integer(value) => Value::Integer((*value).into()),
            Self::Real(value) => Value::Real(*value),
            Self::String(value) => Value::String(value.clone()),
        }
    }
}

/// One entry of a `Settings` command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SettingsItem {
    /// `{Item: DeviceName, DeviceName: …}` renames the device (supervised iOS, macOS).
    DeviceName {
        /// The new name.
        device_name: String,
    },
    /// Any other item: `{Item: <item>, <key>: <value>, …}`.
    Generic {
        /// The `Item` name, for example `Wallpaper` or `TimeZone`.
        item: String,
        /// The remaining keys of the item.
        #[serde(default)]
        values: BTreeMap<String, SettingValue>,
    },
}

impl SettingsItem {
    fn to_dictionary(&self) -> Dictionary {
        let mut dict = Dictionary::new();
        match self {
            Self::DeviceName { device_name } => {
                dict.insert("Item".into(), "DeviceName".into());
                dict.insert("DeviceName".into(), device_name.clone().into());
            }
            Self::Generic { item, values } => {
                dict.insert("Item".into(), item.clone().into());
                for (key, value) in values {
                    dict.insert(key.clone(), value.to_value());
                }
            }
        }
        dict
    }
}

/// An MDM command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request_type")]
pub enum Command {
    /// Asks for the values named in `queries`.
    DeviceInformation {
        /// Query names, for example `SerialNumber`.
        queries: Vec<String>,
    },
    /// Asks for passcode, encryption and management status.
    SecurityInfo,
    /// Lists the installed configuration profiles.
    ProfileList {
        /// `ManagedOnly`: only profiles this MDM installed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        managed_only: Option<bool>,
    },
    /// Installs (or replaces) a configuration profile.
    InstallProfile {
        /// The `.mobileconfig`, usually signed.
        #[serde(with = "crate::b64")]
        payload: Vec<u8>,
    },
    /// Removes the profile with this `PayloadIdentifier`.
    RemoveProfile {
        /// The profile's `PayloadIdentifier`.
        identifier: String,
    },
    /// Lists installed apps.
    InstalledApplicationList {
        /// `Identifiers`: restrict the answer to these bundle ids.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        identifiers: Vec<String>,
        /// `ManagedAppsOnly`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        managed_apps_only: Option<bool>,
    },
    /// Locks the device now.
    DeviceLock {
        /// `Message` on the lock screen (needs a passcode on the device).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// `PhoneNumber` on the lock screen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone_number: Option<String>,
        /// `PIN` (macOS Find My lock only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin: Option<String>,
    },
    /// Erases the device.
    EraseDevice {
        /// `PIN` (macOS only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin: Option<String>,
        /// `PreserveDataPlan` (eSIM).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preserve_data_plan: Option<bool>,
        /// `DisallowProximitySetup`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disallow_proximity_setup: Option<bool>,
    },
    /// Removes the passcode, using the `UnlockToken` from the device's `TokenUpdate`.
    ClearPasscode {
        /// `UnlockToken`.
        #[serde(with = "crate::b64")]
        unlock_token: Vec<u8>,
    },
    /// Restarts the device.
    RestartDevice,
    /// Lets a device waiting in Setup Assistant (`AwaitingConfiguration`) continue.
    DeviceConfigured,
    /// Changes settings, for example the device name.
    Settings {
        /// The items to apply.
        settings: Vec<SettingsItem>,
    },
}

impl Command {
    /// `DeviceInformation` with [`DEFAULT_DEVICE_INFORMATION_QUERIES`].
    pub fn device_information() -> Self {
        Self::DeviceInformation {
            queries: DEFAULT_DEVICE_INFORMATION_QUERIES
                .iter()
                .map(|query| (*query).to_owned())
                .collect(),
        }
    }

    /// `Settings` with a single `DeviceName` item.
    pub fn set_device_name(name: impl Into<String>) -> Self {
        Self::Settings {
            settings: vec![SettingsItem::DeviceName {
                device_name: name.into(),
            }],
        }
    }

    /// The `RequestType` string.
    pub fn request_type(&self) -> &'static str {
        match self {
            Self::DeviceInformation { .. } => "DeviceInformation",
            Self::SecurityInfo => "SecurityInfo",
            Self::ProfileList { .. } => "ProfileList",
            Self::InstallProfile { .. } => "InstallProfile",
            Self::RemoveProfile { .. } => "RemoveProfile",
            Self::InstalledApplicationList { .. } => "InstalledApplicationList",
            Self::DeviceLock { .. } => "DeviceLock",
            Self::EraseDevice { .. } => "EraseDevice",
            Self::ClearPasscode { .. } => "ClearPasscode",
            Self::RestartDevice => "RestartDevice",
            Self::DeviceConfigured => "DeviceConfigured",
            Self::Settings { .. } => "Settings",
        }
    }

    /// The inner `Command` dictionary (`RequestType` and the command's keys).
    pub fn to_command_dictionary(&self) -> Dictionary {
        let mut dict = Dictionary::new();
        dict.insert("RequestType".into(), self.request_type().into());
        match self {
            Self::DeviceInformation { queries } => {
                dict.insert(
                    "Queries".into(),
                    Value::Array(queries.iter().cloned().map(Value::String).collect()),
                );
            }
            Self::SecurityInfo | Self::RestartDevice | Self::DeviceConfigured => {}
            Self::ProfileList { managed_only } => {
                if let Some(managed_only) = managed_only {
                    dict.insert("ManagedOnly".into(), (*managed_only).into());
                }
            }
            Self::InstallProfile { payload } => {
                dict.insert("Payload".into(), Value::Data(payload.clone()));
            }
            Self::RemoveProfile { identifier } => {
                dict.insert("Identifier".into(), identifier.clone().into());
            }
            Self::InstalledApplicationList {
                identifiers,
                managed_apps_only,
            } => {
                if !identifiers.is_empty() {
                    dict.insert(
                        "Identifiers".into(),
                        Value::Array(identifiers.iter().cloned().map(Value::String).collect()),
                    );
                }
                if let Some(managed_apps_only) = managed_apps_only {
                    dict.insert("ManagedAppsOnly".into(), (*managed_apps_only).into());
                }
            }
            Self::DeviceLock {
                message,
                phone_number,
                pin,
            } => {
                for (name, value) in [
                    ("Message", message),
                    ("PhoneNumber", phone_number),
                    ("PIN", pin),
                ] {
                    if let Some(value) = value {
                        dict.insert(name.into(), value.clone().into());
                    }
                }
            }
            Self::EraseDevice {
                pin,
                preserve_data_plan,
                disallow_proximity_setup,
            } => {
                if let Some(pin) = pin {
                    dict.insert("PIN".into(), pin.clone().into());
                }
                if let Some(value) = preserve_data_plan {
                    dict.insert("PreserveDataPlan".into(), (*value).into());
                }
                if let Some(value) = disallow_proximity_setup {
                    dict.insert("DisallowProximitySetup".into(), (*value).into());
                }
            }
            Self::ClearPasscode { unlock_token } => {
                dict.insert("UnlockToken".into(), Value::Data(unlock_token.clone()));
            }
            Self::Settings { settings } => {
                dict.insert(
                    "Settings".into(),
                    Value::Array(
                        settings
                            .iter()
                            .map(|item| Value::Dictionary(item.to_dictionary()))
                            .collect(),
                    ),
                );
            }
        }
        dict
    }

    /// The full command plist `{CommandUUID, Command}` as XML plist bytes.
    pub fn to_plist(&self, command_uuid: &str) -> Vec<u8> {
        let mut envelope = Dictionary::new();
        envelope.insert("CommandUUID".into(), command_uuid.into());
        envelope.insert(
            "Command".into(),
            Value::Dictionary(self.to_command_dictionary()),
        );
        xml_plist_bytes(&Value::Dictionary(envelope))
    }
}
