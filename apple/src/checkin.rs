//! Check-in messages (`MessageType`).

use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};

use crate::AppleError;
use crate::data::{bytes, decode_with_extra, discriminator, encode_with_extra, read_dictionary};

/// `Authenticate`: the device starts enrolling. The server answers 200 with an empty body; the
/// enrolment is usable only after the following `TokenUpdate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Authenticate {
    /// `Topic`: the push topic the device subscribes to.
    #[serde(rename = "Topic")]
    pub topic: String,
    /// `UDID` (device enrolments).
    #[serde(rename = "UDID", default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// `EnrollmentID` (user enrolments, instead of `UDID`).
    #[serde(
        rename = "EnrollmentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment_id: Option<String>,
    /// `SerialNumber`.
    #[serde(
        rename = "SerialNumber",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub serial_number: Option<String>,
    /// `ProductName`, for example `iPad13,18`.
    #[serde(
        rename = "ProductName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub product_name: Option<String>,
    /// `OSVersion`.
    #[serde(rename = "OSVersion", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// `BuildVersion`.
    #[serde(
        rename = "BuildVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub build_version: Option<String>,
    /// `IMEI`.
    #[serde(rename = "IMEI", default, skip_serializing_if = "Option::is_none")]
    pub imei: Option<String>,
    /// `MEID`.
    #[serde(rename = "MEID", default, skip_serializing_if = "Option::is_none")]
    pub meid: Option<String>,
    /// `DeviceName` (macOS).
    #[serde(
        rename = "DeviceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_name: Option<String>,
    /// `Model` (macOS).
    #[serde(rename = "Model", default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `ModelName` (macOS).
    #[serde(rename = "ModelName", default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// Keys not modelled above, kept as sent.
    #[serde(skip)]
    pub extra: Dictionary,
}

/// `TokenUpdate`: the push token, push magic and (iOS) unlock token. The first one completes
/// enrolment; later ones may change any of the three.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenUpdate {
    /// `Topic`.
    #[serde(rename = "Topic")]
    pub topic: String,
    /// `UDID`.
    #[serde(rename = "UDID", default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// `EnrollmentID`.
    #[serde(
        rename = "EnrollmentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment_id: Option<String>,
    /// `EnrollmentUserID` (macOS user enrolment, user channel).
    #[serde(
        rename = "EnrollmentUserID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment_user_id: Option<String>,
    /// `Token`: the APNs device token (binary; push URLs use its lower-case hex).
    #[serde(rename = "Token", with = "bytes")]
    pub token: Vec<u8>,
    /// `PushMagic`: goes into every push payload as `{"mdm": PushMagic}`.
    #[serde(rename = "PushMagic")]
    pub push_magic: String,
    /// `UnlockToken`, kept for `ClearPasscode`. Its absence does not invalidate an earlier one.
    #[serde(
        rename = "UnlockToken",
        default,
        skip_serializing_if = "Option::is_none",
        with = "bytes::option"
    )]
    pub unlock_token: Option<Vec<u8>>,
    /// `AwaitingConfiguration`: Setup Assistant waits for `DeviceConfigured`.
    #[serde(
        rename = "AwaitingConfiguration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub awaiting_configuration: Option<bool>,
    /// `UserID` (user channel; Shared iPad sends `FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF`).
    #[serde(rename = "UserID", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `UserShortName` (user channel; the Managed Apple Account on Shared iPad).
    #[serde(
        rename = "UserShortName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_short_name: Option<String>,
    /// `UserLongName` (macOS user channel).
    #[serde(
        rename = "UserLongName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_long_name: Option<String>,
    /// `NotOnConsole` (macOS user channel).
    #[serde(
        rename = "NotOnConsole",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_on_console: Option<bool>,
    /// Keys not modelled above, kept as sent.
    #[serde(skip)]
    pub extra: Dictionary,
}

impl TokenUpdate {
    /// The push token as lower-case hex, as the APNs URL `/3/device/<token>` wants it.
    pub fn token_hex(&self) -> String {
        use std::fmt::Write as _;
        self.token.iter().fold(
            String::with_capacity(self.token.len() * 2),
            |mut out, byte| {
                // Writing into a String cannot fail.
                let _ = write!(out, "{byte:02x}");
                out
            },
        )
    }
}

/// `CheckOut`: the MDM profile was removed (sent only with `CheckOutWhenRemoved`, and only on
/// a best-effort basis).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckOut {
    /// `Topic`.
    #[serde(rename = "Topic", default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// `UDID`.
    #[serde(rename = "UDID", default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// `EnrollmentID`.
    #[serde(
        rename = "EnrollmentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment_id: Option<String>,
    /// Keys not modelled above, kept as sent.
    #[serde(skip)]
    pub extra: Dictionary,
}

