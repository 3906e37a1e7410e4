//! The rules of an OMA-DM management session, without storage.
//!
//! A session is a sequence of messages with one `SessionID` and `MsgID`s 1, 2, 3 … from the
//! device. It starts with an authenticated message (a client certificate from our CA, or a
//! valid MD5 `Cred`); afterwards each message must carry the next `MsgID`, so a replayed or
//! reordered message is refused. A message that starts no authenticated session and continues
//! none is answered with a challenge (status 407 with a nonce), which is how Windows learns
//! that it must send credentials.
//!
//! Nonces: the device computes its digest over the nonce we gave it last (at enrolment in
//! `AAUTHDATA`, then in every `Chal`). Each authenticated session start uses up that nonce and
//! the answer carries the next one (status 212 with `Chal`/`NextNonce`). Until the device
//! has used the new nonce once, the previous one stays valid too: if our answer carrying the
//! new nonce was lost, the device still holds the old one and would otherwise be locked out.

use crate::syncml::{
    ALERT_CLIENT_INITIATED, ALERT_DEVICE, ALERT_GENERIC, ALERT_SERVER_INITIATED, Chal,
    LOGIN_STATUS_TYPE, Operation, Status, SyncCommand, SyncHeader, SyncMessage, UNENROLLMENT_TYPE,
};
use chrono::{DateTime, Duration, Utc};

/// How long after its last message a session may be continued.
pub const SESSION_TIMEOUT: Duration = Duration::minutes(10);

/// SyncML status codes the server sends.
pub mod code {
    /// Done.
    pub const OK: u16 = 200;
    /// Authenticated for the rest of the session.
    pub const AUTHENTICATION_ACCEPTED: u16 = 212;
    /// Wrong credentials.
    pub const INVALID_CREDENTIALS: u16 = 401;
    /// Credentials missing.
    pub const MISSING_CREDENTIALS: u16 = 407;
    /// The command is not supported.
    pub const NOT_SUPPORTED: u16 = 406;
}

/// The server's view of a device's session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    /// The authenticated session, if any.
    pub session_id: Option<String>,
    /// The last `MsgID` accepted in it.
    pub last_msg_id: u32,
    /// When that message arrived.
    pub last_message_at: Option<DateTime<Utc>>,
}

/// What a message proved about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A client certificate we issued to this device.
    Certificate,
    /// A valid MD5 digest.
    Digest,
    /// Nothing.
    None,
}

/// A message the session takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A new authenticated session begins with this message.
    Start,
    /// The next message of the current session.
    Continue,
}

/// A message the session does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No credentials and no session to continue: answer 407 with a nonce.
    #[error("credentials are required to start a session")]
    Challenge,
    /// A `MsgID` this session has already seen.
    #[error("MsgID {msg_id} was already received in this session (last {last})")]
    Replay {
        /// The message's id.
        msg_id: u32,
        /// The last accepted id.
        last: u32,
    },
    /// A `MsgID` that skips ahead.
    #[error("MsgID {msg_id} does not follow {last}")]
    OutOfOrder {
        /// The message's id.
        msg_id: u32,
        /// The last accepted id.
        last: u32,
    },
}

impl SessionState {
    /// Whether `session_id` is the current session and still alive at `now`.
    pub fn is_current(&self, session_id: &str, now: DateTime<Utc>) -> bool {
        self.session_id.as_deref() == Some(session_id)
            && self
                .last_message_at
                .is_some_and(|at| now - at <= SESSION_TIMEOUT)
    }

    /// Decides whether `header` may be taken given what it `proof`s.
    pub fn admit(
        &self,
        header: &SyncHeader,
        proof: Proof,
        now: DateTime<Utc>,
    ) -> Result<Admission, Refusal> {
        if self.is_current(&header.session_id, now) {
            let last = self.last_msg_id;
            return match header.msg_id {
                id if id <= last => Err(Refusal::Replay { msg_id: id, last }),
                id if id == last + 1 => Ok(Admission::Continue),
                id => Err(Refusal::OutOfOrder { msg_id: id, last }),
            };
        }
        match proof {
            Proof::Certificate | Proof::Digest => Ok(Admission::Start),
            Proof::None => Err(Refusal::Challenge),
        }
    }

    /// The state after taking `header`.
    pub fn after(&self, header: &SyncHeader, now: DateTime<Utc>) -> Self {
        Self {
            session_id: Some(header.session_id.clone()),
            last_msg_id: header.msg_id,
            last_message_at: Some(now),
        }
    }
}

