//! Bytes -> packets, strictly.
//!
//! [`Decoder`] takes one packet at a time off the front of a connection's
//! read buffer. It checks the fixed header as soon as it is readable (type,
//! flags, direction, CONNECT-first, size limit) so a bad or oversized packet
//! is refused before its body arrives, and it never allocates what a header
//! merely claims. Every Malformed Packet and Protocol Error that can be seen
//! inside one packet is reported with the variant that names the reason code
//! to send; checks that need session state (topic alias range, inflight
//! packet ids, ...) belong to the broker.
//!
//! One decoder serves either side of a connection: [`Decoder::new`] decodes
//! as a server (client packets only, CONNECT first), [`Decoder::new_client`]
//! as a client (server packets only, CONNACK first, after
//! [`Decoder::set_version`]).

mod packets;
pub(crate) mod properties;
pub(crate) mod reader;
#[cfg(test)]
mod tests;

use bytes::{Buf, BytesMut};

use crate::packet::{Packet, ProtocolVersion};
use crate::reason;
use reader::{Reader, VarInt, parse_varint};

/// Why a packet was refused. Each variant maps to the MQTT 5 reason code
/// the broker sends (in CONNACK before the connection is accepted, in
/// DISCONNECT after) before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes cannot be parsed as the packet they claim to be (0x81).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet parses but breaks a protocol rule (0x82).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The whole packet (fixed header + remaining length) exceeds the
    /// maximum packet size (0x95).
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    TooLarge { size: usize, max: u32 },
    /// CONNECT names a protocol level we do not speak: CONNACK 0x84 (v5)
    /// or return code 0x01 (3.x), then close.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT's protocol name is neither `MQTT` nor `MQIsdp`: close
    /// without a CONNACK.
    #[error("CONNECT protocol name is neither MQTT nor MQIsdp")]
    InvalidProtocolName,
}

impl DecodeError {
    /// The MQTT 5 reason code to send in DISCONNECT (or CONNACK).
    ///
    /// `InvalidProtocolName` maps to Unsupported Protocol Version, but the
    /// specification has the connection closed without any CONNACK.
    pub fn reason_code(&self) -> u8 {
        match self {
            DecodeError::Malformed(_) => reason::MALFORMED_PACKET,
            DecodeError::Protocol(_) => reason::PROTOCOL_ERROR,
            DecodeError::TooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocolVersion(_) | DecodeError::InvalidProtocolName => {
                reason::UNSUPPORTED_PROTOCOL_VERSION
            }
        }
    }
}

/// Packet type numbers (the high nibble of the first byte).
pub(crate) mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
    pub const AUTH: u8 = 15;
}

/// Decodes the packets of one connection, keeping what later packets depend
/// on: the protocol version and whether the handshake packet was seen.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_packet_size: u32,
    version: Option<ProtocolVersion>,
    /// Decoding as a client: server packets are expected, CONNACK first.
    client: bool,
    /// CONNECT (server side) or CONNACK (client side) was decoded.
    handshake_done: bool,
}

impl Decoder {
    /// A server-side decoder: the first packet must be CONNECT, and packets
    /// only a server sends are Protocol Errors. `max_packet_size` bounds the
    /// whole packet (fixed header included); `u32::MAX` for no limit beyond
    /// the protocol's own.
    pub fn new(max_packet_size: u32) -> Decoder {
        Decoder {
            max_packet_size,
            version: None,
            client: false,
            handshake_done: false,
        }
    }

    /// A client-side decoder (load generators, tests): packets only a client
    /// sends are Protocol Errors, CONNACK (or AUTH) must come first. Call
    /// [`Decoder::set_version`] with the version sent in CONNECT before
    /// decoding.
    pub fn new_client(max_packet_size: u32) -> Decoder {
        Decoder {
            client: true,
            ..Decoder::new(max_packet_size)
        }
    }

    /// The connection's protocol version: `None` until a CONNECT's protocol
    /// name and level were read (set even if the rest of that CONNECT is
    /// then refused, so the CONNACK can be sent in the client's dialect), or
    /// until [`Decoder::set_version`].
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Fixes the version to decode by; what a client decoder needs, since it
    /// never sees the CONNECT.
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    /// True for a decoder made with [`Decoder::new_client`].
    pub fn is_client(&self) -> bool {
        self.client
    }

