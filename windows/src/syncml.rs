//! OMA-DM messages (SyncML 1.2 as MS-MDM uses it), in both directions.
//!
//! One model serves the device's messages (alerts, `Replace` of DevInfo, `Status`, `Results`)
//! and the server's (statuses and management commands), so that the server and the laptop
//! simulator share the parser and the writer.
//!
//! Inside `SyncML` the elements are matched by local name: writers disagree about namespaces
//! on inner elements (Windows puts `Format`/`Type` into `syncml:metinf`, other tools reset the
//! default namespace on `Meta`), but the root must be `{SYNCML:SYNCML1.2}SyncML`.

use crate::write::XmlWriter;
use crate::xml::{self, Element, Limits, Node, XmlError};
use flotte_profiles::windows::{CommandBody, SyncMlCommand};

/// The SyncML 1.2 namespace of the root element.
pub const NS_SYNCML: &str = "SYNCML:SYNCML1.2";
/// The namespace of `Meta` children.
pub const NS_METINF: &str = "syncml:metinf";
/// `Cred`/`Chal` type of MD5 digest authentication.
pub const AUTH_MD5: &str = "syncml:auth-md5";
/// `Cred`/`Chal` type of basic authentication.
pub const AUTH_BASIC: &str = "syncml:auth-basic";

/// Alert 1200: a session the server asked for (push).
pub const ALERT_SERVER_INITIATED: &str = "1200";
/// Alert 1201: a session the client started (poll).
pub const ALERT_CLIENT_INITIATED: &str = "1201";
/// Alert 1224: a device event, here the login status.
pub const ALERT_DEVICE: &str = "1224";
/// Alert 1226: a generic alert, among others the user's unenrolment.
pub const ALERT_GENERIC: &str = "1226";
/// Meta type of the 1226 alert that says the user removed the enrolment.
pub const UNENROLLMENT_TYPE: &str = "com.microsoft:mdm.unenrollment.userrequest";
/// Meta type of the 1224 alert carrying the login status.
pub const LOGIN_STATUS_TYPE: &str = "com.microsoft/MDM/LoginStatus";

/// Why a SyncML message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncMlError {
    /// The bytes are not acceptable XML.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// Well-formed XML that is not a usable SyncML message.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(what: impl Into<String>) -> SyncMlError {
    SyncMlError::Invalid(what.into())
}

/// `Cred`: what the sender offers as proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cred {
    /// `Meta/Type`, e.g. [`AUTH_MD5`].
    pub auth_type: String,
    /// `Meta/Format`, e.g. `b64`.
    pub format: Option<String>,
    /// The credential itself.
    pub data: String,
}

/// `Chal`: a request for credentials, with the nonce to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chal {
    /// `Meta/Type`.
    pub auth_type: String,
    /// `Meta/Format`.
    pub format: Option<String>,
    /// `Meta/NextNonce`, base64.
    pub next_nonce: Option<String>,
}

impl Chal {
    /// An MD5 challenge with `next_nonce` (base64).
    pub fn md5(next_nonce: impl Into<String>) -> Self {
        Self {
            auth_type: AUTH_MD5.into(),
            format: Some("b64".into()),
            next_nonce: Some(next_nonce.into()),
        }
    }
}

/// The message header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncHeader {
    /// `VerDTD`, 1.2.
    pub ver_dtd: String,
    /// `VerProto`, DM/1.2.
    pub ver_proto: String,
    /// `SessionID`: opaque (decimal, or hex on newer clients).
    pub session_id: String,
    /// `MsgID`, counting from 1 within a session.
    pub msg_id: u32,
    /// `Target/LocURI`.
    pub target: String,
    /// `Source/LocURI`: for a device, its DeviceID (a claim until authenticated).
    pub source: String,
    /// `Source/LocName`: the digest user name, when the device sends credentials.
    pub source_name: Option<String>,
    /// `Cred`.
    pub cred: Option<Cred>,
}

