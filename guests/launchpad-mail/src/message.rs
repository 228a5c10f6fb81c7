//! An RFC 5322 message split into its header fields and its body.
//!
//! Header fields are kept in order, unfolded (the line breaks of folded
//! lines removed, their whitespace kept) and trimmed, as raw bytes: only
//! the fields a notification uses are decoded (UTF-8 plus RFC 2047), so
//! an odd header nobody reads cannot fail a mail. Line ends may be CRLF
//! or LF. Also used for the parts of a multipart body, which may have no
//! header fields at all.

use crate::encoded_word;
use crate::error::MailError;

/// One header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name as written (compare with [`str::eq_ignore_ascii_case`]).
    pub name: &'a str,
    /// The unfolded, trimmed value, undecoded.
    pub raw: Vec<u8>,
}

impl Header<'_> {
    /// The value as text: UTF-8 (RFC 6532), RFC 2047 encoded words decoded.
    pub fn text(&self) -> Result<String, MailError> {
        let raw = std::str::from_utf8(&self.raw).map_err(|_| MailError::NonUtf8Header {
            name: self.name.to_owned(),
        })?;
        encoded_word::decode(raw).map_err(|e| MailError::EncodedWord {
            name: self.name.to_owned(),
            word: e.word,
            reason: e.reason,
        })
    }
}

/// A parsed message (or MIME part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Header fields in order.
    pub headers: Vec<Header<'a>>,
    /// Everything after the blank line that ends the header section.
    pub body: &'a [u8],
}

impl<'a> Message<'a> {
    /// Splits `bytes` into header fields and body. Without a blank line,
    /// everything is header section and the body is empty.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MailError> {
        Self::split(bytes).map(Self::trimmed)
    }

    fn split(bytes: &'a [u8]) -> Result<Self, MailError> {
        let mut headers: Vec<Header<'a>> = Vec::new();
        let mut rest = bytes;
        let mut number = 0;
        while !rest.is_empty() {
            number += 1;
            let (line, after) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            rest = after;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return Ok(Self {
                    headers,
                    body: rest,
                });
            }
            if line[0] == b' ' || line[0] == b'\t' {
                match headers.last_mut() {
                    Some(last) => last.raw.extend_from_slice(line),
                    None => return Err(bad_line(number, line)),
                }
                continue;
            }
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or_else(|| bad_line(number, line))?;
            // obs-optional: whitespace between the name and the colon.
            let name = trim(&line[..colon]);
            if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
                return Err(bad_line(number, line));
            }
            // The name is printable ASCII, hence UTF-8.
            let name = std::str::from_utf8(name).map_err(|_| bad_line(number, line))?;
            headers.push(Header {
                name,
                raw: line[colon + 1..].to_vec(),
            });
        }
        Ok(Self { headers, body: &[] })
    }

    /// The first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&Header<'a>> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// The decoded text of the first header field called `name`.
    pub fn text(&self, name: &str) -> Result<Option<String>, MailError> {
        self.header(name).map(Header::text).transpose()
    }

    /// Trims the values once parsing is done (continuation lines are
    /// appended with their leading whitespace, so trimming must wait).
    fn trimmed(mut self) -> Self {
        for h in &mut self.headers {
            h.raw = trim(&h.raw).to_vec();
        }
        self
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = bytes.iter().position(|b| !ws(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn bad_line(line: usize, text: &[u8]) -> MailError {
    let text = String::from_utf8_lossy(&text[..text.len().min(60)]).into_owned();
    MailError::BadHeaderLine { line, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Message<'_>, MailError> {
        Message::parse(bytes)
    }

    #[test]
    fn folded_headers_are_unfolded_and_body_split() {
        let mail =
            b"Subject: [Bug 1] a\r\n  long\r\n\tsubject\r\nX-A :  b \r\n\r\nbody\r\n\r\nmore";
        let m = parse(mail).unwrap();
        assert_eq!(m.headers.len(), 2);
        assert_eq!(
            m.text("subject").unwrap().as_deref(),
            Some("[Bug 1] a  long\tsubject")
        );
        assert_eq!(m.header("x-a").unwrap().raw, b"b".to_vec());
        assert_eq!(m.body, b"body\r\n\r\nmore");
    }

    #[test]
    fn parts_may_have_no_headers_and_mails_no_body() {
        let part = parse(b"\nonly body").unwrap();
        assert!(part.headers.is_empty());
        assert_eq!(part.body, b"only body");
        let m = parse(b"A: 1\nB: 2").unwrap();
        assert_eq!(m.headers.len(), 2);
        assert_eq!(m.body, b"");
    }

    #[test]
    fn bad_header_lines_name_the_line() {
        assert_eq!(
            parse(b"A: 1\nthis is not a header\n\nbody").unwrap_err(),
            MailError::BadHeaderLine {
                line: 2,
                text: "this is not a header".into()
            }
        );
        assert_eq!(
            parse(b" folded: first\n").unwrap_err(),
            MailError::BadHeaderLine {
                line: 1,
                text: " folded: first".into()
            }
        );
        assert_eq!(
            parse(b": no name\n").unwrap_err(),
            MailError::BadHeaderLine {
                line: 1,
                text: ": no name".into()
            }
        );
    }

    #[test]
    fn non_utf8_header_is_an_error_only_when_read() {
        let m = parse(b"X-Odd: \xff\xfe\nSubject: ok\n\n").unwrap();
        assert_eq!(m.text("subject").unwrap().as_deref(), Some("ok"));
        assert_eq!(
            m.text("x-odd").unwrap_err(),
            MailError::NonUtf8Header {
                name: "X-Odd".into()
            }
        );
    }
}
