//! A small, bounded, namespace-aware XML tree for device messages.
//!
//! Device input is parsed into [`Element`]s whose names are *expanded* (namespace URI plus
//! local name), so that a client writing `<wst:RequestSecurityToken>`, `<t:RequestSecurityToken>`
//! or an un-prefixed element in a default namespace is read the same way. Prefixes are never
//! compared.
//!
//! The parser refuses what a device never needs and an attacker would use: any `<!DOCTYPE>`
//! (and with it every entity declaration), references to entities other than the five XML
//! predefines and character references, documents over a byte limit, nesting deeper than a
//! depth limit, and more elements or attributes than a count limit. Input must be UTF-8, the
//! only encoding Windows uses for these messages.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// Bounds applied while parsing, before any tree is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted document, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted element nesting (the root is depth 1).
    pub max_depth: usize,
    /// Most elements in one document.
    pub max_elements: usize,
    /// Most attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
}

impl Limits {
    /// MS-MDE2 requests: the largest real one (RequestSecurityToken with a CSR and a dozen
    /// context items) is about 5 KiB and 8 levels deep.
    pub const SOAP: Self = Self {
        max_bytes: 64 * 1024,
        max_depth: 24,
        max_elements: 2_000,
        max_attributes: 32,
    };

    /// OMA-DM messages: a device answering a large inventory `Get` sends many `Results`
    /// items, but never more than a few hundred KiB.
    pub const SYNCML: Self = Self {
        max_bytes: 1024 * 1024,
        max_depth: 32,
        max_elements: 50_000,
        max_attributes: 16,
    };
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Nothing but whitespace (Windows sends empty POSTs).
    #[error("the document is empty")]
    Empty,
    /// Over [`Limits::max_bytes`].
    #[error("the document has {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Over [`Limits::max_depth`].
    #[error("elements are nested deeper than {0} levels")]
    TooDeep(usize),
    /// Over [`Limits::max_elements`] or [`Limits::max_attributes`].
    #[error("the document has more than {0} elements or attributes")]
    TooManyNodes(usize),
    /// A `<!DOCTYPE>` declaration, refused whatever it contains.
    #[error("DOCTYPE declarations are not accepted")]
    DocType,
    /// A reference to an entity that is not one of XML's five predefined ones.
    #[error("the entity reference &{0}; is not accepted")]
    Entity(String),
    /// A prefix used without a namespace declaration in scope.
    #[error("the namespace prefix {0:?} is not declared")]
    UnknownPrefix(String),
    /// Not UTF-8, or an XML declaration naming another encoding.
    #[error("the document is not UTF-8")]
    Encoding,
    /// Anything else that makes the document not well-formed.
    #[error("the document is not well-formed XML: {0}")]
    Syntax(String),
}

impl From<quick_xml::Error> for XmlError {
    fn from(e: quick_xml::Error) -> Self {
        Self::Syntax(e.to_string())
    }
}

/// An attribute with its expanded name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The namespace URI; `None` for unprefixed attributes, which XML puts in no namespace.
    pub namespace: Option<String>,
    /// The local name.
    pub name: String,
    /// The value, with references resolved.
    pub value: String,
}

/// A child of an element, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A nested element.
    Element(Element),
    /// Character data (text or CDATA), with references resolved.
    Text(String),
}

/// An element with its expanded name, attributes and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The namespace URI; `None` when the element is in no namespace.
    pub namespace: Option<String>,
    /// The local name.
    pub name: String,
    /// Attributes other than namespace declarations.
    pub attributes: Vec<Attribute>,
    /// Children in document order.
    pub nodes: Vec<Node>,
}

