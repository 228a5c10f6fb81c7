//! RFC 2047 encoded words in header values: `=?charset?B?base64?=` and
//! `=?charset?Q?quoted_printable?=` (charset may carry an RFC 2231
//! `*language` suffix). Whitespace between two adjacent encoded words is
//! dropped, as the RFC requires. Text that merely looks like the start of
//! an encoded word (`=?` without the rest of the syntax) stays as is; a
//! well-formed word that cannot be decoded (unknown charset, bad base64,
//! bytes invalid in the charset) is an error.

use thiserror::Error;

use crate::charset;
use crate::transfer;

/// An encoded word that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("encoded word {word:?}: {reason}")]
pub struct EncodedWordError {
    /// The word, shortened to 80 bytes.
    pub word: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Decodes every encoded word in `value`.
pub fn decode(value: &str) -> Result<String, EncodedWordError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    // Whether the text so far ended with an encoded word: whitespace
    // between it and a next encoded word is dropped.
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let Some((word, len)) = parse_word(&rest[start..]) else {
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            after_word = false;
            continue;
        };
        let before = &rest[..start];
        if !(after_word && before.chars().all(char::is_whitespace)) {
            out.push_str(before);
        }
        out.push_str(&word.decode().map_err(|reason| EncodedWordError {
            word: shorten(&rest[start..start + len], 80),
            reason,
        })?);
        rest = &rest[start + len..];
        after_word = true;
    }
    out.push_str(rest);
    Ok(out)
}

/// The first `max` bytes of `s`, cut at a character boundary.
fn shorten(s: &str, max: usize) -> String {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

struct Word<'a> {
    charset: &'a str,
    encoding: u8,
    text: &'a str,
}

impl Word<'_> {
    fn decode(&self) -> Result<String, String> {
        let bytes = match self.encoding {
            b'B' | b'b' => transfer::base64(self.text.as_bytes()).ok_or("invalid base64")?,
            _ => transfer::q_encoding(self.text.as_bytes()).ok_or("invalid Q encoding")?,
        };
        let label = self.charset.split('*').next().unwrap_or(self.charset);
        charset::decode(label, &bytes).map_err(|e| e.to_string())
    }
}

/// Parses `=?charset?e?text?=` at the start of `s`: the word and its length.
fn parse_word(s: &str) -> Option<(Word<'_>, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let (text, _) = rest.split_once("?=")?;
    let token = |t: &str| !t.is_empty() && !t.contains(|c: char| c.is_whitespace() || c == '?');
    let encoding = match encoding {
        "B" | "b" | "Q" | "q" => encoding.as_bytes()[0],
        _ => return None,
    };
    if !token(charset) || text.contains(|c: char| c.is_whitespace() || c == '?') {
        return None;
    }
    let len = 2 + charset.len() + 3 + text.len() + 2;
    Some((
        Word {
            charset,
            encoding,
            text,
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b_and_q_in_utf8_and_latin1() {
        assert_eq!(
            decode("=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= (jmueller)").unwrap(),
            "Jörg Müller (jmueller)"
        );
        assert_eq!(
            decode("=?iso-8859-1?q?J=F6rg_M=FCller?= (jmueller)").unwrap(),
            "Jörg Müller (jmueller)"
        );
        assert_eq!(decode("=?utf-8*en?Q?caf=C3=A9?=").unwrap(), "café");
    }

    #[test]
    fn whitespace_between_adjacent_words_is_dropped_but_not_elsewhere() {
        assert_eq!(
            decode("[Bug 1] =?utf-8?q?Caf=C3=A9?=\r\n =?utf-8?q?_cr=C3=A8me?= done").unwrap(),
            "[Bug 1] Café crème done"
        );
        assert_eq!(decode("=?utf-8?q?a?= b =?utf-8?q?c?=").unwrap(), "a b c");
    }

    #[test]
    fn lookalikes_stay_literal() {
        assert_eq!(decode("a =? b").unwrap(), "a =? b");
        assert_eq!(decode("=?utf-8?x?abc?=").unwrap(), "=?utf-8?x?abc?=");
        assert_eq!(
            decode("=?utf-8?q?has space?=").unwrap(),
            "=?utf-8?q?has space?="
        );
        assert_eq!(decode("=?utf-8?q?a?= =?").unwrap(), "a =?");
    }

    #[test]
    fn undecodable_words_are_errors() {
        let e = decode("x =?klingon?q?a?=").unwrap_err();
        assert_eq!(
            e,
            EncodedWordError {
                word: "=?klingon?q?a?=".into(),
                reason: "unknown charset \"klingon\"".into()
            }
        );
        assert_eq!(
            decode("=?utf-8?b?!!!?=").unwrap_err().reason,
            "invalid base64"
        );
        assert_eq!(
            decode("=?utf-8?q?=ff?=").unwrap_err().reason,
            "bytes not valid UTF-8"
        );
    }
}
