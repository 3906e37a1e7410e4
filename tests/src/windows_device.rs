//! A simulated Windows laptop: it discovers the enrolment service, fetches the policy,
//! enrols with a PKCS#10 it generates (RSA-2048, Microsoft's device-id extension, CN
//! `<GUID>!<DeviceID>` as Windows writes it), installs what the provisioning document says,
//! then runs OMA-DM sessions on its poll schedule and answers commands from a small
//! management tree the way Windows does (Status per command, Results for Get, 404 for nodes
//! it lacks, 418 for an Add of an existing node, 507 with 216 rollbacks for a failed Atomic).
//!
//! It speaks through `flotte-windows`, the same codec the server uses, so a message the
//! simulator sends is exactly the shape the server parses. Benchmarks reuse it.
//!
//! [`capture`] reads the real Windows 10 exchange in `shared/vectors/windows`.

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use flotte_windows::digest::{decode_nonce, md5_credential};
use flotte_windows::provisioning::{self, ProvisionedAccount};
use flotte_windows::soap::{self, Credential, SoapError};
use flotte_windows::syncml::{
    self, AUTH_MD5, Chal, Cred, Item, LOGIN_STATUS_TYPE, Operation, Status, SyncCommand,
    SyncHeader, SyncMessage, UNENROLLMENT_TYPE,
};
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::time::Duration;

/// The real Windows 10 exchange from the vectors.
pub mod capture {
    use std::path::PathBuf;

    /// The vectors directory.
    pub fn vectors_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/windows")
    }

    /// A vector file's bytes.
    pub fn vector(name: &str) -> Vec<u8> {
        let path = vectors_dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// One request the device sent.
    #[derive(Debug, Clone)]
    pub struct CapturedRequest {
        pub method: String,
        /// Path and query, as sent.
        pub target: String,
        /// The logged `Content-Length`.
        pub content_length: Option<usize>,
        /// The body as the device sent it: the capture indents it, and the provenance note
        /// says that with newlines and indentation removed it has the logged length.
        pub body: String,
    }

    /// The device's requests in order.
    pub fn requests() -> Vec<CapturedRequest> {
        let text = String::from_utf8(vector("win10-enrollment-and-sessions-capture.txt"))
            .expect("the capture is text");
        text.split("============================= Input Request =============================")
            .skip(1)
            .map(|block| {
                let block = block
                    .split("============================= Output Response")
                    .next()
                    .unwrap_or(block);
                let request_line = block
                    .lines()
                    .map(str::trim)
                    .find(|l| l.starts_with("GET ") || l.starts_with("POST "))
                    .expect("a request line");
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().unwrap_or_default().to_owned();
                let content_length = block.lines().find_map(|l| {
                    l.strip_prefix("Content-Length:")
                        .and_then(|v| v.trim().parse().ok())
                });
                let body = block
                    .split("----------- Input Body -----------")
                    .nth(1)
                    .map(|b| {
                        b.lines()
                            .take_while(|l| !l.starts_with("====="))
                            .map(str::trim)
                            .collect::<String>()
                    })
                    .unwrap_or_default();
                CapturedRequest {
                    method,
                    target,
                    content_length,
                    body,
                }
            })
            .collect()
    }

    /// The first captured request to `path` (query ignored), the `nth` of them.
    pub fn request_to(path: &str, nth: usize) -> CapturedRequest {
        requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.target.split('?').next() == Some(path))
            .nth(nth)
            .unwrap_or_else(|| panic!("no POST #{nth} to {path} in the capture"))
    }
}

/// When the laptop sends its digest credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialMode {
    /// Only after the server challenges (status 407/401 with a nonce): what the captured
    /// Windows 10 did, whose session-opening messages carry no `Cred`.
    WhenChallenged,
    /// In every session's first message.
    Always,
}

/// What one management session did.
#[derive(Debug, Clone, Default)]
pub struct SessionReport {
    /// HTTP requests the session took.
    pub messages: u32,
    /// Whether the server challenged for credentials.
    pub challenged: bool,
    /// The server's header status codes, in order.
    pub header_codes: Vec<u16>,
    /// Every command the server sent: (element, CmdID, the status we answered).
    pub commands: Vec<(String, String, u16)>,
}

