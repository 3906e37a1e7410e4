//! The wap-provisioningdoc returned at enrolment: certificates, the OMA-DM account (w7
//! APPLICATION) and the DMClient poll schedule.

use crate::write::XmlWriter;
use crate::xml::{self, Element, Limits, XmlError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flotte_profiles::windows::Thumbprint;

/// Which `My` store gets the client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStore {
    /// `My/User`, for `EnrollmentType` `Full`.
    User,
    /// `My/System`, for device-wide enrolment.
    System,
}

impl CertStore {
    fn name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::System => "System",
        }
    }
}

/// One `APPAUTH` credential.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestCredential {
    /// `AAUTHNAME` (the device's digest user name; none for the server's credential).
    pub name: Option<String>,
    /// `AAUTHSECRET`.
    pub secret: String,
    /// `AAUTHDATA`: the base64 nonce for the first digest.
    pub nonce_b64: String,
}

impl std::fmt::Debug for DigestCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestCredential")
            .field("name", &self.name)
            .field("nonce_b64", &self.nonce_b64)
            .finish_non_exhaustive()
    }
}

/// DMClient `Poll`: when the device starts management sessions on its own. Intervals in
/// minutes; `remaining_count` 0 repeats the last interval forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    /// `IntervalForFirstSetOfRetries`.
    pub first_interval: u32,
    /// `NumberOfFirstRetries`.
    pub first_count: u32,
    /// `IntervalForSecondSetOfRetries`.
    pub second_interval: u32,
    /// `NumberOfSecondRetries`.
    pub second_count: u32,
    /// `IntervalForRemainingScheduledRetries`.
    pub remaining_interval: u32,
    /// `NumberOfRemainingScheduledRetries`.
    pub remaining_count: u32,
    /// `PollOnLogin`.
    pub poll_on_login: bool,
}

impl Default for PollSchedule {
    /// Quick follow-ups while a freshly enrolled laptop takes its configuration (every 3
    /// minutes for the first half hour, then every 15 minutes for two and a half hours), then
    /// hourly. Windows cannot be woken reliably (WNS push is not used), so the hourly poll is
    /// how soon a wipe or lock reaches a laptop; 1,000 laptops polling hourly are 0.3
    /// sessions a second.
    fn default() -> Self {
        Self {
            first_interval: 3,
            first_count: 10,
            second_interval: 15,
            second_count: 10,
            remaining_interval: 60,
            remaining_count: 0,
            poll_on_login: true,
        }
    }
}

/// Everything the document installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningDoc {
    /// Our root CA, into `Root/System`.
    pub root_ca_der: Vec<u8>,
    /// The issuing CA, into `CA/System`, so the client certificate's chain can be built.
    pub issuing_ca_der: Vec<u8>,
    /// The device's identity certificate.
    pub client_cert_der: Vec<u8>,
    /// Where the identity certificate goes.
    pub store: CertStore,
    /// `PROVIDER-ID`, which is also the DMClient provider node.
    pub provider_id: String,
    /// `NAME` shown in Settings.
    pub server_name: String,
    /// `ADDR`: the management endpoint.
    pub management_url: String,
    /// DMClient `EntDMID`: our id of the device.
    pub entdmid: String,
    /// The device's credential towards us (`APPSRV`).
    pub client_auth: DigestCredential,
    /// Our credential towards the device (`CLIENT`), which Windows requires to be present.
    pub server_auth: DigestCredential,
    /// When the device polls.
    pub poll: PollSchedule,
    /// The CN Windows looks for when choosing the TLS client certificate.
    pub client_cert_common_name: String,
}