/// One `Item`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    /// `Target/LocURI`.
    pub target: Option<String>,
    /// `Source/LocURI`.
    pub source: Option<String>,
    /// `Meta/Format`.
    pub format: Option<String>,
    /// `Meta/Type`.
    pub mime_type: Option<String>,
    /// `Data`.
    pub data: Option<String>,
}

impl Item {
    /// The node this item is about: the source for results and reports, else the target.
    pub fn uri(&self) -> Option<&str> {
        self.source.as_deref().or(self.target.as_deref())
    }
}

/// A `Status`: the outcome of one command (or of the header, `CmdRef` 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This status's own `CmdID`.
    pub cmd_id: String,
    /// `MsgRef`: the message that carried the command.
    pub msg_ref: String,
    /// `CmdRef`: the command's `CmdID` (0 for the header).
    pub cmd_ref: String,
    /// `Cmd`: the command's element name (`SyncHdr`, `Get`, …).
    pub cmd: String,
    /// `Data`: the status code.
    pub code: String,
    /// `Chal`, on a header status that asks for (new) credentials.
    pub chal: Option<Chal>,
    /// Items with detail, when the device sends them.
    pub items: Vec<Item>,
}

impl Status {
    /// The code as a number, if it is one.
    pub fn code_number(&self) -> Option<u16> {
        self.code.trim().parse().ok()
    }
}

/// The item-carrying operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `Add`.
    Add,
    /// `Replace`.
    Replace,
    /// `Get`.
    Get,
    /// `Exec`.
    Exec,
    /// `Delete`.
    Delete,
}

impl Operation {
    /// The element name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Add => "Add",
            Self::Replace => "Replace",
            Self::Get => "Get",
            Self::Exec => "Exec",
            Self::Delete => "Delete",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "Add" => Self::Add,
            "Replace" => Self::Replace,
            "Get" => Self::Get,
            "Exec" => Self::Exec,
            "Delete" => Self::Delete,
            _ => return None,
        })
    }
}

/// A command in a `SyncBody`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncCommand {
    /// `Alert` with its code (1201, 1224, 1226 …).
    Alert {
        /// `CmdID`.
        cmd_id: String,
        /// `Data`: the alert code.
        code: String,
        /// Items.
        items: Vec<Item>,
    },
    /// `Status`.
    Status(Status),
    /// `Results` of a `Get`.
    Results {
        /// `CmdID`.
        cmd_id: String,
        /// `MsgRef`.
        msg_ref: String,
        /// `CmdRef`: the `Get` answered.
        cmd_ref: String,
        /// One item per node read.
        items: Vec<Item>,
    },
    /// `Add`, `Replace`, `Get`, `Exec` or `Delete`.
    Operation {
        /// Which.
        op: Operation,
        /// `CmdID`.
        cmd_id: String,
        /// Items.
        items: Vec<Item>,
    },
    /// `Atomic`: all or nothing.
    Atomic {
        /// `CmdID`.
        cmd_id: String,
        /// The commands inside.
        commands: Vec<SyncCommand>,
    },
    /// An element this model does not know (`Sequence`, `Map`, …), kept so that it can get
    /// a status.
    Other {
        /// The element name.
        name: String,
        /// Its `CmdID`, if it has one.
        cmd_id: Option<String>,
    },
}

impl SyncCommand {
    /// The element name, as a `Status` names it in `Cmd`.
    pub fn name(&self) -> &str {
        match self {
            Self::Alert { .. } => "Alert",
            Self::Status(_) => "Status",
            Self::Results { .. } => "Results",
            Self::Operation { op, .. } => op.name(),
            Self::Atomic { .. } => "Atomic",
            Self::Other { name, .. } => name,
        }
    }

    /// The `CmdID`.
    pub fn cmd_id(&self) -> Option<&str> {
        match self {
            Self::Alert { cmd_id, .. }
            | Self::Results { cmd_id, .. }
            | Self::Operation { cmd_id, .. }
            | Self::Atomic { cmd_id, .. } => Some(cmd_id),
            Self::Status(s) => Some(&s.cmd_id),
            Self::Other { cmd_id, .. } => cmd_id.as_deref(),
        }
    }
}

