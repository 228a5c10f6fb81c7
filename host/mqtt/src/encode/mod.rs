//! Packets -> bytes.
//!
//! Encoding is infallible: the packet types cannot express anything the wire
//! format cannot carry, provided strings and binary fields stay within 65535
//! bytes and the packet within 268,435,455 bytes (always true of decoded
//! packets; the broker checks sizes against the client's Maximum Packet Size
//! with [`publish_len`] before encoding). For 3.x, MQTT 5 properties and
//! reason codes are dropped where the version has no place for them.
//!
//! Each packet body is written by one generic function over a `Sink`, run
//! once over a byte counter to get the remaining length and once over the
//! output, so sizes are never computed by a second, divergent copy of the
//! layout. PUBLISH, the per-subscriber hot path, is hand-written instead:
//! sizes computed once, one reservation, direct writes.

pub(crate) mod properties;
#[cfg(test)]
pub(crate) mod tests;

use bytes::{BufMut, BytesMut};

use crate::decode::kind;
use crate::packet::*;
use properties::{Props, WillProps};

/// Where a packet's fields go: the output buffer, or a byte counter.
pub(crate) trait Sink {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    fn slice(&mut self, b: &[u8]);

    /// A Variable Byte Integer (at most 268,435,455).
    fn varint(&mut self, mut v: u32) {
        debug_assert!(v <= 268_435_455, "variable byte integer out of range");
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.u8(byte);
                return;
            }
            self.u8(byte | 0x80);
        }
    }

    /// A UTF-8 string with its two-byte length.
    fn string(&mut self, s: &str) {
        self.binary(s.as_bytes());
    }

    /// Binary data with its two-byte length.
    fn binary(&mut self, b: &[u8]) {
        debug_assert!(b.len() <= usize::from(u16::MAX), "field over 65535 bytes");
        self.u16(b.len() as u16);
        self.slice(b);
    }
}

/// Counts bytes instead of writing them.
pub(crate) struct Len(pub usize);

impl Sink for Len {
    fn u8(&mut self, _: u8) {
        self.0 += 1;
    }
    fn u16(&mut self, _: u16) {
        self.0 += 2;
    }
    fn u32(&mut self, _: u32) {
        self.0 += 4;
    }
    fn slice(&mut self, b: &[u8]) {
        self.0 += b.len();
    }
    fn varint(&mut self, v: u32) {
        self.0 += varint_len(v as usize);
    }
}

impl Sink for BytesMut {
    fn u8(&mut self, v: u8) {
        self.put_u8(v);
    }
    fn u16(&mut self, v: u16) {
        self.put_u16(v);
    }
    fn u32(&mut self, v: u32) {
        self.put_u32(v);
    }
    fn slice(&mut self, b: &[u8]) {
        self.put_slice(b);
    }
}

/// The size of `v` as a Variable Byte Integer.
pub(crate) fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends `packet`, encoded for a connection speaking `version`, to `out`.
///
/// CONNECT is encoded for `version` (its `protocol` field is not
/// consulted). AUTH exists only in MQTT 5 and is always written in that form.
pub fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) {
    if let Packet::Publish(publish) = packet {
        return encode_publish(publish, version, out);
    }
    let mut len = Len(0);
    body(packet, version, &mut len);
    let remaining = len.0;
    out.reserve(1 + varint_len(remaining) + remaining);
    out.put_u8(first_byte(packet));
    out.varint(remaining as u32);
    body(packet, version, out);
}