impl Element {
    /// Whether this element has the expanded name `{namespace}name`.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.name == name && self.namespace.as_deref() == Some(namespace)
    }

    /// Child elements in document order.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.nodes.iter().filter_map(|node| match node {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child named `{namespace}name`.
    pub fn child(&self, namespace: &str, name: &str) -> Option<&Element> {
        self.children().find(|c| c.is(namespace, name))
    }

    /// Every child named `{namespace}name`.
    pub fn children_named<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children().filter(move |c| c.is(namespace, name))
    }

    /// The first child with local name `name`, whatever its namespace. For formats whose
    /// writers disagree about namespaces on inner elements (SyncML `Meta` children).
    pub fn child_local(&self, name: &str) -> Option<&Element> {
        self.children().find(|c| c.name == name)
    }

    /// The element's own character data, concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            if let Node::Text(t) = node {
                out.push_str(t);
            }
        }
        out
    }

    /// [`Element::text`] without surrounding whitespace.
    pub fn trimmed_text(&self) -> String {
        self.text().trim().to_owned()
    }

    /// The value of the unprefixed attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.is_none() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The value of the attribute `{namespace}name`.
    pub fn attr_ns(&self, namespace: &str, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name && a.namespace.as_deref() == Some(namespace))
            .map(|a| a.value.as_str())
    }

    /// Whether the element carries `xsi:nil="true"`.
    pub fn is_nil(&self) -> bool {
        self.attr_ns("http://www.w3.org/2001/XMLSchema-instance", "nil") == Some("true")
    }
}

/// Parses `input` within `limits`.
pub fn parse(input: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(input).map_err(|_| XmlError::Encoding)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(XmlError::Empty);
    }
    let mut reader = NsReader::from_str(text);
    // Whitespace between elements is kept as text and ignored by readers of the tree;
    // trimming here would also trim meaningful leading spaces inside values.
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let (resolved, event) = reader.read_resolved_event()?;
        let namespace = namespace_of(&resolved)?;
        match event {
            Event::Start(start) => {
                admit(root.is_some(), stack.len(), &mut elements, limits)?;
                stack.push(element(&reader, namespace, &start, limits)?);
            }
            Event::Empty(start) => {
                admit(root.is_some(), stack.len(), &mut elements, limits)?;
                let e = element(&reader, namespace, &start, limits)?;
                close(&mut stack, &mut root, e);
            }
            Event::End(_) => {
                let e = stack
                    .pop()
                    .ok_or_else(|| XmlError::Syntax("unexpected end tag".into()))?;
                close(&mut stack, &mut root, e);
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                push_text(&mut stack, &content)?;
            }
            Event::CData(c) => {
                let content: &str = c.as_ref();
                push_text(&mut stack, content)?;
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match r.xml10_content().as_ref() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => return Err(XmlError::Entity(other.to_owned())),
                    },
                    Err(e) => return Err(XmlError::Syntax(e.to_string())),
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Decl(decl) => {
                if let Some(Ok(encoding)) = decl.encoding()
                    && !encoding.eq_ignore_ascii_case("utf-8")
                {
                    return Err(XmlError::Encoding);
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax("unclosed element at end of input".into()));
    }
    root.ok_or(XmlError::Empty)
}

/// Checks the limits before a new element is opened at nesting level `open + 1`.
fn admit(
    after_root: bool,
    open: usize,
    elements: &mut usize,
    limits: &Limits,
) -> Result<(), XmlError> {
    if after_root {
        return Err(XmlError::Syntax("content after the root element".into()));
    }
    *elements += 1;
    if *elements > limits.max_elements {
        return Err(XmlError::TooManyNodes(limits.max_elements));
    }
    if open + 1 > limits.max_depth {
        return Err(XmlError::TooDeep(limits.max_depth));
    }
    Ok(())
}

