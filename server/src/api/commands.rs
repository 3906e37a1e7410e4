//! Turning an API request into a queue entry: each platform checks its own
//! command types, so a malformed command is refused when it is queued, not
//! when the device asks for it.

use crate::error::ApiError;
use flotte_core::device::Platform;
use flotte_profiles::apple::Command as AppleCommand;
use flotte_storage::NewCommand;

/// Validate `request_type` + `parameters` for a device of `platform`.
pub(crate) fn prepare(
    platform: Platform,
    request_type: &str,
    parameters: serde_json::Value,
) -> Result<NewCommand, ApiError> {
    match platform {
        Platform::Apple => apple(request_type, parameters),
        Platform::Windows => Ok(NewCommand {
            request_type: request_type.to_owned(),
            payload: flotte_windows::commands::validate_command(request_type, &parameters)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        }),
    }
}

fn apple(request_type: &str, parameters: serde_json::Value) -> Result<NewCommand, ApiError> {
    let mut object = match parameters {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(map) => map,
        _ => {
            return Err(ApiError::BadRequest(
                "parameters must be a JSON object".into(),
            ));
        }
    };
    if request_type == "ClearPasscode" {
        // The UnlockToken stays sealed in storage until the command is sent.
        object.insert(
            "unlock_token".into(),
            serde_json::Value::String(String::new()),
        );
    }
    if request_type == "DeviceInformation" && !object.contains_key("queries") {
        return Ok(typed(AppleCommand::device_information()));
    }
    object.insert(
        "request_type".into(),
        serde_json::Value::String(request_type.to_owned()),
    );
    let command: AppleCommand =
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
            ApiError::BadRequest(format!("not a valid Apple {request_type} command: {e}"))
        })?;
    Ok(typed(command))
}

fn typed(command: AppleCommand) -> NewCommand {
    NewCommand {
        request_type: command.request_type().to_owned(),
        payload: serde_json::to_value(&command).expect("commands serialise to JSON"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_commands_are_checked_when_queued() {
        let ok = prepare(
            Platform::Apple,
            "Settings",
            serde_json::json!({
                "settings": [{ "kind": "device_name", "device_name": "iPad 7b-03" }]
            }),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let info = prepare(
            Platform::Apple,
            "DeviceInformation",
            serde_json::Value::Null,
        )
        .unwrap();
        assert!(info.payload["queries"].as_array().unwrap().len() > 5);
        let bad = prepare(Platform::Apple, "FormatTheMoon", serde_json::Value::Null).unwrap_err();
        assert!(bad.to_string().contains("FormatTheMoon"), "{bad}");
        let missing = prepare(Platform::Apple, "RemoveProfile", serde_json::json!({})).unwrap_err();
        assert!(missing.to_string().contains("identifier"), "{missing}");
        let clear = prepare(Platform::Apple, "ClearPasscode", serde_json::Value::Null).unwrap();
        assert_eq!(clear.payload["unlock_token"], "");
    }
}