impl From<&SyncMlCommand> for SyncCommand {
    fn from(command: &SyncMlCommand) -> Self {
        let cmd_id = command.cmd_id().as_str().to_owned();
        let items = |items: &[flotte_profiles::windows::Item]| {
            items
                .iter()
                .map(|i| Item {
                    target: Some(i.target.clone()),
                    source: None,
                    format: i.format.map(|f| f.as_str().to_owned()),
                    mime_type: i.mime_type.clone(),
                    data: i.data.clone(),
                })
                .collect()
        };
        let op = |op, list: &[flotte_profiles::windows::Item]| Self::Operation {
            op,
            cmd_id: cmd_id.clone(),
            items: items(list),
        };
        match command.body() {
            CommandBody::Add(list) => op(Operation::Add, list),
            CommandBody::Replace(list) => op(Operation::Replace, list),
            CommandBody::Delete(list) => op(Operation::Delete, list),
            CommandBody::Exec(list) => op(Operation::Exec, list),
            CommandBody::Get(list) => op(Operation::Get, list),
            CommandBody::Atomic(inner) => Self::Atomic {
                cmd_id: cmd_id.clone(),
                commands: inner.iter().map(Self::from).collect(),
            },
        }
    }
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMessage {
    /// `SyncHdr`.
    pub header: SyncHeader,
    /// The commands of `SyncBody`, in order.
    pub body: Vec<SyncCommand>,
    /// Whether `Final` closes the package.
    pub is_final: bool,
}

fn text_of(e: &Element, name: &str) -> Option<String> {
    e.child_local(name).map(Element::trimmed_text)
}

fn loc_uri(e: &Element, name: &str) -> Option<String> {
    e.child_local(name)
        .and_then(|c| c.child_local("LocURI"))
        .map(Element::trimmed_text)
}

fn meta(e: &Element, name: &str) -> Option<String> {
    e.child_local("Meta")
        .and_then(|m| m.child_local(name))
        .map(Element::trimmed_text)
        .filter(|t| !t.is_empty())
}

/// `Data` as text; an element child (XML data written unescaped) is serialised back.
fn data_of(e: &Element) -> Option<String> {
    let data = e.child_local("Data")?;
    if data.children().next().is_none() {
        return Some(data.text());
    }
    let mut w = XmlWriter::new();
    for node in &data.nodes {
        match node {
            Node::Text(t) => w.text(t),
            Node::Element(child) => write_element(&mut w, child, data.namespace.as_deref()),
        }
    }
    Some(w.finish())
}

fn write_element(w: &mut XmlWriter, e: &Element, parent_ns: Option<&str>) {
    let mut attributes: Vec<(&str, &str)> = Vec::new();
    if e.namespace.as_deref() != parent_ns {
        attributes.push(("xmlns", e.namespace.as_deref().unwrap_or("")));
    }
    for a in e.attributes.iter().filter(|a| a.namespace.is_none()) {
        attributes.push((&a.name, &a.value));
    }
    w.start(&e.name, &attributes);
    for node in &e.nodes {
        match node {
            Node::Text(t) => w.text(t),
            Node::Element(child) => write_element(w, child, e.namespace.as_deref()),
        }
    }
    w.end(&e.name);
}

fn items_of(e: &Element) -> Vec<Item> {
    e.children()
        .filter(|c| c.name == "Item")
        .map(|item| Item {
            target: loc_uri(item, "Target"),
            source: loc_uri(item, "Source"),
            format: meta(item, "Format"),
            mime_type: meta(item, "Type"),
            data: data_of(item),
        })
        .collect()
}

fn required(e: &Element, name: &str, context: &str) -> Result<String, SyncMlError> {
    text_of(e, name)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid(format!("{context} has no {name}")))
}