struct Enrolled {
    account: ProvisionedAccount,
    identity_pem: String,
    /// The base64 nonce for the next digest.
    nonce: String,
    /// Presents the identity certificate in TLS when set.
    identity_client: Option<reqwest::Client>,
}

/// A simulated Windows laptop.
pub struct SimLaptop {
    client: reqwest::Client,
    ca_pem: Vec<u8>,
    base_url: String,
    /// The DeviceID (SyncML `Source`).
    pub device_id: String,
    /// The hardware id, stable across re-installations.
    pub hw_dev_id: String,
    pub device_name: String,
    /// `Full` (a user enrolled) or `Device` (a provisioning package).
    pub enrollment_type: &'static str,
    key_pem: String,
    csr_der: Vec<u8>,
    pub credential_mode: CredentialMode,
    enrolled: Option<Enrolled>,
    /// The management tree the laptop answers `Get`/`Replace`/`Add`/`Delete` from.
    pub tree: BTreeMap<String, String>,
    /// Every node `Exec`uted, in order.
    pub executed: Vec<String>,
    next_session: u32,
}

const DEVICE_ID_EXTENSION: [u64; 10] = [1, 3, 6, 1, 4, 1, 311, 66, 1, 0];

/// A PKCS#10 as Windows writes it, signed with `key_pem` (PKCS#8 RSA).
pub fn windows_csr(device_id: &str, key_pem: &str) -> anyhow::Result<Vec<u8>> {
    let key = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(key_pem, &rcgen::PKCS_RSA_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!(
            "{}!{device_id}",
            uuid::Uuid::new_v4().to_string().to_uppercase()
        ),
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    // Raw ASCII with a NUL, not DER-wrapped: what Windows puts into this extension.
    let mut value = device_id.as_bytes().to_vec();
    value.push(0);
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            &DEVICE_ID_EXTENSION,
            value,
        ));
    Ok(params.serialize_request(&key)?.der().to_vec())
}

/// A fresh RSA-2048 key as PKCS#8 PEM (slow in debug builds: pool them for many laptops).
pub fn new_key() -> anyhow::Result<String> {
    Ok(flotte_pki::generate_csr("key")?.1)
}

fn https_client(
    ca_pem: &[u8],
    identity: Option<reqwest::Identity>,
) -> anyhow::Result<reqwest::Client> {
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem)?;
    let mut builder = reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only(certs);
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    Ok(builder.build()?)
}

impl SimLaptop {
    /// Laptop number `n` against the server at `base_url`, trusting `ca_pem` for TLS, with a
    /// new key.
    pub fn new(ca_pem: &[u8], base_url: &str, n: u64) -> anyhow::Result<Self> {
        Self::with_key(ca_pem, base_url, n, new_key()?)
    }