/// `UserAuthenticate` (macOS network users). The first message has no `DigestResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserAuthenticate {
    /// `UDID`.
    #[serde(rename = "UDID", default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// `UserID`: the user's directory GUID.
    #[serde(rename = "UserID")]
    pub user_id: String,
    /// `UserShortName`.
    #[serde(
        rename = "UserShortName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_short_name: Option<String>,
    /// `UserLongName`.
    #[serde(
        rename = "UserLongName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_long_name: Option<String>,
    /// `DigestResponse` (second message only).
    #[serde(
        rename = "DigestResponse",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub digest_response: Option<String>,
    /// Keys not modelled above, kept as sent.
    #[serde(skip)]
    pub extra: Dictionary,
}

/// `SetBootstrapToken`: the device escrows (or, without a token, clears) its bootstrap token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetBootstrapToken {
    /// `UDID`.
    #[serde(rename = "UDID", default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// `EnrollmentID`.
    #[serde(
        rename = "EnrollmentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment_id: Option<String>,
    /// `BootstrapToken`.
    #[serde(
        rename = "BootstrapToken",
        default,
        skip_serializing_if = "Option::is_none",
        with = "bytes::option"
    )]
    pub bootstrap_token: Option<Vec<u8>>,
    /// `AwaitingConfiguration`.
    #[serde(
        rename = "AwaitingConfiguration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub awaiting_configuration: Option<bool>,
    /// Keys not modelled above, kept as sent.
    #[serde(skip)]
    pub extra: Dictionary,
}

/// `GetBootstrapToken`: the device asks for its escrowed bootstrap token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetBootstrapToken {
    /// `UDID`.
    #[serde(rename = "UDID", default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// `EnrollmentID`.
    #[serde(
        rename = "EnrollmentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment_id: Option<String>,
    /// `AwaitingConfiguration`.
    #[serde(
        rename = "AwaitingConfiguration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub awaiting_configuration: Option<bool>,
    /// Keys not modelled above, kept as sent.
    #[serde(skip)]
    pub extra: Dictionary,
}

/// `DeclarativeManagement`: a Declarative Device Management request; the answer is JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeclarativeManagement {
    /// `UDID`.
    #[serde(rename = "UDID", default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// `EnrollmentID`.
    #[serde(
        rename = "EnrollmentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment_id: Option<String>,
    /// `UserID` (user channel).
    #[serde(rename = "UserID", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `Endpoint`: `tokens`, `declaration-items`, `status` or `declaration/<type>/<id>`.
    #[serde(rename = "Endpoint")]
    pub endpoint: String,
    /// `Data`: JSON bytes (for example the status report).
    #[serde(
        rename = "Data",
        default,
        skip_serializing_if = "Option::is_none",
        with = "bytes::option"
    )]
    pub data: Option<Vec<u8>>,
    /// Keys not modelled above, kept as sent.
    #[serde(skip)]
    pub extra: Dictionary,
}

/// `GetToken`: the device asks for a token of a service (needs the `com.apple.mdm.token`
/// server capability).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetToken {
    /// `UDID`.
    #[serde(rename = "UDID", default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// `EnrollmentID`.
    #[serde(
        rename = "EnrollmentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment_id: Option<String>,
    /// `TokenServiceType`, for example `com.apple.maid`.
    #[serde(rename = "TokenServiceType")]
    pub token_service_type: String,
    /// `TokenParameters`.
    #[serde(
        rename = "TokenParameters",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub token_parameters: Option<Dictionary>,
    /// Keys not modelled above, kept as sent.
    #[serde(skip)]
    pub extra: Dictionary,
}

/// A check-in message, by `MessageType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "MessageType")]
pub enum CheckinMessage {
    /// `Authenticate`.
    Authenticate(Authenticate),
    /// `TokenUpdate`.
    TokenUpdate(TokenUpdate),
    /// `CheckOut`.
    CheckOut(CheckOut),
    /// `UserAuthenticate`.
    UserAuthenticate(UserAuthenticate),
    /// `SetBootstrapToken`.
    SetBootstrapToken(SetBootstrapToken),
    /// `GetBootstrapToken`.
    GetBootstrapToken(GetBootstrapToken),
    /// `DeclarativeManagement`.
    DeclarativeManagement(DeclarativeManagement),
    /// `GetToken`.
    GetToken(GetToken),
}