fn command_of(e: &Element, depth: usize) -> Result<SyncCommand, SyncMlError> {
    let cmd_id = || required(e, "CmdID", &e.name);
    Ok(match e.name.as_str() {
        "Alert" => SyncCommand::Alert {
            cmd_id: cmd_id()?,
            code: required(e, "Data", "Alert")?,
            items: items_of(e),
        },
        "Status" => SyncCommand::Status(Status {
            cmd_id: cmd_id()?,
            msg_ref: text_of(e, "MsgRef").unwrap_or_default(),
            cmd_ref: required(e, "CmdRef", "Status")?,
            cmd: text_of(e, "Cmd").unwrap_or_default(),
            code: required(e, "Data", "Status")?,
            chal: e.child_local("Chal").map(|c| Chal {
                auth_type: meta(c, "Type").unwrap_or_default(),
                format: meta(c, "Format"),
                next_nonce: meta(c, "NextNonce"),
            }),
            items: items_of(e),
        }),
        "Results" => SyncCommand::Results {
            cmd_id: cmd_id()?,
            msg_ref: text_of(e, "MsgRef").unwrap_or_default(),
            cmd_ref: required(e, "CmdRef", "Results")?,
            items: items_of(e),
        },
        "Atomic" if depth == 0 => SyncCommand::Atomic {
            cmd_id: cmd_id()?,
            commands: e
                .children()
                .filter(|c| c.name != "CmdID" && c.name != "Meta")
                .map(|c| command_of(c, depth + 1))
                .collect::<Result<_, _>>()?,
        },
        name => match Operation::from_name(name) {
            Some(op) => SyncCommand::Operation {
                op,
                cmd_id: cmd_id()?,
                items: items_of(e),
            },
            None => SyncCommand::Other {
                name: name.to_owned(),
                cmd_id: text_of(e, "CmdID"),
            },
        },
    })
}

/// Reads a SyncML message within [`Limits::SYNCML`].
pub fn parse(input: &[u8]) -> Result<SyncMessage, SyncMlError> {
    let root = xml::parse(input, &Limits::SYNCML)?;
    let in_syncml_ns = root
        .namespace
        .as_deref()
        .is_some_and(|ns| ns.eq_ignore_ascii_case(NS_SYNCML));
    if root.name != "SyncML" || !in_syncml_ns {
        return Err(invalid("the root element is not {SYNCML:SYNCML1.2}SyncML"));
    }
    let hdr = root
        .child_local("SyncHdr")
        .ok_or_else(|| invalid("the message has no SyncHdr"))?;
    let msg_id = required(hdr, "MsgID", "SyncHdr")?;
    let header = SyncHeader {
        ver_dtd: text_of(hdr, "VerDTD").unwrap_or_default(),
        ver_proto: text_of(hdr, "VerProto").unwrap_or_default(),
        session_id: required(hdr, "SessionID", "SyncHdr")?,
        msg_id: msg_id
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| invalid(format!("MsgID {msg_id:?} is not a positive number")))?,
        target: loc_uri(hdr, "Target").unwrap_or_default(),
        source: loc_uri(hdr, "Source")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("SyncHdr has no Source LocURI"))?,
        source_name: hdr
            .child_local("Source")
            .and_then(|s| s.child_local("LocName"))
            .map(Element::trimmed_text)
            .filter(|n| !n.is_empty()),
        cred: hdr.child_local("Cred").map(|c| Cred {
            auth_type: meta(c, "Type").unwrap_or_default(),
            format: meta(c, "Format"),
            data: text_of(c, "Data").unwrap_or_default(),
        }),
    };
    let body = root
        .child_local("SyncBody")
        .ok_or_else(|| invalid("the message has no SyncBody"))?;
    let mut commands = Vec::new();
    let mut is_final = false;
    for child in body.children() {
        if child.name == "Final" {
            is_final = true;
        } else {
            commands.push(command_of(child, 0)?);
        }
    }
    Ok(SyncMessage {
        header,
        body: commands,
        is_final,
    })
}

