//! Inventory from what a laptop reports: the DevInfo `Replace` of every session start and the
//! `Results` of inventory `Get`s (DevDetail, DeviceStatus and the WMI bridge).

use crate::commands::{DISK_SIZE_URI, FREE_SPACE_URI};

/// Fields the inventory shows; `None` leaves the stored value as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    /// `./DevInfo/Mod`.
    pub model: Option<String>,
    /// `./DevInfo/Man`, the manufacturer.
    pub manufacturer: Option<String>,
    /// `./DevDetail/Ext/Microsoft/OSPlatform`, e.g. "Windows 11 Education".
    pub product_name: Option<String>,
    /// Major.minor.build of `./DevDetail/SwV`, e.g. `10.0.22631`.
    pub os_version: Option<String>,
    /// Build and update revision of `./DevDetail/SwV`, e.g. `22631.4602`.
    pub build_version: Option<String>,
    /// `./DevDetail/Ext/Microsoft/SMBIOSSerialNumber`, unless it is a firmware placeholder.
    pub serial_number: Option<String>,
    /// `./DevDetail/Ext/Microsoft/DNSComputerName`.
    pub device_name: Option<String>,
    /// The system drive's size in GB (WMI), else `TotalStorage`.
    pub capacity_gb: Option<f64>,
    /// The system drive's free space in GB (WMI).
    pub available_gb: Option<f64>,
    /// Battery charge 0.0–1.0 (DeviceStatus); absent without a battery.
    pub battery_level: Option<f64>,
}

const BYTES_PER_GB: f64 = 1_000_000_000.0;

/// What firmware writes into the serial number field when the vendor left it empty.
fn is_placeholder_serial(serial: &str) -> bool {
    let s = serial.trim().to_ascii_lowercase();
    s.is_empty()
        || s.chars().all(|c| c == '0')
        || [
            "system serial number",
            "default string",
            "to be filled by o.e.m.",
            "not applicable",
            "none",
            "0123456789",
        ]
        .contains(&s.as_str())
}

fn non_empty(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

impl Inventory {
    /// Whether nothing was learnt.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Takes one reported node into account; unknown nodes are ignored.
    pub fn absorb(&mut self, uri: &str, data: &str) {
        let uri = uri
            .strip_prefix("./Device/")
            .map_or(uri.to_owned(), |rest| format!("./{rest}"));
        match uri.as_str() {
            "./DevInfo/Mod" => self.model = non_empty(data),
            "./DevInfo/Man" => self.manufacturer = non_empty(data),
            "./DevDetail/Ext/Microsoft/OSPlatform" => self.product_name = non_empty(data),
            "./DevDetail/SwV" => {
                let parts: Vec<&str> = data.trim().split('.').collect();
                if parts.len() >= 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()) {
                    self.os_version = Some(parts[..3].join("."));
                    self.build_version = Some(parts[2..].join("."));
                } else {
                    self.os_version = non_empty(data);
                }
            }
            "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber" if !is_placeholder_serial(data) => {
                self.serial_number = non_empty(data);
            }
            "./DevDetail/Ext/Microsoft/DNSComputerName" => self.device_name = non_empty(data),
            // Megabytes; only a fallback for the WMI size below.
            "./DevDetail/Ext/Microsoft/TotalStorage" if self.capacity_gb.is_none() => {
                self.capacity_gb = data
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|mb| *mb > 0.0)
                    .map(|mb| mb * 1_000_000.0 / BYTES_PER_GB);
            }
            "./Vendor/MSFT/DeviceStatus/Battery/EstimatedChargeRemaining" => {
                // -1 means "no battery or unknown".
                self.battery_level = data
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
                    .map(|p| p / 100.0);
            }
            FREE_SPACE_URI => self.available_gb = bytes_as_gb(data),
            DISK_SIZE_URI => {
                if let Some(gb) = bytes_as_gb(data) {
                    self.capacity_gb = Some(gb);
                }
            }
            _ => {}
        }
    }
}

fn bytes_as_gb(data: &str) -> Option<f64> {
    data.trim()
        .parse::<u64>()
        .ok()
        .map(|b| (b as f64 / BYTES_PER_GB * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devinfo_devdetail_and_wmi_nodes_fill_the_inventory() {
        let mut inv = Inventory::default();
        for (uri, data) in [
            ("./DevInfo/Man", "Dell Inc."),
            ("./DevInfo/Mod", "Latitude 3440"),
            ("./DevDetail/SwV", "10.0.22631.4602"),
            ("./DevDetail/Ext/Microsoft/SMBIOSSerialNumber", "7XK2PN3"),
            ("./DevDetail/Ext/Microsoft/DNSComputerName", "GYM-LAP-042"),
            (
                "./Vendor/MSFT/DeviceStatus/Battery/EstimatedChargeRemaining",
                "87",
            ),
            (FREE_SPACE_URI, "123456789012"),
            (DISK_SIZE_URI, "255000000000"),
            ("./DevDetail/FwV", "1.2"),
        ] {
            inv.absorb(uri, data);
        }
        assert_eq!(inv.model.as_deref(), Some("Latitude 3440"));
        assert_eq!(inv.manufacturer.as_deref(), Some("Dell Inc."));
        assert_eq!(inv.os_version.as_deref(), Some("10.0.22631"));
        assert_eq!(inv.build_version.as_deref(), Some("22631.4602"));
        assert_eq!(inv.serial_number.as_deref(), Some("7XK2PN3"));
        assert_eq!(inv.device_name.as_deref(), Some("GYM-LAP-042"));
        assert_eq!(inv.available_gb, Some(123.46));
        assert_eq!(inv.capacity_gb, Some(255.0));
        assert_eq!(inv.battery_level, Some(0.87));
    }

    #[test]
    fn placeholders_and_missing_batteries_are_not_recorded() {
        let mut inv = Inventory::default();
        inv.absorb(
            "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber",
            "To Be Filled By O.E.M.",
        );
        inv.absorb(
            "./Vendor/MSFT/DeviceStatus/Battery/EstimatedChargeRemaining",
            "-1",
        );
        inv.absorb("./Device/DevInfo/Mod", "VMware7,1");
        assert_eq!(inv.serial_number, None);
        assert_eq!(inv.battery_level, None);
        assert_eq!(inv.model.as_deref(), Some("VMware7,1"));
    }
}
