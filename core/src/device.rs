//! Devices of the fleet and their life cycle.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The two kinds of device the school board owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Apple,
    Windows,
}

/// Where a device stands with us. A device exists in the register before it
/// first enrols (from the supplier's delivery list), so `Registered` comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EnrollmentState {
    Registered,
    Enrolled,
    Unenrolled,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = crate::CoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(crate::CoreError::Invalid(format!(
                        "unknown {} {other:?}", stringify!($ty)
                    ))),
                }
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(Platform { Apple => "apple", Windows => "windows" });
text_enum!(EnrollmentState {
    Registered => "registered",
    Enrolled => "enrolled",
    Unenrolled => "unenrolled",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_unknown_text_is_refused() {
        for p in [Platform::Apple, Platform::Windows] {
            assert_eq!(p.as_str().parse::<Platform>().unwrap(), p);
        }
        let err = "android".parse::<Platform>().unwrap_err();
        assert!(err.to_string().contains("android"));
        assert_eq!(
            "enrolled".parse::<EnrollmentState>().unwrap(),
            EnrollmentState::Enrolled
        );
    }
}

/// A device as the inventory shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    pub id: String,
    pub platform: Platform,
    pub serial_number: Option<String>,
    pub udid: Option<String>,
    pub asset_tag: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub product_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub device_name: Option<String>,
    pub capacity_gb: Option<f64>,
    pub available_gb: Option<f64>,
    pub battery_level: Option<f64>,
    pub wifi_mac: Option<String>,
    pub supervised: Option<bool>,
    pub school_id: Option<String>,
    pub enrollment_state: EnrollmentState,
    pub enrolled_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a device reported about itself; `None` leaves a field as it was.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InventoryUpdate {
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub product_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub device_name: Option<String>,
    pub capacity_gb: Option<f64>,
    pub available_gb: Option<f64>,
    pub battery_level: Option<f64>,
    pub wifi_mac: Option<String>,
    pub supervised: Option<bool>,
}

/// A configuration profile a device says it has installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstalledProfile {
    pub identifier: String,
    pub payload_uuid: Option<String>,
    pub display_name: Option<String>,
    pub version: Option<i32>,
}