/// What the device told us in its alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alerts {
    /// Alert 1201 or 1200: the message opens a session.
    pub session_start: bool,
    /// Alert 1224 login status: `user`, `others` or `none`.
    pub login_status: Option<String>,
    /// Alert 1226 `com.microsoft:mdm.unenrollment.userrequest`: the user removed the
    /// enrolment.
    pub unenrolled: bool,
}

impl SyncMessage {
    /// Reads the alerts.
    pub fn alerts(&self) -> Alerts {
        let mut alerts = Alerts::default();
        for command in &self.body {
            let SyncCommand::Alert { code, items, .. } = command else {
                continue;
            };
            match code.as_str() {
                ALERT_CLIENT_INITIATED | ALERT_SERVER_INITIATED => alerts.session_start = true,
                ALERT_DEVICE => {
                    if let Some(item) = items
                        .iter()
                        .find(|i| i.mime_type.as_deref() == Some(LOGIN_STATUS_TYPE))
                    {
                        alerts.login_status = item.data.as_ref().map(|d| d.trim().to_owned());
                    }
                }
                ALERT_GENERIC
                    if items
                        .iter()
                        .any(|i| i.mime_type.as_deref() == Some(UNENROLLMENT_TYPE)) =>
                {
                    alerts.unenrolled = true;
                }
                _ => {}
            }
        }
        alerts
    }

    /// Every `(uri, data)` the device reported on its own (`Replace`/`Add` of DevInfo at
    /// session start) or in `Results`.
    pub fn reported_nodes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.body
            .iter()
            .filter_map(|c| match c {
                SyncCommand::Operation {
                    op: Operation::Replace | Operation::Add,
                    items,
                    ..
                }
                | SyncCommand::Results { items, .. } => Some(items),
                _ => None,
            })
            .flatten()
            .filter_map(|i| Some((i.uri()?, i.data.as_deref()?)))
    }

    /// The statuses the device sent for our commands (not the one for our header).
    pub fn command_statuses(&self) -> impl Iterator<Item = &Status> {
        self.body.iter().filter_map(|c| match c {
            SyncCommand::Status(s) if s.cmd_ref != "0" && s.cmd != "SyncHdr" => Some(s),
            _ => None,
        })
    }

    /// The `Results` the device sent, with the `CmdRef` each answers.
    pub fn results(&self) -> impl Iterator<Item = (&str, &SyncCommand)> {
        self.body.iter().filter_map(|c| match c {
            SyncCommand::Results { cmd_ref, .. } => Some((cmd_ref.as_str(), c)),
            _ => None,
        })
    }

    /// Our answer: the same session, `MsgID` echoing the device's (so both count 1, 2, 3 …
    /// as the real exchange with Windows does), our header status first, then a status for
    /// each of the device's commands in their order (MS-MDM requires both), then `commands`.
    pub fn answer(
        &self,
        server_uri: &str,
        header_code: u16,
        chal: Option<Chal>,
        commands: Vec<SyncCommand>,
    ) -> SyncMessage {
        let msg_ref = self.header.msg_id.to_string();
        let mut statuses = vec![SyncCommand::Status(Status {
            cmd_id: "1".into(),
            msg_ref: msg_ref.clone(),
            cmd_ref: "0".into(),
            cmd: "SyncHdr".into(),
            code: header_code.to_string(),
            chal,
            items: Vec::new(),
        })];
        let authenticated = matches!(header_code, code::OK | code::AUTHENTICATION_ACCEPTED);
        if authenticated {
            for command in &self.body {
                let status = match command {
                    SyncCommand::Status(_) | SyncCommand::Results { .. } => continue,
                    SyncCommand::Alert { .. } => code::OK,
                    SyncCommand::Operation {
                        op: Operation::Replace | Operation::Add,
                        ..
                    } => code::OK,
                    // A device does not manage its server: anything else is not supported.
                    _ => code::NOT_SUPPORTED,
                };
                statuses.push(SyncCommand::Status(Status {
                    cmd_id: (statuses.len() + 1).to_string(),
                    msg_ref: msg_ref.clone(),
                    cmd_ref: command.cmd_id().unwrap_or_default().to_owned(),
                    cmd: command.name().to_owned(),
                    code: status.to_string(),
                    chal: None,
                    items: Vec::new(),
                }));
            }
        }
        statuses.extend(commands);
        SyncMessage {
            header: SyncHeader {
                ver_dtd: "1.2".into(),
                ver_proto: "DM/1.2".into(),
                session_id: self.header.session_id.clone(),
                msg_id: self.header.msg_id,
                target: self.header.source.clone(),
                source: server_uri.to_owned(),
                source_name: None,
                cred: None,
            },
            body: statuses,
            is_final: true,
        }
    }
}

