//! A small, strict reader for the BER that devices put in `Mdm-Signature`.
//!
//! It only splits bytes into tag-length-value triples; it never allocates and never interprets
//! more than it is asked to. Anything it does not understand (high tag numbers, lengths beyond
//! four bytes, primitive indefinite lengths, nesting beyond [`MAX_DEPTH`]) is an error, and the
//! caller then hands the whole signature to OpenSSL, which stays the judge of odd encodings.

/// Deeper than any CMS structure we read; bounds recursion on hostile input.
const MAX_DEPTH: usize = 32;

/// Why the reader stopped. Callers only need to know that it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unreadable;

/// One element: its identifier octet, its contents, and the exact bytes it came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    /// The contents; for an indefinite length, the children without the end-of-contents octets.
    pub content: &'a [u8],
    /// Header, contents and (for an indefinite length) end-of-contents, as received.
    pub raw: &'a [u8],
    pub definite: bool,
}

impl<'a> Tlv<'a> {
    pub fn children(&self) -> Reader<'a> {
        Reader::new(self.content)
    }

    /// This element, if it carries `tag`.
    pub fn expect(self, tag: u8) -> Result<Self, Unreadable> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(Unreadable)
        }
    }
}

/// Reads consecutive elements from a byte slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    pub fn next(&mut self) -> Result<Tlv<'a>, Unreadable> {
        let (tlv, used) = read(self.rest, 0)?;
        self.rest = &self.rest[used..];
        Ok(tlv)
    }

    /// The next element, which must carry `tag`.
    pub fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, Unreadable> {
        self.next()?.expect(tag)
    }

    /// The next element if it carries `tag`; otherwise nothing is consumed.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, Unreadable> {
        if self.peek_tag() == Some(tag) {
            self.next().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Succeeds only when nothing is left.
    pub fn finish(self) -> Result<(), Unreadable> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Unreadable)
        }
    }
}

const CONSTRUCTED: u8 = 0x20;

/// One element at the start of `bytes`, and how many bytes it took.
fn read(bytes: &[u8], depth: usize) -> Result<(Tlv<'_>, usize), Unreadable> {
    if depth > MAX_DEPTH {
        return Err(Unreadable);
    }
    let (&tag, after_tag) = bytes.split_first().ok_or(Unreadable)?;
    // Tag number 31 announces a multi-byte tag, which nothing in CMS uses; 0 is end-of-contents,
    // which only the indefinite-length loop below may meet.
    if tag & 0x1f == 0x1f || tag == 0 {
        return Err(Unreadable);
    }
    let (&first, after_len) = after_tag.split_first().ok_or(Unreadable)?;
    let header = bytes.len() - after_len.len();
    if first == 0x80 {
        if tag & CONSTRUCTED == 0 {
            return Err(Unreadable);
        }
        let mut at = 0;
        loop {
            let rest = &after_len[at..];
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let used = header + at + 2;
                return Ok((
                    Tlv {
                        tag,
                        content: &after_len[..at],
                        raw: &bytes[..used],
                        definite: false,
                    },
                    used,
                ));
            }
            let (_, child) = read(rest, depth + 1)?;
            at += child;
        }
    }
    let (len, header) = if first < 0x80 {
        (first as usize, header)
    } else {
        let n = (first & 0x7f) as usize;
        // 0xff is reserved; more than four length octets would describe more than we could hold.
        if n > 4 || after_len.len() < n {
            return Err(Unreadable);
        }
        let len = after_len[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, header + n)
    };
    let end = header.checked_add(len).ok_or(Unreadable)?;
    if end > bytes.len() {
        return Err(Unreadable);
    }
    if tag & CONSTRUCTED != 0 {
        // Validate the children now, so that a caller walking them later cannot be surprised
        // by a length that runs past its parent.
        let mut at = header;
        while at < end {
            let (_, child) = read(&bytes[at..end], depth + 1)?;
            at += child;
        }
    }
    Ok((
        Tlv {
            tag,
            content: &bytes[header..end],
            raw: &bytes[..end],
            definite: true,
        },
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_and_indefinite_lengths() {
        // SEQUENCE (indefinite) { INTEGER 5, OCTET STRING (definite, long form) "ab" }
        let bytes = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0x04, 0x81, 0x02, b'a', b'b', 0x00, 0x00, 0xff,
        ];
        let mut r = Reader::new(&bytes);
        let seq = r.expect(0x30).unwrap();
        assert!(!seq.definite);
        assert_eq!(seq.raw.len(), 12);
        let mut c = seq.children();
        assert_eq!(c.expect(0x02).unwrap().content, &[5]);
        let s = c.expect(0x04).unwrap();
        assert_eq!(s.content, b"ab");
        assert!(s.definite);
        c.finish().unwrap();
        assert!(r.finish().is_err(), "one trailing byte");
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x02, 0x01],          // runs past the end
            &[0x04, 0x80, 0x00, 0x00],          // primitive with indefinite length
            &[0x30, 0x80, 0x02, 0x01, 0x05],    // no end-of-contents
            &[0x1f, 0x81, 0x00, 0x00],          // multi-byte tag
            &[0x30, 0x85, 0, 0, 0, 0, 1, 0x00], // five length octets
            &[0x30, 0x03, 0x02, 0x05, 0x00],    // child runs past its parent
            &[0x30, 0x02, 0x00, 0x00],          // end-of-contents in a definite element
        ] {
            assert!(Reader::new(bad).next().is_err(), "{bad:02x?}");
        }
        // Deep nesting stops at the limit instead of exhausting the stack.
        let mut deep = Vec::new();
        for _ in 0..10_000 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(Reader::new(&deep).next().is_err());
    }
}
