//! A thin wrapper over quick-xml's writer: every text and attribute value goes through its
//! escaping, so no rendered message can be broken by a value containing `<` or `&`.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

pub(crate) struct XmlWriter {
    inner: Writer<Vec<u8>>,
}

impl XmlWriter {
    pub(crate) fn new() -> Self {
        Self {
            inner: Writer::new(Vec::new()),
        }
    }

    /// Starts the document with `<?xml version="1.0" encoding="UTF-8"?>`.
    pub(crate) fn with_declaration() -> Self {
        let mut w = Self::new();
        w.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        w
    }

    // The target is a `Vec<u8>`, whose `io::Write` never fails: the result carries no
    // information, so it is discarded in this one place.
    fn event(&mut self, event: Event<'_>) {
        let _ = self.inner.write_event(event);
    }

    pub(crate) fn start(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let mut e = BytesStart::new(name);
        for (k, v) in attributes {
            e.push_attribute((*k, *v));
        }
        self.event(Event::Start(e));
    }

    pub(crate) fn end(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    pub(crate) fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let mut e = BytesStart::new(name);
        for (k, v) in attributes {
            e.push_attribute((*k, *v));
        }
        self.event(Event::Empty(e));
    }

    pub(crate) fn text(&mut self, text: &str) {
        self.event(Event::Text(BytesText::new(text)));
    }

    /// `<name attrs…>text</name>`.
    pub(crate) fn element(&mut self, name: &str, attributes: &[(&str, &str)], text: &str) {
        self.start(name, attributes);
        self.text(text);
        self.end(name);
    }

    /// `<name xsi:nil="true"/>`, for the many optional XCEP elements.
    pub(crate) fn nil(&mut self, name: &str) {
        self.empty(name, &[("xsi:nil", "true")]);
    }

    pub(crate) fn finish(self) -> String {
        // Only `&str` input and ASCII markup were written.
        String::from_utf8(self.inner.into_inner()).unwrap_or_default()
    }
}