/// Whether a status code reports success (2xx).
pub fn is_success(code: u16) -> bool {
    (200..300).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syncml::{Item, parse};

    fn header(session: &str, msg: u32) -> SyncHeader {
        SyncHeader {
            ver_dtd: "1.2".into(),
            ver_proto: "DM/1.2".into(),
            session_id: session.into(),
            msg_id: msg,
            target: "https://mdm/ManagementServer/MDM.svc".into(),
            source: "DEV".into(),
            source_name: None,
            cred: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_session_starts_only_with_proof_and_then_counts_up() {
        let empty = SessionState::default();
        assert_eq!(
            empty.admit(&header("1", 1), Proof::None, now()),
            Err(Refusal::Challenge)
        );
        assert_eq!(
            empty.admit(&header("1", 2), Proof::Digest, now()),
            Ok(Admission::Start)
        );
        let state = empty.after(&header("1", 2), now());
        assert_eq!(
            state.admit(&header("1", 3), Proof::None, now()),
            Ok(Admission::Continue)
        );
        assert_eq!(
            state.admit(&header("1", 2), Proof::None, now()),
            Err(Refusal::Replay { msg_id: 2, last: 2 })
        );
        assert_eq!(
            state.admit(&header("1", 2), Proof::Digest, now()),
            Err(Refusal::Replay { msg_id: 2, last: 2 }),
            "credentials do not make a replay acceptable"
        );
        assert_eq!(
            state.admit(&header("1", 5), Proof::None, now()),
            Err(Refusal::OutOfOrder { msg_id: 5, last: 2 })
        );
    }

    #[test]
    fn an_idle_session_cannot_be_continued_without_proof() {
        let state = SessionState::default().after(&header("1", 1), now());
        let later = now() + SESSION_TIMEOUT + Duration::seconds(1);
        assert_eq!(
            state.admit(&header("1", 2), Proof::None, later),
            Err(Refusal::Challenge)
        );
        assert_eq!(
            state.admit(&header("2", 1), Proof::Certificate, later),
            Ok(Admission::Start)
        );
    }

    #[test]
    fn the_answer_has_a_status_per_device_command_in_order_then_our_commands() {
        let request = SyncMessage {
            header: header("9", 1),
            body: vec![
                SyncCommand::Alert {
                    cmd_id: "2".into(),
                    code: "1201".into(),
                    items: vec![],
                },
                SyncCommand::Alert {
                    cmd_id: "3".into(),
                    code: "1226".into(),
                    items: vec![Item {
                        mime_type: Some(UNENROLLMENT_TYPE.into()),
                        data: Some("1".into()),
                        ..Item::default()
                    }],
                },
                SyncCommand::Operation {
                    op: Operation::Replace,
                    cmd_id: "4".into(),
                    items: vec![Item {
                        source: Some("./DevInfo/Mod".into()),
                        data: Some("X".into()),
                        ..Item::default()
                    }],
                },
                SyncCommand::Operation {
                    op: Operation::Exec,
                    cmd_id: "5".into(),
                    items: vec![],
                },
            ],
            is_final: true,
        };
        let alerts = request.alerts();
        assert!(alerts.session_start && alerts.unenrolled);
        assert_eq!(
            request.reported_nodes().collect::<Vec<_>>(),
            [("./DevInfo/Mod", "X")]
        );
        let answer = request.answer("https://mdm", 212, Some(Chal::md5("bg==")), vec![]);
        let reparsed = parse(answer.to_xml().as_bytes()).unwrap();
        let codes: Vec<(String, String, String)> = reparsed
            .body
            .iter()
            .map(|c| match c {
                SyncCommand::Status(s) => (s.cmd_ref.clone(), s.cmd.clone(), s.code.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            codes,
            [
                ("0".into(), "SyncHdr".into(), "212".into()),
                ("2".into(), "Alert".into(), "200".into()),
                ("3".into(), "Alert".into(), "200".into()),
                ("4".into(), "Replace".into(), "200".into()),
                ("5".into(), "Exec".into(), "406".into()),
            ]
        );
        assert_eq!(reparsed.header.target, "DEV");
        assert_eq!(reparsed.header.msg_id, 1);
        let challenge = request.answer("https://mdm", 407, Some(Chal::md5("bg==")), vec![]);
        assert_eq!(challenge.body.len(), 1, "a challenge answers nothing else");
    }
}
