//! A simulated iPad that speaks the real protocol: it installs the served
//! enrolment profile (unwraps the signed CMS, takes its PKCS#12 identity and
//! MDM payload), signs every body with `Mdm-Signature` as iPads do, runs
//! Authenticate → TokenUpdate → Idle, and answers commands with the kind of
//! results a real iPad sends. The benchmarks drive thousands of these.

use base64::Engine;
use flotte_apple::{
    Authenticate, CheckOut, CheckinMessage, CommandReport, ErrorChainItem, TokenUpdate,
};
use plist::{Dictionary, Value};
use reqwest::StatusCode;
use std::collections::BTreeMap;

/// What the served enrolment profile told the device.
#[derive(Debug, Clone)]
pub struct EnrollmentPayload {
    pub server_url: String,
    pub check_in_url: String,
    pub topic: String,
    pub sign_message: bool,
    pub access_rights: i64,
    pub identity_cert_pem: String,
    pub identity_key_pem: String,
    pub profile_identifier: String,
    pub profile_uuid: String,
}

/// A command as the device received it.
#[derive(Debug, Clone)]
pub struct ReceivedCommand {
    pub uuid: String,
    pub request_type: String,
    pub command: Dictionary,
}

/// How the simulated iPad answers.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answer NotNow the first time a command of this type arrives (a locked screen).
    pub not_now_first: Vec<String>,
    /// Answer Error to commands of this type.
    pub fail: Vec<String>,
}

pub struct SimIpad {
    pub udid: String,
    pub serial: String,
    pub token: Vec<u8>,
    pub push_magic: String,
    pub enrollment: EnrollmentPayload,
    pub behaviour: Behaviour,
    /// Profiles installed, by identifier → PayloadUUID.
    pub installed: BTreeMap<String, (String, String)>,
    pub device_name: String,
    not_now_given: Vec<String>,
    client: reqwest::Client,
}

impl EnrollmentPayload {
    /// Read a signed `.mobileconfig` as iPadOS does: verify, unwrap, find the
    /// MDM payload and the identity it names, open the PKCS#12 with its password.
    pub fn from_signed_profile(signed: &[u8]) -> anyhow::Result<Self> {
        let (content, _signer) = flotte_pki::open_attached(signed)?;
        let profile: Dictionary = plist::from_bytes(&content)?;
        let payloads = profile
            .get("PayloadContent")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow::anyhow!("profile without PayloadContent"))?;
        let find = |kind: &str| {
            payloads
                .iter()
                .filter_map(Value::as_dictionary)
                .find(|p| p.get("PayloadType").and_then(Value::as_string) == Some(kind))
        };
        let mdm =
            find("com.apple.mdm").ok_or_else(|| anyhow::anyhow!("no com.apple.mdm payload"))?;
        let identity_uuid = mdm
            .get("IdentityCertificateUUID")
            .and_then(Value::as_string)
            .ok_or_else(|| anyhow::anyhow!("no IdentityCertificateUUID"))?;
        let identity = payloads
            .iter()
            .filter_map(Value::as_dictionary)
            .find(|p| p.get("PayloadUUID").and_then(Value::as_string) == Some(identity_uuid))
            .ok_or_else(|| anyhow::anyhow!("IdentityCertificateUUID names no payload"))?;
        let p12 = identity
            .get("PayloadContent")
            .and_then(Value::as_data)
            .ok_or_else(|| anyhow::anyhow!("identity payload without data"))?;
        let password = identity
            .get("Password")
            .and_then(Value::as_string)
            .unwrap_or_default();
        let (cert, key) = flotte_pki::parse_pkcs12(p12, password)?;
        let text = |d: &Dictionary, k: &str| d.get(k).and_then(Value::as_string).map(str::to_owned);
        let server_url = text(mdm, "ServerURL").ok_or_else(|| anyhow::anyhow!("no ServerURL"))?;
        Ok(Self {
            check_in_url: text(mdm, "CheckInURL").unwrap_or_else(|| server_url.clone()),
            server_url,
            topic: text(mdm, "Topic").ok_or_else(|| anyhow::anyhow!("no Topic"))?,
            sign_message: mdm
                .get("SignMessage")
                .and_then(Value::as_boolean)
                .unwrap_or(false),
            access_rights: mdm
                .get("AccessRights")
                .and_then(Value::as_signed_integer)
                .unwrap_or(0),
            identity_cert_pem: cert,
            identity_key_pem: key,
            profile_identifier: text(&profile, "PayloadIdentifier").unwrap_or_default(),
            profile_uuid: text(&profile, "PayloadUUID").unwrap_or_default(),
        })
    }
}

