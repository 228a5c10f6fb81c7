//! MIME (RFC 2045/2046) as far as a notification needs it: the
//! `Content-Type` and its parameters, and the text of a mail: the body
//! decoded from its `Content-Transfer-Encoding` (7bit, 8bit, binary,
//! quoted-printable, base64) and its charset, or, for a multipart mail,
//! the first `text/plain` part (depth-first through nested multiparts).
//! Line ends in the text are normalized to `\n`.

use crate::charset::{self, CharsetError};
use crate::error::MailError;
use crate::message::Message;
use crate::transfer;

/// Nested multiparts deeper than this are not searched.
const MAX_DEPTH: usize = 8;

/// A parsed `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// `type/subtype`, lowercased.
    pub mime: String,
    /// Parameters in order; names lowercased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// The value of parameter `name` (lowercase).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses a `Content-Type` value. A missing or unparseable type is
    /// `text/plain`, as RFC 2045 says; a parameter without `=` is ignored.
    pub fn parse(value: &str) -> Self {
        let mut pieces = split_params(value).into_iter();
        let mime = pieces
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let mime = if mime.contains('/') {
            mime
        } else {
            "text/plain".to_owned()
        };
        let params = pieces
            .filter_map(|p| {
                let (name, value) = p.split_once('=')?;
                Some((name.trim().to_ascii_lowercase(), unquote(value.trim())))
            })
            .collect();
        Self { mime, params }
    }
}

/// Splits at `;` outside quoted strings.
fn split_params(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        let current = out.last_mut().expect("never empty");
        match c {
            _ if escaped => {
                escaped = false;
                current.push(c);
            }
            '\\' if quoted => {
                escaped = true;
                current.push(c);
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ';' if !quoted => out.push(String::new()),
            _ => current.push(c),
        }
    }
    out
}

fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or('\\')
        } else {
            c
        });
    }
    out
}

/// The text of `message`: see the module documentation.
pub fn text_body(message: &Message<'_>) -> Result<String, MailError> {
    find_text(message, 0)?.ok_or_else(|| {
        MailError::NoTextPart(content_type(message).map(|ct| ct.mime).unwrap_or_default())
    })
}

fn content_type(message: &Message<'_>) -> Result<ContentType, MailError> {
    Ok(ContentType::parse(
        &message.text("Content-Type")?.unwrap_or_default(),
    ))
}

