//! Content-Transfer-Encodings (RFC 2045): quoted-printable and base64,
//! shared by bodies and RFC 2047 encoded words.

/// Decodes a quoted-printable body. Soft line breaks (`=` at a line end,
/// optionally followed by transport padding) are removed; `=XX` becomes
/// the byte; an `=` followed by anything else is kept as is, as RFC 2045
/// (6.7, note 1) recommends for robust decoders.
pub fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        if let (Some(hi), Some(lo)) = (
            input.get(i + 1).and_then(hex),
            input.get(i + 2).and_then(hex),
        ) {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        let padding = input[i + 1..]
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        match &input[i + 1 + padding..] {
            [b'\r', b'\n', ..] => i += 3 + padding,
            [b'\n', ..] => i += 2 + padding,
            [] => i += 1 + padding,
            _ => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    out
}

/// Decodes the `Q` encoding of RFC 2047: quoted-printable where `_` is a
/// space. Unlike a body, a stray `=` is an error (`None`).
pub fn q_encoding(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hi = input.get(i + 1).and_then(hex)?;
                let lo = input.get(i + 2).and_then(hex)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes base64 (standard alphabet). Line breaks and other whitespace
/// are skipped; padding is optional, but nothing may follow it, and a
/// lone trailing character (6 bits) is an error. `None` when invalid.
pub fn base64(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut padded = false;
    for &b in input {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padded = true;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        if padded {
            return None;
        }
        acc = acc << 6 | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 6 leftover bits: one character of a quantum, which cannot be.
    (bits != 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_soft_breaks_hex_and_stray_equals() {
        assert_eq!(
            quoted_printable(b"caf=C3=A9 =\r\nna=c3=afve=  \nend=\n= x =4"),
            "café naïveend= x =4".as_bytes()
        );
        assert_eq!(quoted_printable(b"a=3D=3d"), b"a==");
        assert_eq!(quoted_printable(b"trailing="), b"trailing");
    }

    #[test]
    fn q_encoding_underscores_and_errors() {
        assert_eq!(
            q_encoding(b"J=C3=B6rg_M=FCller").unwrap(),
            b"J\xC3\xB6rg M\xFCller"
        );
        assert_eq!(q_encoding(b"bad=4"), None);
        assert_eq!(q_encoding(b"bad=zz"), None);
    }

    #[test]
    fn base64_with_line_breaks_and_padding() {
        assert_eq!(base64(b"aGVs\r\nbG8=").unwrap(), b"hello");
        assert_eq!(base64(b"aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64(b"aGVsbA==").unwrap(), b"hell");
        assert_eq!(base64(b"").unwrap(), b"");
        assert_eq!(base64(b"aGVsbG8=x"), None);
        assert_eq!(base64(b"aGVsb"), None);
        assert_eq!(base64(b"a*b="), None);
    }
}