fn first_byte(packet: &Packet) -> u8 {
    let (kind, flags) = match packet {
        Packet::Connect(_) => (kind::CONNECT, 0),
        Packet::ConnAck(_) => (kind::CONNACK, 0),
        Packet::Publish(p) => (kind::PUBLISH, publish_flags(p)),
        Packet::PubAck(_) => (kind::PUBACK, 0),
        Packet::PubRec(_) => (kind::PUBREC, 0),
        Packet::PubRel(_) => (kind::PUBREL, 0b0010),
        Packet::PubComp(_) => (kind::PUBCOMP, 0),
        Packet::Subscribe(_) => (kind::SUBSCRIBE, 0b0010),
        Packet::SubAck(_) => (kind::SUBACK, 0),
        Packet::Unsubscribe(_) => (kind::UNSUBSCRIBE, 0b0010),
        Packet::UnsubAck(_) => (kind::UNSUBACK, 0),
        Packet::PingReq => (kind::PINGREQ, 0),
        Packet::PingResp => (kind::PINGRESP, 0),
        Packet::Disconnect(_) => (kind::DISCONNECT, 0),
        Packet::Auth(_) => (kind::AUTH, 0),
    };
    kind << 4 | flags
}

fn publish_flags(p: &Publish) -> u8 {
    u8::from(p.dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain)
}

/// Writes everything after the fixed header.
fn body<S: Sink>(packet: &Packet, version: ProtocolVersion, s: &mut S) {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => connect(c, version, s),
        Packet::ConnAck(c) => {
            s.u8(u8::from(c.session_present));
            s.u8(c.code);
            if v5 {
                properties::write(s, &c.properties);
            }
        }
        Packet::Publish(_) => unreachable!("encode hands PUBLISH to encode_publish"),
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            s.u16(r.packet_id);
            if v5 {
                reason_and_properties(s, r.reason, &r.properties, is_empty_reason(&r.properties));
            }
        }
        Packet::Subscribe(sub) => {
            s.u16(sub.packet_id);
            if v5 {
                properties::write(s, sub);
            }
            for (filter, o) in &sub.filters {
                s.string(filter);
                let mut options = o.qos as u8;
                if v5 {
                    options |= u8::from(o.no_local) << 2
                        | u8::from(o.retain_as_published) << 3
                        | (o.retain_handling as u8) << 4;
                }
                s.u8(options);
            }
        }
        Packet::SubAck(a) => {
            s.u16(a.packet_id);
            if v5 {
                properties::write(s, &a.properties);
            }
            s.slice(&a.return_codes);
        }
        Packet::Unsubscribe(u) => {
            s.u16(u.packet_id);
            if v5 {
                properties::write(s, u);
            }
            for filter in &u.filters {
                s.string(filter);
            }
        }
        Packet::UnsubAck(a) => {
            s.u16(a.packet_id);
            if v5 {
                properties::write(s, &a.properties);
                s.slice(&a.reasons);
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            if v5 {
                let no_props = d.session_expiry_interval.is_none()
                    && d.reason_string.is_none()
                    && d.user_properties.is_empty()
                    && d.server_reference.is_none();
                if d.reason != 0 || !no_props {
                    reason_and_properties(s, d.reason, d, no_props);
                }
            }
        }
        Packet::Auth(a) => {
            let no_props = a.authentication_method.is_none()
                && a.authentication_data.is_none()
                && a.reason_string.is_none()
                && a.user_properties.is_empty();
            if a.reason != 0 || !no_props {
                reason_and_properties(s, a.reason, a, no_props);
            }
        }
    }
}

fn is_empty_reason(p: &ReasonProperties) -> bool {
    p.reason_string.is_none() && p.user_properties.is_empty()
}

/// The MQTT 5 short forms: nothing for success without properties, the
/// reason alone without properties, else reason and properties.
fn reason_and_properties<S: Sink, P: Props>(s: &mut S, reason: u8, props: &P, no_props: bool) {
    if reason == 0 && no_props {
        return;
    }
    s.u8(reason);
    if !no_props {
        properties::write(s, props);
    }
}

