//! SyncML command elements and their XML rendering.

use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use serde::{Deserialize, Serialize};

use super::CspError;

/// A `CmdID`. Windows accepts any non-empty string, so the server can use its own queue ids
/// (for example UUIDs) and correlate the device's `Status`/`CmdRef` without session state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CmdId(String);

impl CmdId {
    /// Checks and wraps a command id.
    pub fn new(id: impl Into<String>) -> Result<Self, CspError> {
        let id = id.into();
        if id.is_empty() || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(CspError::InvalidCmdId(id));
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CmdId {
    type Error = CspError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<CmdId> for String {
    fn from(value: CmdId) -> Self {
        value.0
    }
}

impl std::fmt::Display for CmdId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hands out command ids for builders that emit several commands.
pub trait CmdIdSource {
    /// The next unused id.
    fn next_cmd_id(&mut self) -> CmdId;
}

impl<F: FnMut() -> CmdId> CmdIdSource for F {
    fn next_cmd_id(&mut self) -> CmdId {
        self()
    }
}

/// Ids `<prefix>1`, `<prefix>2`, …: enough for tests and for servers that number commands
/// per session.
#[derive(Debug, Clone)]
pub struct SequentialCmdIds {
    prefix: String,
    next: u64,
}

impl SequentialCmdIds {
    /// Starts at `<prefix><first>`. The prefix must be free of whitespace and control
    /// characters, as every [`CmdId`] is.
    pub fn new(prefix: impl Into<String>, first: u64) -> Result<Self, CspError> {
        let prefix = prefix.into();
        CmdId::new(format!("{prefix}{first}"))?;
        Ok(Self {
            prefix,
            next: first,
        })
    }
}

impl CmdIdSource for SequentialCmdIds {
    fn next_cmd_id(&mut self) -> CmdId {
        let id = CmdId(format!("{}{}", self.prefix, self.next));
        self.next += 1;
        id
    }
}

/// `<Meta><Format xmlns="syncml:metinf">` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Text.
    Chr,
    /// Integer.
    Int,
    /// Boolean (`true`/`false`).
    Bool,
    /// Base64 text.
    B64,
    /// Binary.
    Bin,
    /// XML.
    Xml,
    /// Interior node.
    Node,
    /// Null.
    Null,
}

impl Format {
    /// The value as written in `<Format>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chr => "chr",
            Self::Int => "int",
            Self::Bool => "bool",
            Self::B64 => "b64",
            Self::Bin => "bin",
            Self::Xml => "xml",
            Self::Node => "node",
            Self::Null => "null",
        }
    }
}

/// One `<Item>`: a target node, optional meta information and data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// `<Target><LocURI>`, for example `./Device/Vendor/MSFT/Reboot/RebootNow`.
    pub target: String,
    /// `<Meta><Format>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// `<Meta><Type>`, for example `text/plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// `<Data>` (unescaped; the writer escapes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Item {
    /// An item that only names a node (for `Get`, `Exec`, `Delete`).
    pub fn target(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            format: None,
            mime_type: None,
            data: None,
        }
    }

    /// An item with a value.
    pub fn with_data(target: impl Into<String>, format: Format, data: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            format: Some(format),
            mime_type: None,
            data: Some(data.into()),
        }
    }
}

/// The operation of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "items", rename_all = "snake_case")]
pub enum CommandBody {
    /// `<Add>`: create nodes (fails with 418 if they exist).
    Add(Vec<Item>),
    /// `<Replace>`: set nodes (Windows adds missing Policy CSP nodes implicitly).
    Replace(Vec<Item>),
    /// `<Delete>`.
    Delete(Vec<Item>),
    /// `<Exec>`: run an action node.
    Exec(Vec<Item>),
    /// `<Get>`: read nodes; the device answers with `<Results>`.
    Get(Vec<Item>),
    /// `<Atomic>`: all inner commands succeed or all are rolled back.
    Atomic(Vec<SyncMlCommand>),
}

/// A SyncML command with its caller-supplied `CmdID`.
///
/// The fields are private so that every value, including one read back from JSON, has passed
/// [`SyncMlCommand::new`]'s checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCommand")]
pub struct SyncMlCommand {
    cmd_id: CmdId,
    body: CommandBody,
}

#[derive(Deserialize)]
struct RawCommand {
    cmd_id: CmdId,
    body: CommandBody,
}

impl TryFrom<RawCommand> for SyncMlCommand {
    type Error = CspError;

    fn try_from(raw: RawCommand) -> Result<Self, Self::Error> {
        Self::new(raw.cmd_id, raw.body)
    }
}

impl SyncMlCommand {
    /// Builds a command, checking that every text can be written as XML 1.0 and that no
    /// `LocURI` starts with `/` (the OMA-DM client rejects absolute paths).
    pub fn new(cmd_id: CmdId, body: CommandBody) -> Result<Self, CspError> {
        let command = Self { cmd_id, body };
        command.validate()?;
        Ok(command)
    }

    /// The `CmdID`.
    pub fn cmd_id(&self) -> &CmdId {
        &self.cmd_id
    }

    /// What the command does.
    pub fn body(&self) -> &CommandBody {
        &self.body
    }