fn namespace_of(resolved: &ResolveResult<'_>) -> Result<Option<String>, XmlError> {
    match resolved {
        ResolveResult::Bound(ns) => Ok(Some(AsRef::<str>::as_ref(ns).to_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(XmlError::UnknownPrefix(prefix.clone())),
    }
}

fn element(
    reader: &NsReader<&[u8]>,
    namespace: Option<String>,
    start: &BytesStart<'_>,
    limits: &Limits,
) -> Result<Element, XmlError> {
    let name = AsRef::<str>::as_ref(&start.local_name()).to_owned();
    let mut attributes = Vec::new();
    for (count, attr) in start.attributes().enumerate() {
        if count >= limits.max_attributes {
            return Err(XmlError::TooManyNodes(limits.max_attributes));
        }
        let attr = attr.map_err(|e| XmlError::Syntax(e.to_string()))?;
        let key = attr.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let (resolved, local) = reader.resolver().resolve_attribute(key);
        let namespace = namespace_of(&resolved)?;
        let value =
            attr.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| match e {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, name),
                    ) => XmlError::Entity(name),
                    other => XmlError::Syntax(other.to_string()),
                })?;
        attributes.push(Attribute {
            namespace,
            name: AsRef::<str>::as_ref(&local).to_owned(),
            value: value.into_owned(),
        });
    }
    Ok(Element {
        namespace,
        name,
        attributes,
        nodes: Vec::new(),
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.nodes.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(last)) = parent.nodes.last_mut() {
                last.push_str(text);
            } else {
                parent.nodes.push(Node::Text(text.to_owned()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError::Syntax("text outside the root element".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "urn:example";

    #[test]
    fn names_are_compared_by_namespace_not_prefix() {
        let a = parse(
            br#"<a:root xmlns:a="urn:example"><a:child>x</a:child></a:root>"#,
            &Limits::SOAP,
        )
        .unwrap();
        let b = parse(
            br#"<root xmlns="urn:example"><child>x</child></root>"#,
            &Limits::SOAP,
        )
        .unwrap();
        assert!(a.is(NS, "root") && b.is(NS, "root"));
        assert_eq!(a.child(NS, "child").unwrap().text(), "x");
        assert_eq!(b.child(NS, "child").unwrap().text(), "x");
        let other = parse(
            br#"<a:root xmlns:a="urn:other"><a:child/></a:root>"#,
            &Limits::SOAP,
        )
        .unwrap();
        assert!(!other.is(NS, "root"), "same prefix, other namespace");
    }

    #[test]
    fn predefined_and_character_references_resolve_and_others_are_refused() {
        let e = parse(
            b"<r a=\"&lt;&#65;\">&amp;&#x42;<![CDATA[<c>]]></r>",
            &Limits::SOAP,
        )
        .unwrap();
        assert_eq!(e.text(), "&B<c>");
        assert_eq!(e.attr("a"), Some("<A"));
        assert_eq!(
            parse(b"<r>&custom;</r>", &Limits::SOAP),
            Err(XmlError::Entity("custom".into()))
        );
        assert!(matches!(
            parse(b"<r a=\"&custom;\"/>", &Limits::SOAP),
            Err(XmlError::Entity(_))
        ));
    }

    #[test]
    fn a_doctype_is_refused_even_without_entities() {
        let billion_laughs = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"#;
        assert_eq!(parse(billion_laughs, &Limits::SOAP), Err(XmlError::DocType));
        assert_eq!(
            parse(b"<!DOCTYPE r><r/>", &Limits::SOAP),
            Err(XmlError::DocType)
        );
    }

    #[test]
    fn size_depth_and_count_limits_hold() {
        let limits = Limits {
            max_bytes: 100,
            max_depth: 3,
            max_elements: 5,
            max_attributes: 2,
        };
        assert!(matches!(
            parse(&[b' '; 101], &limits),
            Err(XmlError::TooLarge { size: 101, .. })
        ));
        assert_eq!(
            parse(b"<a><b><c><d/></c></b></a>", &limits),
            Err(XmlError::TooDeep(3))
        );
        assert!(parse(b"<a><b><c/></b></a>", &limits).is_ok());
        assert_eq!(
            parse(b"<a><b/><b/><b/><b/><b/></a>", &limits),
            Err(XmlError::TooManyNodes(5))
        );
        assert_eq!(
            parse(b"<a x='1' y='2' z='3'/>", &limits),
            Err(XmlError::TooManyNodes(2))
        );
    }

    #[test]
    fn empty_malformed_and_foreign_encodings_are_refused() {
        assert_eq!(parse(b"", &Limits::SOAP), Err(XmlError::Empty));
        assert_eq!(parse(b"  \r\n ", &Limits::SOAP), Err(XmlError::Empty));
        assert!(matches!(
            parse(b"<a><b></a>", &Limits::SOAP),
            Err(XmlError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"<a/><b/>", &Limits::SOAP),
            Err(XmlError::Syntax(_))
        ));
        assert_eq!(
            parse(b"<p:a/>", &Limits::SOAP),
            Err(XmlError::UnknownPrefix("p".into()))
        );
        assert_eq!(
            parse(
                b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
                &Limits::SOAP
            ),
            Err(XmlError::Encoding)
        );
        assert_eq!(
            parse(b"<a>\xff</a>", &Limits::SOAP),
            Err(XmlError::Encoding)
        );
    }

    #[test]
    fn a_byte_order_mark_and_declaration_are_accepted() {
        let e = parse(
            "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a/>".as_bytes(),
            &Limits::SOAP,
        )
        .unwrap();
        assert_eq!(e.name, "a");
    }
}