fn connect<S: Sink>(c: &Connect, version: ProtocolVersion, s: &mut S) {
    let v5 = version.is_v5();
    s.string(if version == ProtocolVersion::V3_1 {
        "MQIsdp"
    } else {
        "MQTT"
    });
    s.u8(version.level());
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(will) = &c.will {
        flags |= 0b100 | (will.qos as u8) << 3 | u8::from(will.retain) << 5;
    }
    if c.password.is_some() {
        flags |= 0b100_0000;
    }
    if c.username.is_some() {
        flags |= 0b1000_0000;
    }
    s.u8(flags);
    s.u16(c.keep_alive);
    if v5 {
        properties::write(s, &c.properties);
    }
    s.string(&c.client_id);
    if let Some(will) = &c.will {
        if v5 {
            properties::write(s, &WillProps(will));
        }
        s.string(&will.topic);
        s.binary(&will.payload);
    }
    if let Some(username) = &c.username {
        s.string(username);
    }
    if let Some(password) = &c.password {
        s.binary(password);
    }
}

/// A PUBLISH to write, borrowed: what the broker sends each subscriber.
///
/// The message's shared properties are borrowed as they are; the per-copy
/// ones (Message Expiry Interval, Topic Alias, Subscription Identifiers)
/// are given separately and override whatever `properties` holds for them.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingPublish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty when `topic_alias` stands for it.
    pub topic: &'a str,
    /// Required when `qos` is not 0.
    pub packet_id: Option<u16>,
    pub properties: &'a PublishProperties,
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<u16>,
    pub subscription_identifiers: &'a [u32],
    pub payload: &'a [u8],
}

impl<'a> OutgoingPublish<'a> {
    /// A view of a whole `Publish` packet, its properties as they are.
    pub fn of(p: &'a Publish) -> OutgoingPublish<'a> {
        OutgoingPublish {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: &p.topic,
            packet_id: p.packet_id,
            properties: &p.properties,
            message_expiry_interval: p.properties.message_expiry_interval,
            topic_alias: p.properties.topic_alias,
            subscription_identifiers: &p.properties.subscription_identifiers,
            payload: &p.payload,
        }
    }

    /// (remaining length, property length).
    fn sizes(&self, version: ProtocolVersion) -> (usize, usize) {
        let mut remaining = 2 + self.topic.len() + self.payload.len();
        if self.qos != QoS::AtMostOnce {
            remaining += 2;
        }
        let mut props = 0;
        if version.is_v5() {
            props = properties::OutgoingProps(self).len();
            remaining += varint_len(props) + props;
        }
        (remaining, props)
    }

    /// The whole encoded size (fixed header included), to check against a
    /// client's Maximum Packet Size before encoding.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let (remaining, _) = self.sizes(version);
        1 + varint_len(remaining) + remaining
    }

    /// Appends the packet to `out`: one size computation, one reservation.
    pub fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) {
        let (remaining, props) = self.sizes(version);
        out.reserve(1 + varint_len(remaining) + remaining);
        let flags = u8::from(self.dup) << 3 | (self.qos as u8) << 1 | u8::from(self.retain);
        out.put_u8(kind::PUBLISH << 4 | flags);
        out.varint(remaining as u32);
        out.string(self.topic);
        if self.qos != QoS::AtMostOnce {
            debug_assert!(
                self.packet_id.is_some(),
                "QoS > 0 PUBLISH without a packet id"
            );
            out.put_u16(self.packet_id.unwrap_or(0));
        }
        if version.is_v5() {
            out.varint(props as u32);
            if props > 0 {
                properties::OutgoingProps(self).emit(out);
            }
        }
        out.put_slice(self.payload);
    }
}

/// The whole encoded size of `publish` (fixed header included), to check
/// against a client's Maximum Packet Size before encoding.
pub fn publish_len(publish: &Publish, version: ProtocolVersion) -> usize {
    OutgoingPublish::of(publish).encoded_len(version)
}

/// Appends `publish` to `out`: one size computation, one reservation.
pub fn encode_publish(publish: &Publish, version: ProtocolVersion, out: &mut BytesMut) {
    OutgoingPublish::of(publish).encode(version, out)
}
