//! Bytes in a named charset to text, through `encoding_rs` (the WHATWG
//! Encoding Standard's labels and decoders: `utf-8`, `us-ascii`,
//! `iso-8859-*`, `windows-*`, `koi8-r`, `shift_jis`, ...). As in browsers,
//! `us-ascii` and `iso-8859-1` decode as `windows-1252`. Malformed bytes
//! are an error, not replacement characters.

use thiserror::Error;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CharsetError {
    /// The label names no charset `encoding_rs` knows.
    #[error("unknown charset {0:?}")]
    Unknown(String),
    /// The bytes are not valid in that charset (its canonical name).
    #[error("bytes not valid {0}")]
    Malformed(&'static str),
}

/// Decodes `bytes` as `label`.
pub fn decode(label: &str, bytes: &[u8]) -> Result<String, CharsetError> {
    let encoding = encoding_rs::Encoding::for_label(label.trim().as_bytes())
        .ok_or_else(|| CharsetError::Unknown(label.to_owned()))?;
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or(CharsetError::Malformed(encoding.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_charsets() {
        assert_eq!(decode("UTF-8", "é".as_bytes()).unwrap(), "é");
        assert_eq!(decode("iso-8859-1", b"M\xFCller").unwrap(), "Müller");
        assert_eq!(decode("us-ascii", b"plain").unwrap(), "plain");
        assert_eq!(decode("iso-8859-15", b"\xA4").unwrap(), "€");
    }

    #[test]
    fn unknown_and_malformed() {
        assert_eq!(
            decode("x-klingon", b"a"),
            Err(CharsetError::Unknown("x-klingon".into()))
        );
        assert_eq!(
            decode("utf-8", b"\xC3("),
            Err(CharsetError::Malformed("UTF-8"))
        );
    }
}