/// Parses a check-in request body.
///
/// Accepts XML and binary plists. Fails when the body is not a plist dictionary, when
/// `MessageType` is missing or unknown, when a required key is missing or has the wrong type,
/// and when neither `UDID` nor `EnrollmentID` identifies the device. Unknown keys are kept in
/// the message's `extra`.
pub fn parse_checkin(body: &[u8]) -> Result<CheckinMessage, AppleError> {
    let dict = read_dictionary(body)?;
    let message_type =
        discriminator(&dict, "MessageType", AppleError::MissingMessageType)?.to_owned();
    let skip = ["MessageType"];
    macro_rules! decode {
        ($variant:ident) => {{
            let (mut message, extra) =
                decode_with_extra::<$variant>(stringify!($variant), dict, &skip)?;
            message.extra = extra;
            CheckinMessage::$variant(message)
        }};
    }
    let message = match message_type.as_str() {
        "Authenticate" => decode!(Authenticate),
        "TokenUpdate" => decode!(TokenUpdate),
        "CheckOut" => decode!(CheckOut),
        "UserAuthenticate" => decode!(UserAuthenticate),
        "SetBootstrapToken" => decode!(SetBootstrapToken),
        "GetBootstrapToken" => decode!(GetBootstrapToken),
        "DeclarativeManagement" => decode!(DeclarativeManagement),
        "GetToken" => decode!(GetToken),
        _ => return Err(AppleError::UnknownMessageType(message_type)),
    };
    if message.udid().is_none() && message.enrollment_id().is_none() {
        return Err(AppleError::MissingUdid(message.message_type()));
    }
    Ok(message)
}

impl CheckinMessage {
    /// The `MessageType` string.
    pub fn message_type(&self) -> &'static str {
        match self {
            Self::Authenticate(_) => "Authenticate",
            Self::TokenUpdate(_) => "TokenUpdate",
            Self::CheckOut(_) => "CheckOut",
            Self::UserAuthenticate(_) => "UserAuthenticate",
            Self::SetBootstrapToken(_) => "SetBootstrapToken",
            Self::GetBootstrapToken(_) => "GetBootstrapToken",
            Self::DeclarativeManagement(_) => "DeclarativeManagement",
            Self::GetToken(_) => "GetToken",
        }
    }

    /// `UDID`, if the message has one.
    pub fn udid(&self) -> Option<&str> {
        match self {
            Self::Authenticate(m) => m.udid.as_deref(),
            Self::TokenUpdate(m) => m.udid.as_deref(),
            Self::CheckOut(m) => m.udid.as_deref(),
            Self::UserAuthenticate(m) => m.udid.as_deref(),
            Self::SetBootstrapToken(m) => m.udid.as_deref(),
            Self::GetBootstrapToken(m) => m.udid.as_deref(),
            Self::DeclarativeManagement(m) => m.udid.as_deref(),
            Self::GetToken(m) => m.udid.as_deref(),
        }
    }

    /// `EnrollmentID` (user enrolments), if the message has one.
    pub fn enrollment_id(&self) -> Option<&str> {
        match self {
            Self::Authenticate(m) => m.enrollment_id.as_deref(),
            Self::TokenUpdate(m) => m.enrollment_id.as_deref(),
            Self::CheckOut(m) => m.enrollment_id.as_deref(),
            Self::UserAuthenticate(_) => None,
            Self::SetBootstrapToken(m) => m.enrollment_id.as_deref(),
            Self::GetBootstrapToken(m) => m.enrollment_id.as_deref(),
            Self::DeclarativeManagement(m) => m.enrollment_id.as_deref(),
            Self::GetToken(m) => m.enrollment_id.as_deref(),
        }
    }

    /// The keys this crate does not model.
    pub fn extra(&self) -> &Dictionary {
        match self {
            Self::Authenticate(m) => &m.extra,
            Self::TokenUpdate(m) => &m.extra,
            Self::CheckOut(m) => &m.extra,
            Self::UserAuthenticate(m) => &m.extra,
            Self::SetBootstrapToken(m) => &m.extra,
            Self::GetBootstrapToken(m) => &m.extra,
            Self::DeclarativeManagement(m) => &m.extra,
            Self::GetToken(m) => &m.extra,
        }
    }

    /// Serialises the message as the device would send it (XML plist, `MessageType` first,
    /// then the modelled keys, then the kept extra keys).
    pub fn to_plist(&self) -> Vec<u8> {
        let first = [("MessageType", Value::String(self.message_type().to_owned()))];
        match self {
            Self::Authenticate(m) => encode_with_extra(&first, m, &m.extra),
            Self::TokenUpdate(m) => encode_with_extra(&first, m, &m.extra),
            Self::CheckOut(m) => encode_with_extra(&first, m, &m.extra),
            Self::UserAuthenticate(m) => encode_with_extra(&first, m, &m.extra),
            Self::SetBootstrapToken(m) => encode_with_extra(&first, m, &m.extra),
            Self::GetBootstrapToken(m) => encode_with_extra(&first, m, &m.extra),
            Self::DeclarativeManagement(m) => encode_with_extra(&first, m, &m.extra),
            Self::GetToken(m) => encode_with_extra(&first, m, &m.extra),
        }
    }
}
