//! Typed values from command results.

use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};

use crate::{AppleError, CommandReport};

/// The inventory answers of a `DeviceInformation` command.
///
/// Every field is optional: a device answers only what it was asked and what it may tell
/// (user enrolments, for example, hide the serial number). A value of an unexpected type is
/// treated as absent rather than failing the whole inventory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfoResult {
    /// `UDID`.
    pub udid: Option<String>,
    /// `SerialNumber`.
    pub serial_number: Option<String>,
    /// `Model`, for example `MK2K3FD`.
    pub model: Option<String>,
    /// `ModelName`, for example `iPad`.
    pub model_name: Option<String>,
    /// `ProductName`, for example `iPad13,18`.
    pub product_name: Option<String>,
    /// `OSVersion`.
    pub os_version: Option<String>,
    /// `BuildVersion`.
    pub build_version: Option<String>,
    /// `DeviceCapacity` in GB (decimal, as the device reports it).
    pub device_capacity_gb: Option<f64>,
    /// `AvailableDeviceCapacity` in GB.
    pub available_capacity_gb: Option<f64>,
    /// `BatteryLevel`, 0.0 to 1.0.
    pub battery_level: Option<f64>,
    /// `DeviceName`.
    pub device_name: Option<String>,
    /// `WiFiMAC`.
    pub wifi_mac: Option<String>,
    /// `IsSupervised`.
    pub is_supervised: Option<bool>,
    /// `HostName` (macOS).
    pub host_name: Option<String>,
}

impl DeviceInfoResult {
    /// Reads the values from a `QueryResponses` dictionary.
    pub fn from_query_responses(responses: &Dictionary) -> Self {
        let text = |key: &str| {
            responses
                .get(key)
                .and_then(Value::as_string)
                .map(str::to_owned)
        };
        let number = |key: &str| responses.get(key).and_then(as_number);
        Self {
            udid: text("UDID"),
            serial_number: text("SerialNumber"),
            model: text("Model"),
            model_name: text("ModelName"),
            product_name: text("ProductName"),
            os_version: text("OSVersion"),
            build_version: text("BuildVersion"),
            device_capacity_gb: number("DeviceCapacity"),
            available_capacity_gb: number("AvailableDeviceCapacity"),
            battery_level: number("BatteryLevel"),
            device_name: text("DeviceName"),
            wifi_mac: text("WiFiMAC"),
            is_supervised: responses.get("IsSupervised").and_then(Value::as_boolean),
            host_name: text("HostName"),
        }
    }

    /// Reads the values from a report's `QueryResponses`; `None` if it has none.
    pub fn from_report(report: &CommandReport) -> Option<Self> {
        report
            .query_responses
            .as_ref()
            .map(Self::from_query_responses)
    }
}

/// Devices send capacities as reals, but integral values may arrive as integers.
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Real(real) => Some(*real),
        Value::Integer(integer) => integer
            .as_signed()
            .map(|signed| signed as f64)
            .or_else(|| integer.as_unsigned().map(|unsigned| unsigned as f64)),
        _ => None,
    }
}

/// A configuration profile installed on the device (one `ProfileList` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledProfile {
    /// `PayloadIdentifier`.
    pub identifier: String,
    /// `PayloadUUID`.
    pub uuid: String,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadVersion`.
    pub version: Option<i64>,
}

impl InstalledProfile {
    /// Reads every entry of a report's `ProfileList`.
    ///
    /// Fails when the report has no `ProfileList` or an entry lacks `PayloadIdentifier` or
    /// `PayloadUUID`, which Apple marks as required.
    pub fn from_report(report: &CommandReport) -> Result<Vec<Self>, AppleError> {
        let list = report
            .profile_list
            .as_ref()
            .ok_or_else(|| AppleError::invalid("ProfileList", "missing from the report"))?;
        list.iter()
            .enumerate()
            .map(|(index, entry)| {
                let required = |key: &str| {
                    entry
                        .get(key)
                        .and_then(Value::as_string)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            AppleError::invalid(
                                format!("ProfileList[{index}]"),
                                format!("{key} is missing or not a string"),
                            )
                        })
                };
                Ok(Self {
                    identifier: required("PayloadIdentifier")?,
                    uuid: required("PayloadUUID")?,
                    display_name: entry
                        .get("PayloadDisplayName")
                        .and_then(Value::as_string)
                        .map(str::to_owned),
                    version: entry
                        .get("PayloadVersion")
                        .and_then(Value::as_signed_integer),
                })
            })
            .collect()
    }
}

/// An app installed on the device (one `InstalledApplicationList` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledApplication {
    /// `Identifier` (bundle id).
    pub identifier: Option<String>,
    /// `Name`.
    pub name: Option<String>,
    /// `Version` (build version).
    pub version: Option<String>,
    /// `ShortVersion` (marketing version).
    pub short_version: Option<String>,
    /// `BundleSize` in bytes.
    pub bundle_size: Option<u64>,
}

impl InstalledApplication {
    /// Reads every entry of a report's `InstalledApplicationList`; `None` if it has none.
    pub fn from_report(report: &CommandReport) -> Option<Vec<Self>> {
        let list = report.installed_application_list.as_ref()?;
        Some(
            list.iter()
                .map(|entry| {
                    let text =
                        |key: &str| entry.get(key).and_then(Value::as_string).map(str::to_owned);
                    Self {
                        identifier: text("Identifier"),
                        name: text("Name"),
                        version: text("Version"),
                        short_version: text("ShortVersion"),
                        bundle_size: entry.get("BundleSize").and_then(Value::as_unsigned_integer),
                    }
                })
                .collect(),
        )
    }
}
