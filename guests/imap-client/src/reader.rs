//! Framing of server responses: a response is a line ending in CRLF, and
//! a line that ends with a literal marker `{n}` (or `{n+}`) is followed
//! by exactly `n` bytes and then the rest of the response.
//!
//! [`Reader`] buffers what the transport delivered and hands out a
//! [`RawResponse`] only once the whole response is there, so a read that
//! times out halfway (during IDLE) loses nothing. Lines and literals are
//! bounded so a hostile server cannot make it allocate without limit.

use std::io::{self, Read};

use crate::error::{Error, Result};

/// One response: its text (line pieces joined, literal markers kept,
/// CRLFs removed) and its literals' bytes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The text, e.g. `* 1 FETCH (UID 7 BODY[] {12})`.
    pub text: Vec<u8>,
    /// The bytes of each literal, in the order of their markers.
    pub literals: Vec<Vec<u8>>,
}

/// Buffers transport bytes and frames responses.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Vec<u8>,
    max_line: usize,
    max_literal: usize,
}

impl Reader {
    /// A reader refusing lines over `max_line` and literals over
    /// `max_literal` bytes.
    pub fn new(max_line: usize, max_literal: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_line,
            max_literal,
        }
    }

    /// Bytes received but not yet part of a returned response.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Reads once from `source` into the buffer; `Ok(0)` at end of stream.
    pub fn fill(&mut self, source: &mut impl Read) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = source.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next complete response in the buffer, if there is one.
    pub fn take(&mut self) -> Result<Option<RawResponse>> {
        let mut text = Vec::new();
        let mut literals = Vec::new();
        let mut pos = 0;
        loop {
            let Some(newline) = self.buf[pos..].iter().position(|&b| b == b'\n') else {
                if self.buf.len() - pos > self.max_line {
                    return Err(Error::LineTooLong {
                        limit: self.max_line,
                    });
                }
                return Ok(None);
            };
            let line = &self.buf[pos..pos + newline];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > self.max_line {
                return Err(Error::LineTooLong {
                    limit: self.max_line,
                });
            }
            text.extend_from_slice(line);
            let marker = literal_marker(line);
            pos += newline + 1;
            match marker {
                Some(size) => {
                    let size = usize::try_from(size)
                        .ok()
                        .filter(|&s| s <= self.max_literal)
                        .ok_or(Error::LiteralTooLarge {
                            size,
                            limit: self.max_literal,
                        })?;
                    if self.buf.len() - pos < size {
                        return Ok(None);
                    }
                    literals.push(self.buf[pos..pos + size].to_vec());
                    pos += size;
                }
                None => {
                    self.buf.drain(..pos);
                    return Ok(Some(RawResponse { text, literals }));
                }
            }
        }
    }
}

/// The size of the literal announced at the end of `line`, if any.
/// (An absurdly long number counts as `u64::MAX`, refused by the caller.)
fn literal_marker(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .try_fold(0u64, |n, d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .unwrap_or(u64::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(reader: &mut Reader, bytes: &[u8]) -> Vec<RawResponse> {
        let mut out = Vec::new();
        for b in bytes {
            reader.fill(&mut &[*b][..]).unwrap();
            while let Some(r) = reader.take().unwrap() {
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn lines_and_literals_byte_by_byte() {
        let mut reader = Reader::new(100, 100);
        let got = feed(
            &mut reader,
            b"* OK hi\r\n* 1 FETCH (UID 7 BODY[] {5}\r\na\r\nb\n)\r\na1 OK done\n",
        );
        assert_eq!(
            got,
            vec![
                RawResponse {
                    text: b"* OK hi".to_vec(),
                    literals: vec![]
                },
                RawResponse {
                    text: b"* 1 FETCH (UID 7 BODY[] {5})".to_vec(),
                    literals: vec![b"a\r\nb\n".to_vec()]
                },
                RawResponse {
                    text: b"a1 OK done".to_vec(),
                    literals: vec![]
                },
            ]
        );
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn limits() {
        let mut reader = Reader::new(8, 4);
        reader.fill(&mut &b"* 123456789"[..]).unwrap();
        assert!(matches!(
            reader.take(),
            Err(Error::LineTooLong { limit: 8 })
        ));
        let mut reader = Reader::new(80, 4);
        reader.fill(&mut &b"* 1 FETCH (BODY[] {5}\r\n"[..]).unwrap();
        assert!(matches!(
            reader.take(),
            Err(Error::LiteralTooLarge { size: 5, limit: 4 })
        ));
        let mut reader = Reader::new(80, 4);
        reader
            .fill(&mut &b"* X {99999999999999999999999}\r\n"[..])
            .unwrap();
        assert!(matches!(
            reader.take(),
            Err(Error::LiteralTooLarge { size: u64::MAX, .. })
        ));
    }

    #[test]
    fn markers() {
        assert_eq!(literal_marker(b"a {12}"), Some(12));
        assert_eq!(literal_marker(b"a {12+}"), Some(12));
        assert_eq!(literal_marker(b"a {}"), None);
        assert_eq!(literal_marker(b"a {x}"), None);
        assert_eq!(literal_marker(b"a 12}"), None);
    }
}
