//! A bounds-checked cursor over one packet's bytes.
//!
//! Every read that would run past the end is `Malformed`; binary fields and
//! the PUBLISH payload are handed out as zero-copy slices of the packet.

use bytes::{Buf, Bytes};

use super::DecodeError;

const SHORT: DecodeError = DecodeError::Malformed("field runs past the end of the packet");

pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed(what))
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(SHORT);
        }
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(SHORT);
        }
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(SHORT);
        }
        Ok(self.buf.get_u32())
    }

    /// A Variable Byte Integer: at most four bytes, minimally encoded.
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match parse_varint(&self.buf) {
            VarInt::Value { value, len } => {
                self.buf.advance(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(SHORT),
            VarInt::Invalid(why) => Err(DecodeError::Malformed(why)),
        }
    }

    /// The next `n` bytes as a zero-copy slice.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() < n {
            return Err(SHORT);
        }
        Ok(self.buf.split_to(n))
    }

    /// Everything left, zero-copy.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Binary Data: a two-byte length then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    /// A UTF-8 Encoded String: valid UTF-8 without U+0000.
    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.u16()? as usize;
        if self.buf.len() < len {
            return Err(SHORT);
        }
        let s = utf8(&self.buf[..len])?.to_owned();
        self.buf.advance(len);
        Ok(s)
    }
}

/// Checks an MQTT UTF-8 string: well-formed (so no surrogates) and no NUL.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, DecodeError> {
    let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::Malformed("invalid UTF-8"))?;
    if bytes.contains(&0) {
        return Err(DecodeError::Malformed("string contains U+0000"));
    }
    Ok(s)
}

pub(crate) enum VarInt {
    Value { value: u32, len: usize },
    Incomplete,
    Invalid(&'static str),
}

/// Parses a Variable Byte Integer from the front of `buf`.
pub(crate) fn parse_varint(buf: &[u8]) -> VarInt {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return VarInt::Invalid("variable byte integer not minimally encoded");
            }
            return VarInt::Value { value, len: i + 1 };
        }
    }
    if buf.len() >= 4 {
        VarInt::Invalid("variable byte integer longer than 4 bytes")
    } else {
        VarInt::Incomplete
    }
}