    fn validate(&self) -> Result<(), CspError> {
        match &self.body {
            CommandBody::Atomic(commands) => commands.iter().try_for_each(Self::validate),
            CommandBody::Add(items)
            | CommandBody::Replace(items)
            | CommandBody::Delete(items)
            | CommandBody::Exec(items)
            | CommandBody::Get(items) => {
                if items.is_empty() {
                    return Err(CspError::InvalidField {
                        field: "Item",
                        reason: "a command needs at least one item".to_owned(),
                    });
                }
                for item in items {
                    check_xml_text("LocURI", &item.target)?;
                    if item.target.is_empty() || item.target.starts_with('/') {
                        return Err(CspError::InvalidField {
                            field: "LocURI",
                            reason: format!(
                                "{:?} must be a relative URI such as ./Device/…",
                                item.target
                            ),
                        });
                    }
                    if let Some(mime_type) = &item.mime_type {
                        check_xml_text("Type", mime_type)?;
                    }
                    if let Some(data) = &item.data {
                        check_xml_text("Data", data)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// The same command with new `CmdID`s, handed out in document order (an `Atomic`'s id
    /// before those of its commands), as the builders do. Renderings are stored with
    /// placeholder ids; the server renumbers them with its queue ids when it sends them.
    #[must_use]
    pub fn renumbered(&self, ids: &mut impl CmdIdSource) -> Self {
        let cmd_id = ids.next_cmd_id();
        let body = match &self.body {
            CommandBody::Atomic(commands) => CommandBody::Atomic(
                commands
                    .iter()
                    .map(|command| command.renumbered(&mut *ids))
                    .collect(),
            ),
            other => other.clone(),
        };
        // Only the ids change, and every `CmdId` is valid by construction, so the checks of
        // `new` still hold.
        Self { cmd_id, body }
    }

    /// The element name (`Add`, `Replace`, …).
    pub fn element_name(&self) -> &'static str {
        match self.body {
            CommandBody::Add(_) => "Add",
            CommandBody::Replace(_) => "Replace",
            CommandBody::Delete(_) => "Delete",
            CommandBody::Exec(_) => "Exec",
            CommandBody::Get(_) => "Get",
            CommandBody::Atomic(_) => "Atomic",
        }
    }

    /// Every `LocURI` this command touches, including those inside an `Atomic`.
    pub fn target_uris(&self) -> Vec<&str> {
        match &self.body {
            CommandBody::Atomic(commands) => commands.iter().flat_map(Self::target_uris).collect(),
            CommandBody::Add(items)
            | CommandBody::Replace(items)
            | CommandBody::Delete(items)
            | CommandBody::Exec(items)
            | CommandBody::Get(items) => items.iter().map(|item| item.target.as_str()).collect(),
        }
    }

    /// Renders the command element.
    pub fn to_xml(&self) -> String {
        let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
        self.write(&mut writer);
        into_string(writer)
    }

    fn write(&self, writer: &mut Writer<Vec<u8>>) {
        let name = self.element_name();
        start(writer, BytesStart::new(name));
        text_element(writer, "CmdID", self.cmd_id.as_str());
        match &self.body {
            CommandBody::Atomic(commands) => {
                for command in commands {
                    command.write(writer);
                }
            }
            CommandBody::Add(items)
            | CommandBody::Replace(items)
            | CommandBody::Delete(items)
            | CommandBody::Exec(items)
            | CommandBody::Get(items) => {
                for item in items {
                    write_item(writer, item);
                }
            }
        }
        end(writer, name);
    }
}

/// Renders several commands one after another, as they appear inside `<SyncBody>`.
pub fn render_commands(commands: &[SyncMlCommand]) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    for command in commands {
        command.write(&mut writer);
    }
    into_string(writer)
}

fn write_item(writer: &mut Writer<Vec<u8>>, item: &Item) {
    start(writer, BytesStart::new("Item"));
    start(writer, BytesStart::new("Target"));
    text_element(writer, "LocURI", &item.target);
    end(writer, "Target");
    if item.format.is_some() || item.mime_type.is_some() {
        start(writer, BytesStart::new("Meta"));
        if let Some(format) = item.format {
            metinf_element(writer, "Format", format.as_str());
        }
        if let Some(mime_type) = &item.mime_type {
            metinf_element(writer, "Type", mime_type);
        }
        end(writer, "Meta");
    }
    if let Some(data) = &item.data {
        text_element(writer, "Data", data);
    }
    end(writer, "Item");
}

fn metinf_element(writer: &mut Writer<Vec<u8>>, name: &str, value: &str) {
    let mut element = BytesStart::new(name);
    element.push_attribute(("xmlns", "syncml:metinf"));
    start(writer, element);
    write_event(writer, Event::Text(BytesText::new(value)));
    end(writer, name);
}

// The writer targets a `Vec<u8>`, whose `io::Write` never fails, so the results below carry
// no information; they are unwrapped in one place with that reason.
fn write_event(writer: &mut Writer<Vec<u8>>, event: Event<'_>) {
    writer
        .write_event(event)
        .expect("writing XML into memory cannot fail");
}

pub(crate) fn start(writer: &mut Writer<Vec<u8>>, element: BytesStart<'_>) {
    write_event(writer, Event::Start(element));
}

pub(crate) fn end(writer: &mut Writer<Vec<u8>>, name: &str) {
    write_event(writer, Event::End(BytesEnd::new(name)));
}

pub(crate) fn text_element(writer: &mut Writer<Vec<u8>>, name: &str, value: &str) {
    start(writer, BytesStart::new(name));
    write_event(writer, Event::Text(BytesText::new(value)));
    end(writer, name);
}

pub(crate) fn into_string(writer: Writer<Vec<u8>>) -> String {
    // Only `&str` input and ASCII markup were written, so the buffer is UTF-8.
    String::from_utf8(writer.into_inner()).expect("XML writer output is UTF-8")
}

/// XML 1.0 cannot carry C0 control characters other than tab, line feed and carriage return,
/// not even as character references, so such text is refused instead of producing a document
/// the device cannot parse.
pub(crate) fn check_xml_text(field: &'static str, text: &str) -> Result<(), CspError> {
    let bad = text.chars().any(|c| {
        (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    });
    if bad {
        Err(CspError::UnencodableText { field })
    } else {
        Ok(())
    }
}
