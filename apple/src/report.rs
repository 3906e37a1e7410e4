//! Command reports: what a device sends to the command endpoint.

use plist::Dictionary;
use serde::{Deserialize, Serialize};

use crate::AppleError;
use crate::data::{decode_with_extra, discriminator, encode_with_extra, read_dictionary};

/// `Status` of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// The device is ready for a command and answers none.
    Idle,
    /// The command succeeded; its results are in the report.
    Acknowledged,
    /// The command failed; see `ErrorChain`.
    Error,
    /// The command plist was malformed.
    CommandFormatError,
    /// The device cannot run the command now (for example it is locked); send it again later.
    NotNow,
}

impl Status {
    /// The status as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Acknowledged => "Acknowledged",
            Self::Error => "Error",
            Self::CommandFormatError => "CommandFormatError",
            Self::NotNow => "NotNow",
        }
    }

    /// Parses a wire status.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "Idle" => Self::Idle,
            "Acknowledged" => Self::Acknowledged,
            "Error" => Self::Error,
            "CommandFormatError" => Self::CommandFormatError,
            "NotNow" => Self::NotNow,
            _ => return None,
        })
    }
}

/// One entry of `ErrorChain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorChainItem {
    /// `ErrorCode`.
    #[serde(rename = "ErrorCode")]
    pub error_code: i64,
    /// `ErrorDomain`, for example `MCMDMErrorDomain`.
    #[serde(rename = "ErrorDomain")]
    pub error_domain: String,
    /// `LocalizedDescription` in the device's language.
    #[serde(
        rename = "LocalizedDescription",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub localized_description: Option<String>,
    /// `USEnglishDescription`.
    #[serde(
        rename = "USEnglishDescription",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub us_english_description: Option<String>,
}

/// A report sent to the command endpoint.
///
/// The results of `DeviceInformation`, `ProfileList`, `SecurityInfo` and
/// `InstalledApplicationList` have their own fields; the results of every other command (and
/// any key this type does not model) are in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandReport {
    /// `Status`.
    #[serde(rename = "Status")]
    pub status: Status,
    /// `UDID`.
    #[serde(rename = "UDID", default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// `EnrollmentID` (user enrolments).
    #[serde(
        rename = "EnrollmentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment_id: Option<String>,
    /// `UserID` (user channel).
    #[serde(rename = "UserID", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `UserShortName` (user channel).
    #[serde(
        rename = "UserShortName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_short_name: Option<String>,
    /// `CommandUUID` of the command this report answers (absent for `Idle`).
    #[serde(
        rename = "CommandUUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub command_uuid: Option<String>,
    /// `RequestType`, which some devices echo.
    #[serde(
        rename = "RequestType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_type: Option<String>,
    /// `ErrorChain` (with `Error`).
    #[serde(rename = "ErrorChain", default, skip_serializing_if = "Vec::is_empty")]
    pub error_chain: Vec<ErrorChainItem>,
    /// `QueryResponses` of `DeviceInformation`.
    #[serde(
        rename = "QueryResponses",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub query_responses: Option<Dictionary>,
    /// `ProfileList` of `ProfileList`.
    #[serde(
        rename = "ProfileList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub profile_list: Option<Vec<Dictionary>>,
    /// `SecurityInfo` of `SecurityInfo`.
    #[serde(
        rename = "SecurityInfo",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub security_info: Option<Dictionary>,
    /// `InstalledApplicationList` of `InstalledApplicationList`.
    #[serde(
        rename = "InstalledApplicationList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub installed_application_list: Option<Vec<Dictionary>>,
    /// Every other key, kept as sent.
    #[serde(skip)]
    pub extra: Dictionary,
}

/// Parses a command-endpoint request body.
///
/// Accepts XML and binary plists. Fails when the body is not a plist dictionary, when `Status`
/// is missing or not one of `Idle`, `Acknowledged`, `Error`, `CommandFormatError` and
/// `NotNow`, when neither `UDID` nor `EnrollmentID` is present, when a report other than `Idle`
/// has no `CommandUUID`, and when a modelled key has the wrong type.
pub fn parse_report(body: &[u8]) -> Result<CommandReport, AppleError> {
    let dict = read_dictionary(body)?;
    let status = discriminator(&dict, "Status", AppleError::MissingStatus)?;
    let status =
        Status::parse(status).ok_or_else(|| AppleError::UnknownStatus(status.to_owned()))?;
    let (mut report, extra) = decode_with_extra::<CommandReport>("command report", dict, &[])?;
    report.extra = extra;
    if report.udid.is_none() && report.enrollment_id.is_none() {
        return Err(AppleError::MissingUdid("command report"));
    }
    if status != Status::Idle && report.command_uuid.is_none() {
        return Err(AppleError::MissingCommandUuid(status.as_str()));
    }
    Ok(report)
}

impl CommandReport {
    /// A report with only a status and a UDID.
    pub fn new(status: Status, udid: impl Into<String>) -> Self {
        Self {
            status,
            udid: Some(udid.into()),
            enrollment_id: None,
            user_id: None,
            user_short_name: None,
            command_uuid: None,
            request_type: None,
            error_chain: Vec::new(),
            query_responses: None,
            profile_list: None,
            security_info: None,
            installed_application_list: None,
            extra: Dictionary::new(),
        }
    }

    /// `Idle`: the device asks for the next command.
    pub fn idle(udid: impl Into<String>) -> Self {
        Self::new(Status::Idle, udid)
    }

    /// `Acknowledged` for a command; add results to the returned value.
    pub fn acknowledged(udid: impl Into<String>, command_uuid: impl Into<String>) -> Self {
        Self {
            command_uuid: Some(command_uuid.into()),
            ..Self::new(Status::Acknowledged, udid)
        }
    }

    /// `NotNow` for a command.
    pub fn not_now(udid: impl Into<String>, command_uuid: impl Into<String>) -> Self {
        Self {
            command_uuid: Some(command_uuid.into()),
            ..Self::new(Status::NotNow, udid)
        }
    }

    /// `Error` for a command, with its error chain.
    pub fn error(
        udid: impl Into<String>,
        command_uuid: impl Into<String>,
        error_chain: Vec<ErrorChainItem>,
    ) -> Self {
        Self {
            command_uuid: Some(command_uuid.into()),
            error_chain,
            ..Self::new(Status::Error, udid)
        }
    }

    /// Serialises the report as the device would send it (XML plist).
    pub fn to_plist(&self) -> Vec<u8> {
        encode_with_extra(&[], self, &self.extra)
    }
}
