//! Encoding command arguments (RFC 3501 `astring`): a quoted string when
//! the value is 7-bit without CR or LF (`"` and `\` escaped), otherwise
//! a literal (`{n}` and the bytes after the server's continuation, or
//! `{n+}` without waiting when the server has LITERAL+). NUL cannot be
//! sent at all. Quoting every value, even one that would be a valid
//! atom, keeps user names and passwords such as `a b`, `x"y` or `%*`
//! from changing the command.

use thiserror::Error;

/// A piece of a command line as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes sent as they are.
    Text(Vec<u8>),
    /// A literal: its bytes, sent after the `{n}` marker.
    Literal(Vec<u8>),
}

/// Why a value cannot be an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Unsendable {
    /// It contains NUL, which IMAP cannot carry.
    #[error("it contains NUL")]
    Nul,
}

/// Encodes `value` as a quoted string or a literal.
pub fn astring(value: &[u8]) -> Result<Piece, Unsendable> {
    if value.contains(&0) {
        return Err(Unsendable::Nul);
    }
    if value
        .iter()
        .all(|&b| b.is_ascii() && b != b'\r' && b != b'\n')
    {
        let mut quoted = Vec::with_capacity(value.len() + 2);
        quoted.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                quoted.push(b'\\');
            }
            quoted.push(b);
        }
        quoted.push(b'"');
        return Ok(Piece::Text(quoted));
    }
    Ok(Piece::Literal(value.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_literals() {
        assert_eq!(astring(b"lpmqtt"), Ok(Piece::Text(b"\"lpmqtt\"".to_vec())));
        assert_eq!(
            astring(b"p\"w\\d x"),
            Ok(Piece::Text(b"\"p\\\"w\\\\d x\"".to_vec()))
        );
        assert_eq!(astring(b""), Ok(Piece::Text(b"\"\"".to_vec())));
        assert_eq!(
            astring("pässwörd".as_bytes()),
            Ok(Piece::Literal("pässwörd".as_bytes().to_vec()))
        );
        assert_eq!(astring(b"a\r\nb"), Ok(Piece::Literal(b"a\r\nb".to_vec())));
        assert_eq!(astring(b"a\0b"), Err(Unsendable::Nul));
    }
}