impl SyncMessage {
    /// Renders the message with an XML declaration.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::with_declaration();
        w.start("SyncML", &[("xmlns", NS_SYNCML)]);
        w.start("SyncHdr", &[]);
        w.element("VerDTD", &[], &self.header.ver_dtd);
        w.element("VerProto", &[], &self.header.ver_proto);
        w.element("SessionID", &[], &self.header.session_id);
        w.element("MsgID", &[], &self.header.msg_id.to_string());
        w.start("Target", &[]);
        w.element("LocURI", &[], &self.header.target);
        w.end("Target");
        w.start("Source", &[]);
        w.element("LocURI", &[], &self.header.source);
        if let Some(name) = &self.header.source_name {
            w.element("LocName", &[], name);
        }
        w.end("Source");
        if let Some(cred) = &self.header.cred {
            w.start("Cred", &[]);
            write_meta(&mut w, cred.format.as_deref(), Some(&cred.auth_type), None);
            w.element("Data", &[], &cred.data);
            w.end("Cred");
        }
        w.end("SyncHdr");
        w.start("SyncBody", &[]);
        for command in &self.body {
            write_command(&mut w, command);
        }
        if self.is_final {
            w.empty("Final", &[]);
        }
        w.end("SyncBody");
        w.end("SyncML");
        w.finish()
    }
}

fn write_meta(w: &mut XmlWriter, format: Option<&str>, kind: Option<&str>, nonce: Option<&str>) {
    if format.is_none() && kind.is_none() && nonce.is_none() {
        return;
    }
    w.start("Meta", &[]);
    if let Some(format) = format {
        w.element("Format", &[("xmlns", NS_METINF)], format);
    }
    if let Some(kind) = kind {
        w.element("Type", &[("xmlns", NS_METINF)], kind);
    }
    if let Some(nonce) = nonce {
        w.element("NextNonce", &[("xmlns", NS_METINF)], nonce);
    }
    w.end("Meta");
}

fn write_items(w: &mut XmlWriter, items: &[Item]) {
    for item in items {
        w.start("Item", &[]);
        if let Some(target) = &item.target {
            w.start("Target", &[]);
            w.element("LocURI", &[], target);
            w.end("Target");
        }
        if let Some(source) = &item.source {
            w.start("Source", &[]);
            w.element("LocURI", &[], source);
            w.end("Source");
        }
        write_meta(w, item.format.as_deref(), item.mime_type.as_deref(), None);
        if let Some(data) = &item.data {
            w.element("Data", &[], data);
        }
        w.end("Item");
    }
}

fn write_command(w: &mut XmlWriter, command: &SyncCommand) {
    let name = command.name().to_owned();
    w.start(&name, &[]);
    if let Some(id) = command.cmd_id() {
        w.element("CmdID", &[], id);
    }
    match command {
        SyncCommand::Alert { code, items, .. } => {
            w.element("Data", &[], code);
            write_items(w, items);
        }
        SyncCommand::Status(s) => {
            w.element("MsgRef", &[], &s.msg_ref);
            w.element("CmdRef", &[], &s.cmd_ref);
            w.element("Cmd", &[], &s.cmd);
            if let Some(chal) = &s.chal {
                w.start("Chal", &[]);
                write_meta(
                    w,
                    chal.format.as_deref(),
                    Some(&chal.auth_type),
                    chal.next_nonce.as_deref(),
                );
                w.end("Chal");
            }
            w.element("Data", &[], &s.code);
            write_items(w, &s.items);
        }
        SyncCommand::Results {
            msg_ref,
            cmd_ref,
            items,
            ..
        } => {
            w.element("MsgRef", &[], msg_ref);
            w.element("CmdRef", &[], cmd_ref);
            write_items(w, items);
        }
        SyncCommand::Operation { items, .. } => write_items(w, items),
        SyncCommand::Atomic { commands, .. } => {
            for inner in commands {
                write_command(w, inner);
            }
        }
        SyncCommand::Other { .. } => {}
    }
    w.end(&name);
}