    /// Laptop number `n` with a given key (benchmarks share a pool of keys).
    pub fn with_key(
        ca_pem: &[u8],
        base_url: &str,
        n: u64,
        key_pem: String,
    ) -> anyhow::Result<Self> {
        let device_id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        let hw_dev_id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
        .to_uppercase();
        let device_name = format!("SIM-LAP-{n:04}");
        let csr_der = windows_csr(&device_id, &key_pem)?;
        let tree = [
            ("./DevInfo/Man", "Dell Inc.".to_owned()),
            ("./DevInfo/Mod", "Latitude 3440".to_owned()),
            ("./DevInfo/DmV", "1.3".to_owned()),
            ("./DevInfo/Lang", "de-DE".to_owned()),
            ("./DevDetail/SwV", "10.0.22631.4602".to_owned()),
            (
                "./DevDetail/Ext/Microsoft/OSPlatform",
                "Windows 11 Education".to_owned(),
            ),
            (
                "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber",
                format!("SIM{n:07}"),
            ),
            (
                "./DevDetail/Ext/Microsoft/DNSComputerName",
                device_name.clone(),
            ),
            (
                "./DevDetail/Ext/Microsoft/LocalTime",
                "2026-11-27T09:00:00.0000000+01:00".to_owned(),
            ),
            ("./DevDetail/Ext/Microsoft/TotalRAM", "8192".to_owned()),
            ("./Vendor/MSFT/DeviceStatus/OS/Edition", "121".to_owned()),
            (
                "./Vendor/MSFT/DeviceStatus/Battery/EstimatedChargeRemaining",
                "87".to_owned(),
            ),
            (
                flotte_windows::commands::FREE_SPACE_URI,
                "123456789012".to_owned(),
            ),
            (
                flotte_windows::commands::DISK_SIZE_URI,
                "255000000000".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let tree = {
            let mut t: BTreeMap<String, String> = tree;
            t.insert("./DevInfo/DevId".into(), device_id.clone());
            t
        };
        Ok(Self {
            client: https_client(ca_pem, None)?,
            ca_pem: ca_pem.to_vec(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            device_id,
            hw_dev_id,
            device_name,
            enrollment_type: "Full",
            key_pem,
            csr_der,
            credential_mode: CredentialMode::WhenChallenged,
            enrolled: None,
            tree,
            executed: Vec::new(),
            next_session: 1,
        })
    }

    /// The PKCS#10 this laptop enrols with.
    pub fn csr_der(&self) -> &[u8] {
        &self.csr_der
    }

    /// The identity certificate (DER) from the provisioning document, once enrolled.
    pub fn identity_der(&self) -> Option<Vec<u8>> {
        let account = &self.enrolled.as_ref()?.account;
        account
            .certificates
            .iter()
            .find(|(store, _, _)| store.starts_with("My/"))
            .map(|(_, _, der)| der.clone())
    }

    /// What the provisioning document installed.
    pub fn account(&self) -> Option<&ProvisionedAccount> {
        self.enrolled.as_ref().map(|e| &e.account)
    }

    async fn post(&self, url: &str, body: String) -> anyhow::Result<(StatusCode, String)> {
        let response = self
            .client
            .post(url)
            .header("content-type", "application/soap+xml; charset=utf-8")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        Ok((status, response.text().await?))
    }

    /// Discovery, policy and enrolment with `username`/`password` (a staff member's, or any
    /// name with an enrolment secret as the password). A refused step comes back as the
    /// [`SoapError`] fault inside the error.
    pub async fn enroll(&mut self, username: &str, password: &str) -> anyhow::Result<()> {
        let discovery = format!("{}/EnrollmentServer/Discovery.svc", self.base_url);
        let probe = self.client.get(&discovery).send().await?;
        if probe.status() != StatusCode::OK {
            bail!("discovery probe answered {}", probe.status());
        }
        let message_id = || format!("urn:uuid:{}", uuid::Uuid::new_v4());
        let (_, body) = self
            .post(
                &discovery,
                soap::render_discover_request(&message_id(), &discovery, username),
            )
            .await?;
        let urls = soap::parse_discover_response(body.as_bytes())?;
        let credential = Credential::UsernameToken {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        let (_, body) = self
            .post(
                &urls.policy_url,
                soap::render_get_policies_request(&message_id(), &urls.policy_url, &credential),
            )
            .await?;
        let policy = soap::parse_get_policies_response(body.as_bytes())?;
        if policy.hash_algorithm_oid.as_deref() != Some(soap::OID_SHA256) {
            bail!("the policy does not ask for SHA-256: {policy:?}");
        }
        let context = [
            ("UXInitiated", "true"),
            ("HWDevID", self.hw_dev_id.as_str()),
            ("Locale", "de-DE"),
            ("TargetedUserLoggedIn", "true"),
            ("OSEdition", "121"),
            ("DeviceName", self.device_name.as_str()),
            ("MAC", "00-15-5D-01-02-03"),
            ("DeviceID", self.device_id.as_str()),
            ("EnrollmentType", self.enrollment_type),
            ("DeviceType", "CIMClient_Windows"),
            ("OSVersion", "10.0.22631.4602"),
            ("ApplicationVersion", "10.0.22631.4602"),
            ("NotInOobe", "false"),
            ("RequestVersion", "5.0"),
        ];
        let (_, body) = self
            .post(
                &urls.enrollment_url,
                soap::render_request_security_token(
                    &message_id(),
                    &urls.enrollment_url,
                    &credential,
                    &self.csr_der,
                    &context,
                ),
            )
            .await?;
        let document = soap::parse_enrollment_response(body.as_bytes())?;
        let account = provisioning::parse(&document)?;
        let identity = account
            .certificates
            .iter()
            .find(|(store, _, _)| store.starts_with("My/"))
            .ok_or_else(|| anyhow!("the document installs no client certificate"))?;
        let identity_pem = flotte_pki::der_to_pem("CERTIFICATE", &identity.2);
        self.enrolled = Some(Enrolled {
            nonce: account.client_auth.nonce_b64.clone(),
            account,
            identity_pem,
            identity_client: None,
        });
        Ok(())
    }

    /// From now on present the identity certificate in TLS (`SSLCLIENTCERTSEARCHCRITERIA`
    /// found it), so sessions need no digest.
    pub fn use_client_certificate(&mut self) -> anyhow::Result<()> {
        let enrolled = self
            .enrolled
            .as_mut()
            .ok_or_else(|| anyhow!("not enrolled"))?;
        let identity = reqwest::Identity::from_pem(
            format!("{}{}", enrolled.identity_pem, self.key_pem).as_bytes(),
        )?;
        enrolled.identity_client = Some(https_client(&self.ca_pem, Some(identity))?);
        Ok(())
    }

    /// The management URL from the provisioning document.
    pub fn management_url(&self) -> anyhow::Result<String> {
        Ok(self
            .enrolled
            .as_ref()
            .ok_or_else(|| anyhow!("not enrolled"))?
            .account
            .management_url
            .clone())
    }

    /// The digest `Cred` for the current nonce.
    pub fn credential(&self) -> anyhow::Result<Cred> {
        let e = self
            .enrolled
            .as_ref()
            .ok_or_else(|| anyhow!("not enrolled"))?;
        let name = e.account.client_auth.name.clone().unwrap_or_default();
        Ok(Cred {
            auth_type: AUTH_MD5.into(),
            format: Some("b64".into()),
            data: md5_credential(
                &name,
                &e.account.client_auth.secret,
                &decode_nonce(&e.nonce),
            ),
        })
    }

    /// A message of this laptop: header for `session`/`msg_id`, optional `Cred`.
    pub fn message(
        &self,
        session: &str,
        msg_id: u32,
        body: Vec<SyncCommand>,
        with_cred: bool,
    ) -> anyhow::Result<SyncMessage> {
        let e = self
            .enrolled
            .as_ref()
            .ok_or_else(|| anyhow!("not enrolled"))?;
        Ok(SyncMessage {
            header: SyncHeader {
                ver_dtd: "1.2".into(),
                ver_proto: "DM/1.2".into(),
                session_id: session.to_owned(),
                msg_id,
                target: e.account.management_url.clone(),
                source: self.device_id.clone(),
                source_name: with_cred
                    .then(|| e.account.client_auth.name.clone())
                    .flatten(),
                cred: if with_cred {
                    Some(self.credential()?)
                } else {
                    None
                },
            },
            body,
            is_final: true,
        })
    }

    /// The session-opening package: alerts 1201 and 1224, the DevInfo `Replace`, and the
    /// unenrolment alert 1226 when `unenroll`.
    pub fn package_one(&self, unenroll: bool) -> Vec<SyncCommand> {
        let mut body = vec![
            SyncCommand::Alert {
                cmd_id: "2".into(),
                code: syncml::ALERT_CLIENT_INITIATED.into(),
                items: vec![],
            },
            SyncCommand::Alert {
                cmd_id: "3".into(),
                code: syncml::ALERT_DEVICE.into(),
                items: vec![Item {
                    mime_type: Some(LOGIN_STATUS_TYPE.into()),
                    data: Some("user".into()),
                    ..Item::default()
                }],
            },
        ];
        if unenroll {
            body.push(SyncCommand::Alert {
                cmd_id: "4".into(),
                code: syncml::ALERT_GENERIC.into(),
                items: vec![Item {
                    mime_type: Some(UNENROLLMENT_TYPE.into()),
                    format: Some("int".into()),
                    data: Some("1".into()),
                    ..Item::default()
                }],
            });
        }
        let items = ["DevId", "Man", "Mod", "DmV", "Lang"]
            .iter()
            .map(|leaf| {
                let uri = format!("./DevInfo/{leaf}");
                Item {
                    source: Some(uri.clone()),
                    data: self.tree.get(&uri).cloned(),
                    ..Item::default()
                }
            })
            .collect();
        body.push(SyncCommand::Operation {
            op: Operation::Replace,
            cmd_id: if unenroll { "5" } else { "4" }.into(),
            items,
        });
        body
    }

    /// POST raw bytes to the management endpoint as this laptop (with its TLS identity when
    /// it uses one).
    pub async fn post_management(&self, body: Vec<u8>) -> anyhow::Result<reqwest::Response> {
        let e = self
            .enrolled
            .as_ref()
            .ok_or_else(|| anyhow!("not enrolled"))?;
        let client = e.identity_client.as_ref().unwrap_or(&self.client);
        Ok(client
            .post(format!(
                "{}?mode=Maintenance&Platform=WoA",
                e.account.management_url
            ))
            .header("content-type", "application/vnd.syncml.dm+xml")
            .header("user-agent", "MSFT OMA DM Client/1.2.0.1")
            .body(body)
            .send()
            .await?)
    }

    async fn exchange(&mut self, message: &SyncMessage) -> anyhow::Result<SyncMessage> {
        let response = self.post_management(message.to_xml().into_bytes()).await?;
        let status = response.status();
        let body = response.bytes().await?;
        if status != StatusCode::OK {
            bail!(
                "the server answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let answer = syncml::parse(&body)?;
        // Every answer's header status may hand over the nonce for the next digest.
        if let Some(nonce) = header_status(&answer)
            .and_then(|s| s.chal.as_ref())
            .and_then(|c| c.next_nonce.clone())
            && let Some(e) = self.enrolled.as_mut()
        {
            e.nonce = nonce;
        }
        Ok(answer)
    }

    /// One management session: opens with package 1, answers the server's commands message
    /// by message, and ends when an answer carries no more commands.
    pub async fn sync(&mut self) -> anyhow::Result<SessionReport> {
        self.session(false).await
    }

    /// A session whose package 1 carries the unenrolment alert, as when the user removes
    /// the work account in Settings.
    pub async fn unenroll(&mut self) -> anyhow::Result<SessionReport> {
        self.session(true).await
    }

    async fn session(&mut self, unenroll: bool) -> anyhow::Result<SessionReport> {
        let session = self.next_session.to_string();
        self.next_session += 1;
        let mut report = SessionReport::default();
        let certificate = self
            .enrolled
            .as_ref()
            .is_some_and(|e| e.identity_client.is_some());
        let mut msg_id = 1;
        let mut sent_cred = self.credential_mode == CredentialMode::Always && !certificate;
        let first = self.message(&session, msg_id, self.package_one(unenroll), sent_cred)?;
        let mut answer = self.exchange(&first).await?;
        report.messages += 1;
        loop {
            let code = header_status(&answer)
                .and_then(Status::code_number)
                .ok_or_else(|| anyhow!("the answer has no header status"))?;
            report.header_codes.push(code);
            if matches!(code, 401 | 407) {
                if sent_cred {
                    bail!("the server refused our credentials ({code})");
                }
                report.challenged = true;
                sent_cred = true;
                msg_id += 1;
                let again = self.message(&session, msg_id, self.package_one(unenroll), true)?;
                answer = self.exchange(&again).await?;
                report.messages += 1;
                continue;
            }
            if !matches!(code, 200 | 212) {
                bail!("the server answered our header with {code}");
            }
            let commands: Vec<SyncCommand> = answer
                .body
                .iter()
                .filter(|c| !matches!(c, SyncCommand::Status(_) | SyncCommand::Results { .. }))
                .cloned()
                .collect();
            if commands.is_empty() {
                return Ok(report);
            }
            let msg_ref = answer.header.msg_id.to_string();
            let mut reply = vec![SyncCommand::Status(Status {
                cmd_id: "1".into(),
                msg_ref: msg_ref.clone(),
                cmd_ref: "0".into(),
                cmd: "SyncHdr".into(),
                code: "200".into(),
                chal: None,
                items: vec![],
            })];
            for command in &commands {
                let code = self.execute(command, &msg_ref, &mut reply);
                report.commands.push((
                    command.name().to_owned(),
                    command.cmd_id().unwrap_or_default().to_owned(),
                    code,
                ));
            }
            msg_id += 1;
            let next = self.message(&session, msg_id, reply, false)?;
            answer = self.exchange(&next).await?;
            report.messages += 1;
        }
    }

    /// The poll intervals the provisioning document set, the first `n` of them.
    pub fn poll_delays(&self, n: usize) -> Vec<Duration> {
        let Some(e) = &self.enrolled else {
            return Vec::new();
        };
        let p = e.account.poll;
        let minutes = |m: u32| Duration::from_secs(u64::from(m) * 60);
        let forever = p.remaining_count == 0;
        std::iter::repeat_n(minutes(p.first_interval), p.first_count as usize)
            .chain(std::iter::repeat_n(
                minutes(p.second_interval),
                p.second_count as usize,
            ))
            .chain(std::iter::repeat_n(
                minutes(p.remaining_interval),
                if forever {
                    usize::MAX
                } else {
                    p.remaining_count as usize
                },
            ))
            .take(n)
            .collect()
    }

    /// Runs `sessions` sessions on the poll schedule, with time sped up by `speedup` (a
    /// 3-minute interval at 36,000× is 5 ms).
    pub async fn run_poll_schedule(
        &mut self,
        sessions: usize,
        speedup: f64,
    ) -> anyhow::Result<Vec<SessionReport>> {
        let mut reports = Vec::new();
        for delay in self.poll_delays(sessions) {
            tokio::time::sleep(delay.div_f64(speedup.max(1.0))).await;
            reports.push(self.sync().await?);
        }
        Ok(reports)
    }

    fn status(
        reply: &mut Vec<SyncCommand>,
        msg_ref: &str,
        cmd_ref: &str,
        cmd: &str,
        code: u16,
        target: Option<&str>,
    ) {
        reply.push(SyncCommand::Status(Status {
            cmd_id: (reply.len() + 1).to_string(),
            msg_ref: msg_ref.to_owned(),
            cmd_ref: cmd_ref.to_owned(),
            cmd: cmd.to_owned(),
            code: code.to_string(),
            chal: None,
            items: target
                .map(|t| {
                    vec![Item {
                        target: Some(t.to_owned()),
                        ..Item::default()
                    }]
                })
                .unwrap_or_default(),
        }));
    }

    /// Runs one server command against the tree, appending its Status (and Results);
    /// returns the command's status code.
    fn execute(
        &mut self,
        command: &SyncCommand,
        msg_ref: &str,
        reply: &mut Vec<SyncCommand>,
    ) -> u16 {
        let cmd_id = command.cmd_id().unwrap_or_default().to_owned();
        match command {
            SyncCommand::Operation { op, items, .. } => {
                let codes: Vec<(Option<String>, u16)> = items
                    .iter()
                    .map(|item| (item.target.clone(), self.apply(*op, item)))
                    .collect();
                if *op == Operation::Get {
                    let found: Vec<Item> = items
                        .iter()
                        .filter_map(|i| {
                            let uri = i.target.clone()?;
                            let data = self.tree.get(&uri)?.clone();
                            Some(Item {
                                source: Some(uri),
                                format: Some("chr".into()),
                                data: Some(data),
                                ..Item::default()
                            })
                        })
                        .collect();
                    // One Status when every node answered alike, else one per node.
                    if codes.iter().all(|(_, c)| *c == codes[0].1) {
                        Self::status(reply, msg_ref, &cmd_id, op.name(), codes[0].1, None);
                    } else {
                        for (target, code) in &codes {
                            Self::status(
                                reply,
                                msg_ref,
                                &cmd_id,
                                op.name(),
                                *code,
                                target.as_deref(),
                            );
                        }
                    }
                    if !found.is_empty() {
                        reply.push(SyncCommand::Results {
                            cmd_id: (reply.len() + 1).to_string(),
                            msg_ref: msg_ref.to_owned(),
                            cmd_ref: cmd_id.clone(),
                            items: found,
                        });
                    }
                    return if codes.iter().any(|(_, c)| *c == 200) {
                        200
                    } else {
                        404
                    };
                }
                let code = codes
                    .iter()
                    .map(|(_, c)| *c)
                    .find(|c| !(200..300).contains(c))
                    .unwrap_or(codes.first().map_or(200, |(_, c)| *c));
                Self::status(reply, msg_ref, &cmd_id, op.name(), code, None);
                code
            }
            SyncCommand::Atomic { commands, .. } => {
                let saved = self.tree.clone();
                let mut inner = Vec::new();
                let codes: Vec<u16> = commands
                    .iter()
                    .map(|c| self.execute(c, msg_ref, &mut inner))
                    .collect();
                let ok = codes.iter().all(|c| (200..300).contains(c));
                if !ok {
                    self.tree = saved;
                }
                Self::status(
                    reply,
                    msg_ref,
                    &cmd_id,
                    "Atomic",
                    if ok { 200 } else { 507 },
                    None,
                );
                for (c, code) in commands.iter().zip(codes) {
                    let shown = if ok || !(200..300).contains(&code) {
                        code
                    } else {
                        216
                    };
                    Self::status(
                        reply,
                        msg_ref,
                        c.cmd_id().unwrap_or_default(),
                        c.name(),
                        shown,
                        None,
                    );
                }
                if ok { 200 } else { 507 }
            }
            other => {
                Self::status(reply, msg_ref, &cmd_id, other.name(), 406, None);
                406
            }
        }
    }

    fn apply(&mut self, op: Operation, item: &Item) -> u16 {
        let Some(uri) = item.target.clone() else {
            return 400;
        };
        match op {
            Operation::Get => {
                if self.tree.contains_key(&uri) {
                    200
                } else {
                    404
                }
            }
            Operation::Add => match self.tree.entry(uri) {
                std::collections::btree_map::Entry::Occupied(_) => 418,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(item.data.clone().unwrap_or_default());
                    200
                }
            },
            Operation::Replace => {
                self.tree.insert(uri, item.data.clone().unwrap_or_default());
                200
            }
            Operation::Delete => {
                let prefix = format!("{uri}/");
                let before = self.tree.len();
                self.tree
                    .retain(|k, _| *k != uri && !k.starts_with(&prefix));
                if self.tree.len() < before { 200 } else { 404 }
            }
            Operation::Exec => {
                self.executed.push(uri.clone());
                match uri.as_str() {
                    "./Device/Vendor/MSFT/Reboot/RebootNow"
                    | "./Device/Vendor/MSFT/RemoteWipe/doWipe" => 200,
                    // Microsoft documents RemoteLock for Windows 10 Mobile only; desktops
                    // refuse it.
                    "./Device/Vendor/MSFT/RemoteLock/Lock" => 405,
                    _ => 404,
                }
            }
        }
    }
}

/// The status an answer gives our header.
pub fn header_status(message: &SyncMessage) -> Option<&Status> {
    message.body.iter().find_map(|c| match c {
        SyncCommand::Status(s) if s.cmd_ref == "0" => Some(s),
        _ => None,
    })
}

/// A challenge's nonce, if the answer carries one.
pub fn challenge_nonce(message: &SyncMessage) -> Option<String> {
    header_status(message)
        .and_then(|s| s.chal.as_ref())
        .and_then(|c: &Chal| c.next_nonce.clone())
}

/// Whether a received error is the SOAP fault `code`.
pub fn is_fault(error: &anyhow::Error, code: soap::FaultCode) -> bool {
    error
        .downcast_ref::<SoapError>()
        .and_then(SoapError::fault_code)
        == Some(code)
}

/// Base64 of `bytes`, for tests that build messages by hand.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
