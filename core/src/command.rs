//! The life of an MDM command in a device's queue.
//!
//! A command is `Queued` until the device asks for work, `Sent` once handed out,
//! and ends `Acknowledged`, `Error`, `FormatError` or `Cancelled`. `NotNow` means
//! the device could not run it yet (locked screen, for example); Apple's rule is
//! that such a command is not offered again until the device next reports `Idle`,
//! otherwise a device would be handed the same refused command in a tight loop.

use crate::device::text_enum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    Queued,
    Sent,
    NotNow,
    Acknowledged,
    Error,
    FormatError,
    Cancelled,
}

text_enum!(CommandStatus {
    Queued => "queued",
    Sent => "sent",
    NotNow => "not_now",
    Acknowledged => "acknowledged",
    Error => "error",
    FormatError => "format_error",
    Cancelled => "cancelled",
});

/// What a device said about a command it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceVerdict {
    Acknowledged,
    Error,
    FormatError,
    NotNow,
}

impl CommandStatus {
    /// Still waiting for a final answer from the device.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Queued | Self::Sent | Self::NotNow)
    }

    pub fn is_final(self) -> bool {
        !self.is_pending()
    }

    /// The status after the device's verdict, or `None` if the verdict cannot
    /// apply (the command was never sent, or is already finished).
    pub fn after_verdict(self, verdict: DeviceVerdict) -> Option<Self> {
        if !matches!(self, Self::Sent | Self::NotNow) {
            return None;
        }
        Some(match verdict {
            DeviceVerdict::Acknowledged => Self::Acknowledged,
            DeviceVerdict::Error => Self::Error,
            DeviceVerdict::FormatError => Self::FormatError,
            DeviceVerdict::NotNow => Self::NotNow,
        })
    }

    /// Only commands the device has not answered yet may be cancelled.
    pub fn can_cancel(self) -> bool {
        self.is_pending()
    }

    /// Whether a command in this status may be handed to a device whose last
    /// report was `device_idle` (true for an `Idle` poll).
    pub fn may_be_offered(self, device_idle: bool) -> bool {
        match self {
            Self::Queued | Self::Sent => true,
            Self::NotNow => device_idle,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_only_applies_to_a_command_that_was_sent() {
        assert_eq!(
            CommandStatus::Sent.after_verdict(DeviceVerdict::Acknowledged),
            Some(CommandStatus::Acknowledged)
        );
        assert_eq!(
            CommandStatus::Queued.after_verdict(DeviceVerdict::Acknowledged),
            None
        );
        assert_eq!(
            CommandStatus::Acknowledged.after_verdict(DeviceVerdict::Error),
            None
        );
        assert_eq!(
            CommandStatus::NotNow.after_verdict(DeviceVerdict::Acknowledged),
            Some(CommandStatus::Acknowledged)
        );
    }

    #[test]
    fn not_now_waits_for_the_next_idle() {
        assert!(!CommandStatus::NotNow.may_be_offered(false));
        assert!(CommandStatus::NotNow.may_be_offered(true));
        assert!(CommandStatus::Queued.may_be_offered(false));
        assert!(!CommandStatus::Cancelled.may_be_offered(true));
    }

    #[test]
    fn finished_commands_cannot_be_cancelled() {
        assert!(CommandStatus::Queued.can_cancel());
        assert!(!CommandStatus::Acknowledged.can_cancel());
        assert_eq!(
            "not_now".parse::<CommandStatus>().unwrap(),
            CommandStatus::NotNow
        );
    }
}

/// A command in a device's queue, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Command {
    /// The CommandUUID the device sees.
    pub id: String,
    pub device_id: String,
    pub request_type: String,
    pub status: CommandStatus,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The device's answer, as it sent it (a plist for Apple, SyncML results for Windows).
    pub result: Option<String>,
    pub error: Option<String>,
}