    /// The current limit on incoming packets.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max;
    }

    /// Decodes one packet from the front of `buf`, removing its bytes;
    /// `Ok(None)` if `buf` does not yet hold a whole packet (nothing is
    /// removed or reserved then).
    ///
    /// An error is final for the connection. Binary fields and the PUBLISH
    /// payload are zero-copy slices of `buf`'s storage.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        self.check_fixed_header(first)?;
        let (remaining, len_len) = match parse_varint(&buf[1..]) {
            VarInt::Value { value, len } => (value as usize, len),
            VarInt::Incomplete => return Ok(None),
            VarInt::Invalid(why) => return Err(DecodeError::Malformed(why)),
        };
        let size = 1 + len_len + remaining;
        if size > self.max_packet_size as usize {
            return Err(DecodeError::TooLarge {
                size,
                max: self.max_packet_size,
            });
        }
        if buf.len() < size {
            return Ok(None);
        }
        let mut body = buf.split_to(size).freeze();
        body.advance(1 + len_len);
        self.decode_body(first, Reader::new(body)).map(Some)
    }

    /// Everything the first byte alone can refuse.
    fn check_fixed_header(&self, first: u8) -> Result<(), DecodeError> {
        let kind = first >> 4;
        let flags = first & 0x0f;
        match kind {
            0 => return Err(DecodeError::Malformed("packet type 0 is reserved")),
            kind::PUBLISH => {
                let qos = (flags >> 1) & 0b11;
                if qos == 3 {
                    return Err(DecodeError::Malformed("PUBLISH with QoS 3"));
                }
                if qos == 0 && flags & 0b1000 != 0 {
                    return Err(DecodeError::Malformed("PUBLISH with DUP set and QoS 0"));
                }
            }
            kind::PUBREL | kind::SUBSCRIBE | kind::UNSUBSCRIBE => {
                if flags != 0b0010 {
                    return Err(DecodeError::Malformed("fixed header flags must be 0010"));
                }
            }
            _ => {
                if flags != 0 {
                    return Err(DecodeError::Malformed("fixed header flags must be 0000"));
                }
            }
        }
        if kind == kind::AUTH && self.version.is_some_and(|v| !v.is_v5()) {
            return Err(DecodeError::Malformed("AUTH does not exist before MQTT 5"));
        }
        let server_only = matches!(
            kind,
            kind::CONNACK | kind::SUBACK | kind::UNSUBACK | kind::PINGRESP
        );
        let client_only = matches!(
            kind,
            kind::CONNECT | kind::SUBSCRIBE | kind::UNSUBSCRIBE | kind::PINGREQ
        );
        if self.client {
            if client_only {
                return Err(DecodeError::Protocol("packet only a client sends"));
            }
            if self.version.is_none() {
                return Err(DecodeError::Protocol(
                    "client decoder has no protocol version (set_version)",
                ));
            }
            if !self.handshake_done && kind != kind::CONNACK && kind != kind::AUTH {
                return Err(DecodeError::Protocol("first packet must be CONNACK"));
            }
            if self.handshake_done && kind == kind::CONNACK {
                return Err(DecodeError::Protocol("second CONNACK"));
            }
        } else {
            if server_only {
                return Err(DecodeError::Protocol("packet only a server sends"));
            }
            if !self.handshake_done && kind != kind::CONNECT {
                return Err(DecodeError::Protocol("first packet must be CONNECT"));
            }
            if self.handshake_done && kind == kind::CONNECT {
                return Err(DecodeError::Protocol("second CONNECT"));
            }
        }
        Ok(())
    }

    fn decode_body(&mut self, first: u8, mut r: Reader) -> Result<Packet, DecodeError> {
        let kind = first >> 4;
        let flags = first & 0x0f;
        if kind == kind::CONNECT {
            let connect = packets::connect(&mut r, &mut self.version)?;
            self.handshake_done = true;
            return Ok(Packet::Connect(Box::new(connect)));
        }
        // Checked in check_fixed_header: set by CONNECT or set_version.
        let v5 = self.version.is_some_and(ProtocolVersion::is_v5);
        let r = &mut r;
        Ok(match kind {
            kind::CONNACK => {
                let connack = packets::connack(r, v5)?;
                self.handshake_done = true;
                Packet::ConnAck(connack)
            }
            kind::PUBLISH => Packet::Publish(packets::publish(r, flags, v5, self.client)?),
            kind::PUBACK => Packet::PubAck(packets::pub_response(r, v5, kind)?),
            kind::PUBREC => Packet::PubRec(packets::pub_response(r, v5, kind)?),
            kind::PUBREL => Packet::PubRel(packets::pub_response(r, v5, kind)?),
            kind::PUBCOMP => Packet::PubComp(packets::pub_response(r, v5, kind)?),
            kind::SUBSCRIBE => Packet::Subscribe(packets::subscribe(r, v5)?),
            kind::SUBACK => Packet::SubAck(packets::suback(r, v5)?),
            kind::UNSUBSCRIBE => Packet::Unsubscribe(packets::unsubscribe(r, v5)?),
            kind::UNSUBACK => Packet::UnsubAck(packets::unsuback(r, v5)?),
            kind::PINGREQ => {
                r.finish("PINGREQ with a body")?;
                Packet::PingReq
            }
            kind::PINGRESP => {
                r.finish("PINGRESP with a body")?;
                Packet::PingResp
            }
            kind::DISCONNECT => Packet::Disconnect(packets::disconnect(r, v5)?),
            _ => Packet::Auth(packets::auth(r)?),
        })
    }
}
