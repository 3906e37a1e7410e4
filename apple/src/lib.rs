//! Apple MDM protocol messages, without I/O.
//!
//! * [`parse_checkin`] reads what a device sends to the check-in endpoint
//!   (`Content-Type: application/x-apple-aspen-mdm-checkin`): `Authenticate`, `TokenUpdate`,
//!   `CheckOut`, `UserAuthenticate`, `SetBootstrapToken`, `GetBootstrapToken`,
//!   `DeclarativeManagement` and `GetToken`.
//! * [`parse_report`] reads what a device sends to the command endpoint: its `Status` for the
//!   previous command (or `Idle`) plus the command's results.
//! * [`DeviceInfoResult`], [`InstalledProfile`] and [`InstalledApplication`] pull typed values
//!   out of the results of `DeviceInformation`, `ProfileList` and `InstalledApplicationList`.
//!
//! Every message type also serialises back to an XML plist (`to_plist`), so a device simulator
//! can produce the same bytes a real device would. Keys this crate does not model are kept in
//! each message's `extra` dictionary and written back unchanged.
//!
//! Key names follow Apple's device-management schema (`mdm/checkin/*.yaml`).

#![warn(missing_docs)]

mod checkin;
mod data;
mod error;
mod extract;
mod report;

pub use checkin::{
    Authenticate, CheckOut, CheckinMessage, DeclarativeManagement, GetBootstrapToken, GetToken,
    SetBootstrapToken, TokenUpdate, UserAuthenticate, parse_checkin,
};
pub use error::AppleError;
pub use extract::{DeviceInfoResult, InstalledApplication, InstalledProfile};
pub use report::{CommandReport, ErrorChainItem, Status, parse_report};

/// The `UserID` a Shared iPad sends on its user channel when no authentication happened.
pub const SHARED_IPAD_UNAUTHENTICATED_USER_ID: &str = "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF";