impl SimIpad {
    /// A new iPad holding this enrolment. `n` makes UDID, serial and token unique.
    pub fn new(enrollment: EnrollmentPayload, client: reqwest::Client, n: u64) -> Self {
        let udid = format!("00008103-{n:016X}");
        let serial = format!("DMP{n:09}");
        let mut token = [0u8; 32];
        token[..8].copy_from_slice(&n.to_be_bytes());
        token[8..16].copy_from_slice(&0x5eed_ab1e_u64.to_be_bytes());
        let mut installed = BTreeMap::new();
        installed.insert(
            enrollment.profile_identifier.clone(),
            (enrollment.profile_uuid.clone(), "MDM".to_owned()),
        );
        Self {
            udid,
            serial,
            token: token.to_vec(),
            push_magic: uuid::Uuid::new_v4().to_string().to_uppercase(),
            enrollment,
            behaviour: Behaviour::default(),
            installed,
            device_name: format!("iPad {n}"),
            not_now_given: Vec::new(),
            client,
        }
    }

    pub fn token_hex(&self) -> String {
        hex::encode(&self.token)
    }

    fn sign(&self, body: &[u8]) -> String {
        let sig = flotte_pki::sign_detached(
            body,
            &self.enrollment.identity_cert_pem,
            &self.enrollment.identity_key_pem,
        )
        .expect("the device can sign with its identity");
        base64::engine::general_purpose::STANDARD.encode(sig)
    }

    /// Send a signed body as the device would.
    pub async fn send(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = self
            .client
            .put(url)
            .header("content-type", content_type)
            .header("user-agent", "MDM/1.0");
        if self.enrollment.sign_message {
            request = request.header("mdm-signature", self.sign(&body));
        }
        let response = request.body(body).send().await.expect("server reachable");
        let status = response.status();
        (status, response.bytes().await.expect("body").to_vec())
    }

    pub async fn checkin(&self, message: &CheckinMessage) -> (StatusCode, Vec<u8>) {
        self.send(
            &self.enrollment.check_in_url,
            "application/x-apple-aspen-mdm-checkin",
            message.to_plist(),
        )
        .await
    }

    pub fn authenticate_message(&self) -> CheckinMessage {
        CheckinMessage::Authenticate(Authenticate {
            topic: self.enrollment.topic.clone(),
            udid: Some(self.udid.clone()),
            serial_number: Some(self.serial.clone()),
            product_name: Some("iPad12,1".into()),
            os_version: Some("17.6.1".into()),
            build_version: Some("21G93".into()),
            ..Authenticate::default()
        })
    }

    pub fn token_update_message(&self) -> CheckinMessage {
        CheckinMessage::TokenUpdate(TokenUpdate {
            topic: self.enrollment.topic.clone(),
            udid: Some(self.udid.clone()),
            token: self.token.clone(),
            push_magic: self.push_magic.clone(),
            unlock_token: Some(b"unlock-token-of-the-simulated-ipad".to_vec()),
            ..TokenUpdate::default()
        })
    }

    pub fn checkout_message(&self) -> CheckinMessage {
        CheckinMessage::CheckOut(CheckOut {
            topic: Some(self.enrollment.topic.clone()),
            udid: Some(self.udid.clone()),
            ..CheckOut::default()
        })
    }