fn find_text(message: &Message<'_>, depth: usize) -> Result<Option<String>, MailError> {
    let ct = content_type(message)?;
    if ct.mime == "text/plain" {
        return decode_text(message, &ct).map(Some);
    }
    if !ct.mime.starts_with("multipart/") || depth >= MAX_DEPTH {
        return Ok(None);
    }
    let boundary = ct
        .param("boundary")
        .filter(|b| !b.is_empty())
        .ok_or(MailError::BadMultipart("no boundary parameter"))?;
    for part in split_multipart(message.body, boundary.as_bytes())? {
        if let Some(text) = find_text(&Message::parse(part)?, depth + 1)? {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

fn decode_text(message: &Message<'_>, ct: &ContentType) -> Result<String, MailError> {
    let cte = message
        .text("Content-Transfer-Encoding")?
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let bytes = match cte.as_str() {
        "" | "7bit" | "8bit" | "binary" => message.body.to_vec(),
        "quoted-printable" => transfer::quoted_printable(message.body),
        "base64" => transfer::base64(message.body).ok_or(MailError::BadBase64)?,
        _ => return Err(MailError::UnknownTransferEncoding(cte)),
    };
    let label = ct.param("charset").unwrap_or("us-ascii");
    let text = charset::decode(label, &bytes).map_err(|e| match e {
        CharsetError::Unknown(label) => MailError::UnknownCharset(label),
        CharsetError::Malformed(name) => MailError::BadText(name.to_owned()),
    })?;
    Ok(text.replace("\r\n", "\n"))
}

/// The body parts between `--boundary` lines, up to `--boundary--` (or
/// the end, if the closing line is missing). The line break before a
/// delimiter line belongs to the delimiter.
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Result<Vec<&'a [u8]>, MailError> {
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let mut at = 0;
    while at < body.len() {
        let end = body[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| at + i);
        let line = body[at..end].strip_suffix(b"\r").unwrap_or(&body[at..end]);
        let next = (end + 1).min(body.len());
        if let Some(after) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        {
            let closing = after.starts_with(b"--");
            let after = if closing { &after[2..] } else { after };
            if after.iter().all(|b| *b == b' ' || *b == b'\t') {
                if let Some(start) = part_start {
                    let content = &body[start..at.max(start)];
                    let content = content.strip_suffix(b"\n").unwrap_or(content);
                    parts.push(content.strip_suffix(b"\r").unwrap_or(content));
                }
                if closing {
                    return Ok(parts);
                }
                part_start = Some(next);
            }
        }
        at = next;
    }
    match part_start {
        Some(start) => {
            parts.push(&body[start.min(body.len())..]);
            Ok(parts)
        }
        None => Err(MailError::BadMultipart("the boundary never appears")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(mail: &[u8]) -> Result<String, MailError> {
        text_body(&Message::parse(mail)?)
    }

    #[test]
    fn content_type_parameters() {
        let ct =
            ContentType::parse("Multipart/Mixed; boundary=\"a;b \\\"c\\\"\"; charset=UTF-8; junk");
        assert_eq!(ct.mime, "multipart/mixed");
        assert_eq!(ct.param("boundary"), Some("a;b \"c\""));
        assert_eq!(ct.param("charset"), Some("UTF-8"));
        assert_eq!(ContentType::parse("").mime, "text/plain");
    }

    #[test]
    fn plain_bodies_in_each_transfer_encoding() {
        assert_eq!(text(b"\r\nplain\r\ntext\r\n").unwrap(), "plain\ntext\n");
        assert_eq!(
            text(b"Content-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: Quoted-Printable\n\nna=C3=AFve =\nline\n").unwrap(),
            "naïve line\n"
        );
        assert_eq!(text(b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nw6k=\n").unwrap(), "é");
        assert_eq!(text(b"Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n\xe9").unwrap(), "é");
    }

    #[test]
    fn multipart_takes_first_text_plain_depth_first() {
        let mail = b"Content-Type: multipart/mixed; boundary=outer\n\npreamble\n--outer\nContent-Type: text/html\n\n<p>no</p>\n--outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nyes\r\n--inner--\n--outer\n\nlater\n--outer--\nepilogue";
        assert_eq!(text(mail).unwrap(), "yes");
        let unclosed = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n--b\n\nsecond";
        assert_eq!(text(unclosed).unwrap(), "first");
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            text(b"Content-Type: text/html\n\n<p>"),
            Err(MailError::NoTextPart("text/html".into()))
        );
        assert_eq!(
            text(b"Content-Type: multipart/mixed\n\nx"),
            Err(MailError::BadMultipart("no boundary parameter"))
        );
        assert_eq!(
            text(b"Content-Type: multipart/mixed; boundary=b\n\nx"),
            Err(MailError::BadMultipart("the boundary never appears"))
        );
        assert_eq!(
            text(b"Content-Transfer-Encoding: x-uuencode\n\nx"),
            Err(MailError::UnknownTransferEncoding("x-uuencode".into()))
        );
        assert_eq!(
            text(b"Content-Transfer-Encoding: base64\n\n**"),
            Err(MailError::BadBase64)
        );
        assert_eq!(
            text(b"Content-Type: text/plain; charset=x-foo\n\nx"),
            Err(MailError::UnknownCharset("x-foo".into()))
        );
        assert_eq!(
            text(b"Content-Type: text/plain; charset=utf-8\n\n\xff"),
            Err(MailError::BadText("UTF-8".into()))
        );
    }
}