/// RFC 2396 escaping for the `SSLCLIENTCERTSEARCHCRITERIA` value.
fn uri_escape(value: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn characteristic(w: &mut XmlWriter, kind: &str) {
    w.start("characteristic", &[("type", kind)]);
}

fn parm(w: &mut XmlWriter, name: &str, value: &str) {
    w.empty("parm", &[("name", name), ("value", value)]);
}

fn typed_parm(w: &mut XmlWriter, name: &str, value: &str, datatype: &str) {
    w.empty(
        "parm",
        &[("name", name), ("value", value), ("datatype", datatype)],
    );
}

fn certificate(w: &mut XmlWriter, der: &[u8]) {
    characteristic(w, Thumbprint::of_der(der).as_str());
    parm(w, "EncodedCertificate", &STANDARD.encode(der));
    w.end("characteristic");
}

fn app_auth(w: &mut XmlWriter, level: &str, credential: &DigestCredential) {
    characteristic(w, "APPAUTH");
    parm(w, "AAUTHLEVEL", level);
    parm(w, "AAUTHTYPE", "DIGEST");
    if let Some(name) = &credential.name {
        parm(w, "AAUTHNAME", name);
    }
    parm(w, "AAUTHSECRET", &credential.secret);
    parm(w, "AAUTHDATA", &credential.nonce_b64);
    w.end("characteristic");
}

impl ProvisioningDoc {
    /// Renders the document.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::with_declaration();
        w.start("wap-provisioningdoc", &[("version", "1.1")]);

        characteristic(&mut w, "CertificateStore");
        characteristic(&mut w, "Root");
        characteristic(&mut w, "System");
        certificate(&mut w, &self.root_ca_der);
        w.end("characteristic");
        w.end("characteristic");
        characteristic(&mut w, "CA");
        characteristic(&mut w, "System");
        certificate(&mut w, &self.issuing_ca_der);
        w.end("characteristic");
        w.end("characteristic");
        characteristic(&mut w, "My");
        characteristic(&mut w, self.store.name());
        certificate(&mut w, &self.client_cert_der);
        // Microsoft's sample: "must be present for XML syntax correctness".
        w.empty("characteristic", &[("type", "PrivateKeyContainer")]);
        w.end("characteristic");
        w.end("characteristic");
        w.end("characteristic");

        characteristic(&mut w, "APPLICATION");
        parm(&mut w, "APPID", "w7");
        parm(&mut w, "PROVIDER-ID", &self.provider_id);
        parm(&mut w, "NAME", &self.server_name);
        parm(&mut w, "ADDR", &self.management_url);
        parm(&mut w, "ROLE", "4294967295");
        w.empty("parm", &[("name", "BACKCOMPATRETRYDISABLED")]);
        parm(&mut w, "DEFAULTENCODING", "application/vnd.syncml.dm+xml");
        parm(
            &mut w,
            "SSLCLIENTCERTSEARCHCRITERIA",
            &format!(
                "Subject=CN%3D{}&Stores=My%5C{}",
                uri_escape(&self.client_cert_common_name),
                self.store.name()
            ),
        );
        app_auth(&mut w, "CLIENT", &self.server_auth);
        app_auth(&mut w, "APPSRV", &self.client_auth);
        w.end("characteristic");

        characteristic(&mut w, "DMClient");
        characteristic(&mut w, "Provider");
        characteristic(&mut w, &self.provider_id);
        typed_parm(&mut w, "EntDMID", &self.entdmid, "string");
        characteristic(&mut w, "Poll");
        let p = &self.poll;
        for (name, value) in [
            ("NumberOfFirstRetries", p.first_count),
            ("IntervalForFirstSetOfRetries", p.first_interval),
            ("NumberOfSecondRetries", p.second_count),
            ("IntervalForSecondSetOfRetries", p.second_interval),
            ("NumberOfRemainingScheduledRetries", p.remaining_count),
            ("IntervalForRemainingScheduledRetries", p.remaining_interval),
        ] {
            typed_parm(&mut w, name, &value.to_string(), "integer");
        }
        typed_parm(
            &mut w,
            "PollOnLogin",
            if p.poll_on_login { "true" } else { "false" },
            "boolean",
        );
        w.end("characteristic");
        w.end("characteristic");
        w.end("characteristic");
        w.end("characteristic");

        w.end("wap-provisioningdoc");
        w.finish()
    }
}

/// What a client reads back from a provisioning document (the laptop simulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedAccount {
    /// Certificates by store path (`Root/System`, `CA/System`, `My/User`, …) and thumbprint.
    pub certificates: Vec<(String, String, Vec<u8>)>,
    /// `ADDR`.
    pub management_url: String,
    /// `PROVIDER-ID`.
    pub provider_id: String,
    /// The `APPSRV` credential: what the device authenticates with.
    pub client_auth: DigestCredential,
    /// DMClient `EntDMID`.
    pub entdmid: Option<String>,
    /// The poll schedule.
    pub poll: PollSchedule,
}

/// Why a provisioning document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisioningError {
    /// Not acceptable XML.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// Missing or malformed parts.
    #[error("{0}")]
    Invalid(String),
}

fn characteristics(e: &Element) -> impl Iterator<Item = (&str, &Element)> {
    e.children()
        .filter(|c| c.name == "characteristic")
        .filter_map(|c| Some((c.attr("type")?, c)))
}

fn characteristic_of<'a>(e: &'a Element, kind: &str) -> Option<&'a Element> {
    characteristics(e).find(|(t, _)| *t == kind).map(|(_, c)| c)
}

fn parm_of(e: &Element, name: &str) -> Option<String> {
    e.children()
        .filter(|c| c.name == "parm")
        .find(|c| c.attr("name") == Some(name))
        .and_then(|c| c.attr("value").map(str::to_owned))
}