/// Renders a `Results` element on its own: what the server stores as a `Get`'s result.
pub fn render_results(results: &[&SyncCommand]) -> String {
    let mut w = XmlWriter::new();
    for r in results {
        write_command(&mut w, r);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotte_profiles::windows::{CmdId, reboot_now};

    const PACKAGE_1: &str = r#"<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto><SessionID>1A</SessionID><MsgID>1</MsgID><Target><LocURI>https://mdm.example/ManagementServer/MDM.svc</LocURI></Target><Source><LocURI>B5B9</LocURI><LocName>dev</LocName></Source><Cred><Meta><Format xmlns="syncml:metinf">b64</Format><Type xmlns="syncml:metinf">syncml:auth-md5</Type></Meta><Data>abc=</Data></Cred></SyncHdr><SyncBody><Alert><CmdID>2</CmdID><Data>1201</Data></Alert><Alert><CmdID>3</CmdID><Data>1226</Data><Item><Meta xmlns=""><Type>com.microsoft:mdm.unenrollment.userrequest</Type></Meta><Data>1</Data></Item></Alert><Replace><CmdID>4</CmdID><Item><Source><LocURI>./DevInfo/Mod</LocURI></Source><Data>XPS &amp; 13</Data></Item></Replace><Sequence><CmdID>5</CmdID></Sequence><Final/></SyncBody></SyncML>"#;

    #[test]
    fn a_client_package_parses_with_credentials_alerts_and_items() {
        let m = parse(PACKAGE_1.as_bytes()).unwrap();
        assert_eq!(m.header.session_id, "1A");
        assert_eq!(m.header.msg_id, 1);
        assert_eq!(m.header.source, "B5B9");
        assert_eq!(m.header.source_name.as_deref(), Some("dev"));
        let cred = m.header.cred.as_ref().unwrap();
        assert_eq!(
            (cred.auth_type.as_str(), cred.data.as_str()),
            (AUTH_MD5, "abc=")
        );
        assert!(m.is_final);
        assert_eq!(m.body.len(), 4);
        match &m.body[1] {
            SyncCommand::Alert { code, items, .. } => {
                assert_eq!(code, ALERT_GENERIC);
                assert_eq!(items[0].mime_type.as_deref(), Some(UNENROLLMENT_TYPE));
            }
            other => panic!("{other:?}"),
        }
        match &m.body[2] {
            SyncCommand::Operation { op, items, .. } => {
                assert_eq!(*op, Operation::Replace);
                assert_eq!(items[0].uri(), Some("./DevInfo/Mod"));
                assert_eq!(items[0].data.as_deref(), Some("XPS & 13"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.body[3].name(), "Sequence");
    }

    #[test]
    fn rendering_and_parsing_round_trip_including_profile_commands() {
        let reboot = reboot_now(CmdId::new("CMD-1").unwrap()).unwrap();
        let message = SyncMessage {
            header: SyncHeader {
                ver_dtd: "1.2".into(),
                ver_proto: "DM/1.2".into(),
                session_id: "7".into(),
                msg_id: 2,
                target: "DEV".into(),
                source: "https://mdm.example/ManagementServer/MDM.svc".into(),
                source_name: None,
                cred: None,
            },
            body: vec![
                SyncCommand::Status(Status {
                    cmd_id: "1".into(),
                    msg_ref: "2".into(),
                    cmd_ref: "0".into(),
                    cmd: "SyncHdr".into(),
                    code: "212".into(),
                    chal: Some(Chal::md5("bm9uY2U=")),
                    items: vec![],
                }),
                SyncCommand::from(&reboot),
            ],
            is_final: true,
        };
        let parsed = parse(message.to_xml().as_bytes()).unwrap();
        assert_eq!(parsed, message);
    }

    #[test]
    fn messages_without_identity_or_with_a_bad_msgid_are_refused() {
        let no_source = PACKAGE_1.replace("<LocURI>B5B9</LocURI>", "<LocURI></LocURI>");
        assert!(matches!(
            parse(no_source.as_bytes()),
            Err(SyncMlError::Invalid(_))
        ));
        let bad_msg = PACKAGE_1.replace("<MsgID>1</MsgID>", "<MsgID>one</MsgID>");
        assert!(matches!(
            parse(bad_msg.as_bytes()),
            Err(SyncMlError::Invalid(_))
        ));
        let zero = PACKAGE_1.replace("<MsgID>1</MsgID>", "<MsgID>0</MsgID>");
        assert!(parse(zero.as_bytes()).is_err());
        let other_ns = PACKAGE_1.replace("SYNCML:SYNCML1.2", "SYNCML:SYNCML1.1");
        assert!(parse(other_ns.as_bytes()).is_err());
    }
}