    /// Authenticate then TokenUpdate, as after installing the profile.
    pub async fn enrol(&self) -> anyhow::Result<()> {
        for message in [self.authenticate_message(), self.token_update_message()] {
            let (status, body) = self.checkin(&message).await;
            anyhow::ensure!(
                status == StatusCode::OK,
                "{} answered {status}: {}",
                message.message_type(),
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// Send a report; return the status and the next command, if any.
    pub async fn report(&self, report: &CommandReport) -> (StatusCode, Option<ReceivedCommand>) {
        let (status, body) = self
            .send(
                &self.enrollment.server_url,
                "application/x-apple-aspen-mdm",
                report.to_plist(),
            )
            .await;
        if status != StatusCode::OK || body.is_empty() {
            return (status, None);
        }
        let dict: Dictionary = plist::from_bytes(&body).expect("the server sends plist commands");
        let uuid = dict
            .get("CommandUUID")
            .and_then(Value::as_string)
            .expect("CommandUUID")
            .to_owned();
        let command = dict
            .get("Command")
            .and_then(Value::as_dictionary)
            .expect("Command")
            .clone();
        let request_type = command
            .get("RequestType")
            .and_then(Value::as_string)
            .expect("RequestType")
            .to_owned();
        (
            status,
            Some(ReceivedCommand {
                uuid,
                request_type,
                command,
            }),
        )
    }

    /// A whole session as after a push: Idle, then answer until the queue is empty.
    /// Returns the commands received, in order.
    pub async fn session(&mut self) -> Vec<ReceivedCommand> {
        let mut seen = Vec::new();
        let (status, mut next) = self.report(&CommandReport::idle(&self.udid)).await;
        assert_eq!(status, StatusCode::OK, "Idle accepted");
        while let Some(command) = next {
            let answer = self.answer(&command);
            seen.push(command);
            let (status, following) = self.report(&answer).await;
            assert_eq!(status, StatusCode::OK, "report accepted");
            next = following;
        }
        seen
    }

    /// The answer a real iPad would give.
    pub fn answer(&mut self, command: &ReceivedCommand) -> CommandReport {
        let rt = command.request_type.as_str();
        if self.behaviour.not_now_first.iter().any(|t| t == rt)
            && !self.not_now_given.contains(&command.uuid)
        {
            self.not_now_given.push(command.uuid.clone());
            return CommandReport::not_now(&self.udid, &command.uuid);
        }
        if self.behaviour.fail.iter().any(|t| t == rt) {
            return CommandReport::error(
                &self.udid,
                &command.uuid,
                vec![ErrorChainItem {
                    error_code: 12021,
                    error_domain: "MCMDMErrorDomain".into(),
                    localized_description: Some("The request could not be completed.".into()),
                    us_english_description: Some("The request could not be completed.".into()),
                }],
            );
        }
        let mut report = CommandReport::acknowledged(&self.udid, &command.uuid);
        match rt {
            "DeviceInformation" => report.query_responses = Some(self.query_responses(command)),
            "ProfileList" => {
                report.profile_list = Some(
                    self.installed
                        .iter()
                        .map(|(identifier, (uuid, name))| {
                            let mut d = Dictionary::new();
                            d.insert("PayloadIdentifier".into(), identifier.clone().into());
                            d.insert("PayloadUUID".into(), uuid.clone().into());
                            d.insert("PayloadDisplayName".into(), name.clone().into());
                            d.insert("PayloadVersion".into(), Value::Integer(1.into()));
                            d.insert("IsManaged".into(), true.into());
                            d
                        })
                        .collect(),
                )
            }
            "InstallProfile" => {
                if let Some(Value::Data(payload)) = command.command.get("Payload") {
                    let content = flotte_pki::open_attached(payload)
                        .map(|(c, _)| c)
                        .unwrap_or_else(|_| payload.clone());
                    if let Ok(profile) = plist::from_bytes::<Dictionary>(&content) {
                        let get = |k: &str| {
                            profile
                                .get(k)
                                .and_then(Value::as_string)
                                .unwrap_or_default()
                                .to_owned()
                        };
                        self.installed.insert(
                            get("PayloadIdentifier"),
                            (get("PayloadUUID"), get("PayloadDisplayName")),
                        );
                    }
                }
            }
            "RemoveProfile" => {
                if let Some(id) = command.command.get("Identifier").and_then(Value::as_string) {
                    self.installed.remove(id);
                }
            }
            "Settings" => {
                if let Some(items) = command.command.get("Settings").and_then(Value::as_array) {
                    for item in items.iter().filter_map(Value::as_dictionary) {
                        if let Some(name) = item.get("DeviceName").and_then(Value::as_string) {
                            self.device_name = name.to_owned();
                        }
                    }
                }
            }
            "SecurityInfo" => {
                let mut info = Dictionary::new();
                info.insert("HardwareEncryptionCaps".into(), Value::Integer(3.into()));
                info.insert("PasscodePresent".into(), true.into());
                info.insert("PasscodeCompliant".into(), true.into());
                report.security_info = Some(info);
            }
            "InstalledApplicationList" => {
                let mut app = Dictionary::new();
                app.insert("Identifier".into(), "com.apple.Keynote".into());
                app.insert("Name".into(), "Keynote".into());
                app.insert("ShortVersion".into(), "14.1".into());
                report.installed_application_list = Some(vec![app]);
            }
            _ => {}
        }
        report
    }

    fn query_responses(&self, command: &ReceivedCommand) -> Dictionary {
        let all: Dictionary = [
            ("UDID", Value::from(self.udid.clone())),
            ("SerialNumber", self.serial.clone().into()),
            ("Model", "MK2K3FD/A".into()),
            ("ModelName", "iPad".into()),
            ("ProductName", "iPad12,1".into()),
            ("OSVersion", "17.6.1".into()),
            ("BuildVersion", "21G93".into()),
            ("DeviceCapacity", Value::Real(64.0)),
            ("AvailableDeviceCapacity", Value::Real(41.5)),
            ("BatteryLevel", Value::Real(0.87)),
            ("DeviceName", self.device_name.clone().into()),
            ("WiFiMAC", "a4:83:e7:12:34:56".into()),
            ("IsSupervised", true.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let asked: Vec<&str> = command
            .command
            .get("Queries")
            .and_then(Value::as_array)
            .map(|q| q.iter().filter_map(Value::as_string).collect())
            .unwrap_or_default();
        all.into_iter()
            .filter(|(k, _)| asked.is_empty() || asked.contains(&k.as_str()))
            .collect()
    }
}