/// Reads a provisioning document as a device would.
pub fn parse(document: &str) -> Result<ProvisionedAccount, ProvisioningError> {
    let invalid = |what: &str| ProvisioningError::Invalid(what.to_owned());
    let root = xml::parse(document.as_bytes(), &Limits::SOAP)?;
    if root.name != "wap-provisioningdoc" {
        return Err(invalid("not a wap-provisioningdoc"));
    }
    let mut certificates = Vec::new();
    if let Some(stores) = characteristic_of(&root, "CertificateStore") {
        for (store, store_el) in characteristics(stores) {
            for (location, location_el) in characteristics(store_el) {
                for (thumbprint, cert_el) in characteristics(location_el) {
                    if let Some(b64) = parm_of(cert_el, "EncodedCertificate") {
                        let der = STANDARD
                            .decode(b64.as_bytes())
                            .map_err(|_| invalid("EncodedCertificate is not base64"))?;
                        certificates.push((
                            format!("{store}/{location}"),
                            thumbprint.to_owned(),
                            der,
                        ));
                    }
                }
            }
        }
    }
    let app = characteristics(&root)
        .find(|(t, c)| *t == "APPLICATION" && parm_of(c, "APPID").as_deref() == Some("w7"))
        .map(|(_, c)| c)
        .ok_or_else(|| invalid("no w7 APPLICATION"))?;
    let client_auth = characteristics(app)
        .filter(|(t, _)| *t == "APPAUTH")
        .map(|(_, c)| c)
        .find(|c| parm_of(c, "AAUTHLEVEL").as_deref() == Some("APPSRV"))
        .ok_or_else(|| invalid("no APPSRV credential"))?;
    let provider_id = parm_of(app, "PROVIDER-ID").ok_or_else(|| invalid("no PROVIDER-ID"))?;
    let provider = characteristic_of(&root, "DMClient")
        .and_then(|d| characteristic_of(d, "Provider"))
        .and_then(|p| characteristic_of(p, &provider_id));
    let poll_el = provider.and_then(|p| characteristic_of(p, "Poll"));
    let number = |name: &str, default: u32| {
        poll_el
            .and_then(|p| parm_of(p, name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let defaults = PollSchedule::default();
    Ok(ProvisionedAccount {
        certificates,
        management_url: parm_of(app, "ADDR").ok_or_else(|| invalid("no ADDR"))?,
        client_auth: DigestCredential {
            name: parm_of(client_auth, "AAUTHNAME"),
            secret: parm_of(client_auth, "AAUTHSECRET").unwrap_or_default(),
            nonce_b64: parm_of(client_auth, "AAUTHDATA").unwrap_or_default(),
        },
        entdmid: provider.and_then(|p| parm_of(p, "EntDMID")),
        poll: PollSchedule {
            first_interval: number("IntervalForFirstSetOfRetries", defaults.first_interval),
            first_count: number("NumberOfFirstRetries", defaults.first_count),
            second_interval: number("IntervalForSecondSetOfRetries", defaults.second_interval),
            second_count: number("NumberOfSecondRetries", defaults.second_count),
            remaining_interval: number(
                "IntervalForRemainingScheduledRetries",
                defaults.remaining_interval,
            ),
            remaining_count: number(
                "NumberOfRemainingScheduledRetries",
                defaults.remaining_count,
            ),
            poll_on_login: poll_el
                .and_then(|p| parm_of(p, "PollOnLogin"))
                .is_none_or(|v| v == "true"),
        },
        provider_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> ProvisioningDoc {
        ProvisioningDoc {
            root_ca_der: b"root".to_vec(),
            issuing_ca_der: b"issuing".to_vec(),
            client_cert_der: b"client".to_vec(),
            store: CertStore::System,
            provider_id: "Flotte".into(),
            server_name: "Flotte <Schulträger>".into(),
            management_url: "https://mdm.example/ManagementServer/MDM.svc".into(),
            entdmid: "dev-1".into(),
            client_auth: DigestCredential {
                name: Some("dev-1".into()),
                secret: "s&cret".into(),
                nonce_b64: "bm9uY2U=".into(),
            },
            server_auth: DigestCredential {
                name: None,
                secret: "server".into(),
                nonce_b64: "c2VydmVy".into(),
            },
            poll: PollSchedule::default(),
            client_cert_common_name: "B5B9 54".into(),
        }
    }

    #[test]
    fn the_document_reads_back_as_a_device_would_see_it() {
        let doc = doc();
        let xml = doc.to_xml();
        assert!(
            xml.contains("Subject=CN%3DB5B9%2054&amp;Stores=My%5CSystem"),
            "{xml}"
        );
        let account = parse(&xml).unwrap();
        assert_eq!(account.management_url, doc.management_url);
        assert_eq!(account.provider_id, "Flotte");
        assert_eq!(account.client_auth, doc.client_auth);
        assert_eq!(account.entdmid.as_deref(), Some("dev-1"));
        assert_eq!(account.poll, doc.poll);
        let stores: Vec<&str> = account
            .certificates
            .iter()
            .map(|(s, _, _)| s.as_str())
            .collect();
        assert_eq!(stores, ["Root/System", "CA/System", "My/System"]);
        let (_, thumb, der) = &account.certificates[2];
        assert_eq!(der, b"client");
        assert_eq!(thumb, Thumbprint::of_der(b"client").as_str());
    }
}
