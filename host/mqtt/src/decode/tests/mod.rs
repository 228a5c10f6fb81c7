//! Decoder tests: every refusal the decoder makes, by exact variant, plus
//! size limits, partial input and a deterministic fuzz run.

use bytes::{BufMut, BytesMut};

use super::DecodeError::{self, *};
use super::*;
use crate::encode::encode;
use crate::encode::tests::{VERSIONS, client_packets, encoded, server_packets};
use crate::packet::*;

mod fuzz;

const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// A packet: first byte, remaining length, body.
fn pkt(first: u8, body: &[u8]) -> Vec<u8> {
    cat(&[&[first], &varint(body.len()), body])
}

fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn s(text: &[u8]) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A CONNECT: protocol name, level, flags, then `rest` (keep alive onward).
fn connect(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    pkt(0x10, &cat(&[&s(name), &[level, flags], rest]))
}

/// A v5 CONNECT with the given CONNECT properties and no will.
fn connect5(props: &[u8]) -> Vec<u8> {
    connect(
        b"MQTT",
        5,
        0x02,
        &cat(&[&[0, 60], &prop_len(props), props, &s(b"id")]),
    )
}

/// A v5 CONNECT with a will carrying `will_props` and `will_topic`.
fn connect5_will(will_props: &[u8], will_topic: &[u8]) -> Vec<u8> {
    connect(
        b"MQTT",
        5,
        0x06,
        &cat(&[
            &[0, 60, 0],
            &s(b"id"),
            &prop_len(will_props),
            will_props,
            &s(will_topic),
            &s(b"payload"),
        ]),
    )
}

fn prop_len(props: &[u8]) -> Vec<u8> {
    assert!(props.len() < 128);
    vec![props.len() as u8]
}

/// A server-side decoder that has seen a CONNECT of `version`.
fn server(version: ProtocolVersion) -> Decoder {
    let mut d = Decoder::new(u32::MAX);
    let mut c = crate::encode::tests::connect(version);
    c.will = None;
    d.decode(&mut encoded(&Packet::Connect(Box::new(c)), version))
        .unwrap()
        .unwrap();
    d
}

/// A client-side decoder that has seen a CONNACK.
fn client(version: ProtocolVersion) -> Decoder {
    let mut d = Decoder::new_client(u32::MAX);
    d.set_version(version);
    d.decode(&mut encoded(&Packet::ConnAck(ConnAck::default()), version))
        .unwrap()
        .unwrap();
    d
}

fn decode(mut d: Decoder, bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    d.decode(&mut buf)
}

#[derive(Clone, Copy, Debug)]
enum Side {
    /// A fresh server decoder (no CONNECT yet).
    Fresh,
    /// A server decoder after a CONNECT of this version.
    Server(ProtocolVersion),
    /// A client decoder after a CONNACK.
    Client(ProtocolVersion),
    /// A client decoder of this version that has not seen CONNACK yet.
    FreshClient(ProtocolVersion),
}

fn decoder(side: Side) -> Decoder {
    match side {
        Side::Fresh => Decoder::new(u32::MAX),
        Side::Server(v) => server(v),
        Side::Client(v) => client(v),
        Side::FreshClient(v) => {
            let mut d = Decoder::new_client(u32::MAX);
            d.set_version(v);
            d
        }
    }
}

#[rustfmt::skip]
fn refusals() -> Vec<(&'static str, Side, Vec<u8>, DecodeError)> {
    use Side::*;
    let m = |what| Malformed(what);
    let p = |what| Protocol(what);
    let pub5 = |props: &[u8]| pkt(0x30, &cat(&[&s(b"t"), &prop_len(props), props]));
    vec![
        // Fixed header.
        ("type 0", Fresh, pkt(0x00, &[]), m("packet type 0 is reserved")),
        ("type 0 later", Server(V5), pkt(0x00, &[]), m("packet type 0 is reserved")),
        ("PUBREL flags 0", Server(V5), pkt(0x60, &[0, 1]), m("fixed header flags must be 0010")),
        ("SUBSCRIBE flags 0", Server(V4), pkt(0x80, &cat(&[&[0, 1], &s(b"a"), &[0]])), m("fixed header flags must be 0010")),
        ("UNSUBSCRIBE flags 0", Server(V4), pkt(0xA0, &cat(&[&[0, 1], &s(b"a")])), m("fixed header flags must be 0010")),
        ("PUBACK flags", Server(V4), pkt(0x41, &[0, 1]), m("fixed header flags must be 0000")),
        ("PINGREQ flags", Server(V4), pkt(0xC8, &[]), m("fixed header flags must be 0000")),
        ("DISCONNECT flags", Server(V5), pkt(0xE1, &[]), m("fixed header flags must be 0000")),
        ("CONNECT flags", Fresh, vec![0x12, 0], m("fixed header flags must be 0000")),
        ("PUBLISH QoS 3", Server(V4), pkt(0x36, &cat(&[&s(b"t"), &[0, 1]])), m("PUBLISH with QoS 3")),
        ("PUBLISH DUP QoS 0", Server(V4), pkt(0x38, &s(b"t")), m("PUBLISH with DUP set and QoS 0")),
        ("AUTH in 3.1.1", Server(V4), pkt(0xF0, &[]), m("AUTH does not exist before MQTT 5")),
        ("AUTH in 3.1", Server(V31), pkt(0xF0, &[]), m("AUTH does not exist before MQTT 5")),
        ("AUTH to a 3.x client", Client(V4), pkt(0xF0, &[]), m("AUTH does not exist before MQTT 5")),
        ("varint of 5 bytes", Server(V4), vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01], m("variable byte integer longer than 4 bytes")),
        ("varint not minimal", Server(V4), vec![0xC0, 0x80, 0x00], m("variable byte integer not minimally encoded")),
        // Direction and order.
        ("CONNACK to server", Server(V5), pkt(0x20, &[0, 0, 0]), p("packet only a server sends")),
        ("SUBACK to server", Server(V4), pkt(0x90, &[0, 1, 0]), p("packet only a server sends")),
        ("UNSUBACK to server", Server(V4), pkt(0xB0, &[0, 1]), p("packet only a server sends")),
        ("PINGRESP to server", Server(V4), pkt(0xD0, &[]), p("packet only a server sends")),
        ("PINGREQ first", Fresh, pkt(0xC0, &[]), p("first packet must be CONNECT")),
        ("PUBLISH first", Fresh, pkt(0x30, &s(b"t")), p("first packet must be CONNECT")),
        ("AUTH first", Fresh, pkt(0xF0, &[]), p("first packet must be CONNECT")),
        ("second CONNECT", Server(V4), connect(b"MQTT", 4, 2, &cat(&[&[0, 0], &s(b"a")])), p("second CONNECT")),
        ("CONNECT to client", Client(V5), connect(b"MQTT", 5, 2, &cat(&[&[0, 0, 0], &s(b"a")])), p("packet only a client sends")),
        ("SUBSCRIBE to client", Client(V4), pkt(0x82, &cat(&[&[0, 1], &s(b"a"), &[0]])), p("packet only a client sends")),
        ("UNSUBSCRIBE to client", Client(V4), pkt(0xA2, &cat(&[&[0, 1], &s(b"a")])), p("packet only a client sends")),
        ("PINGREQ to client", Client(V4), pkt(0xC0, &[]), p("packet only a client sends")),
        ("second CONNACK", Client(V4), pkt(0x20, &[0, 0]), p("second CONNACK")),
        // CONNECT.
        ("MQTT level 3", Fresh, connect(b"MQTT", 3, 2, &cat(&[&[0, 0], &s(b"a")])), UnsupportedProtocolVersion(3)),
        ("MQTT level 6", Fresh, connect(b"MQTT", 6, 2, &cat(&[&[0, 0], &s(b"a")])), UnsupportedProtocolVersion(6)),
        ("MQTT bridge level", Fresh, connect(b"MQTT", 0x84, 2, &cat(&[&[0, 0], &s(b"a")])), UnsupportedProtocolVersion(0x84)),
        ("MQIsdp level 4", Fresh, connect(b"MQIsdp", 4, 2, &cat(&[&[0, 0], &s(b"a")])), UnsupportedProtocolVersion(4)),
        ("other name", Fresh, connect(b"HTTP", 4, 2, &cat(&[&[0, 0], &s(b"a")])), InvalidProtocolName),
        ("lower-case name", Fresh, connect(b"mqtt", 4, 2, &cat(&[&[0, 0], &s(b"a")])), InvalidProtocolName),
        ("reserved flag", Fresh, connect(b"MQTT", 4, 3, &cat(&[&[0, 0], &s(b"a")])), m("CONNECT reserved flag set")),
        ("will QoS without will", Fresh, connect(b"MQTT", 4, 0x0a, &cat(&[&[0, 0], &s(b"a")])), m("will QoS or will retain set without the will flag")),
        ("will retain without will", Fresh, connect(b"MQTT", 4, 0x22, &cat(&[&[0, 0], &s(b"a")])), m("will QoS or will retain set without the will flag")),
        ("will QoS 3", Fresh, connect(b"MQTT", 4, 0x1e, &cat(&[&[0, 0], &s(b"a"), &s(b"t"), &s(b"p")])), m("will QoS 3")),
        ("3.1.1 password without user", Fresh, connect(b"MQTT", 4, 0x42, &cat(&[&[0, 0], &s(b"a"), &s(b"pw")])), m("password flag set without the user name flag")),
        ("3.1 password without user", Fresh, connect(b"MQIsdp", 3, 0x42, &cat(&[&[0, 0], &s(b"a"), &s(b"pw")])), m("password flag set without the user name flag")),
        ("will topic with wildcard", Fresh, connect(b"MQTT", 4, 0x06, &cat(&[&[0, 0], &s(b"a"), &s(b"a/+"), &s(b"p")])), m("will topic is not a valid topic name")),
        ("empty will topic", Fresh, connect(b"MQTT", 4, 0x06, &cat(&[&[0, 0], &s(b"a"), &s(b""), &s(b"p")])), m("will topic is not a valid topic name")),
        ("trailing bytes", Fresh, connect(b"MQTT", 4, 2, &cat(&[&[0, 0], &s(b"a"), &[0]])), m("bytes after the last CONNECT field")),
        ("missing password", Fresh, connect(b"MQTT", 4, 0xc2, &cat(&[&[0, 0], &s(b"a"), &s(b"u")])), m("field runs past the end of the packet")),
        ("client id past end", Fresh, connect(b"MQTT", 4, 2, &[0, 0, 0, 5, b'a']), m("field runs past the end of the packet")),
        ("client id bad UTF-8", Fresh, connect(b"MQTT", 4, 2, &cat(&[&[0, 0], &s(b"\xff\xfe")])), m("invalid UTF-8")),
        ("client id surrogate", Fresh, connect(b"MQTT", 4, 2, &cat(&[&[0, 0], &s(b"\xed\xa0\x80")])), m("invalid UTF-8")),
        ("client id NUL", Fresh, connect(b"MQTT", 4, 2, &cat(&[&[0, 0], &s(b"a\0")])), m("string contains U+0000")),
        ("user name bad UTF-8", Fresh, connect(b"MQTT", 4, 0x82, &cat(&[&[0, 0], &s(b"a"), &s(b"\xc3")])), m("invalid UTF-8")),
        // MQTT 5 properties, in CONNECT.
        ("property length past end", Fresh, connect(b"MQTT", 5, 2, &cat(&[&[0, 0, 9], &s(b"a")])), m("property length runs past the end of the packet")),
        ("property value past length", Fresh, connect5(&[0x11, 0, 0]), m("field runs past the end of the packet")),
        ("unknown property", Fresh, connect5(&[0x7f, 0]), m("unknown property identifier")),
        ("property id 0", Fresh, connect5(&[0x00, 0]), m("unknown property identifier")),
        ("topic alias in CONNECT", Fresh, connect5(&[0x23, 0, 1]), p("property not allowed in this packet")),
        ("will delay in CONNECT", Fresh, connect5(&[0x18, 0, 0, 0, 1]), p("property not allowed in this packet")),
        ("session expiry twice", Fresh, connect5(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1]), p("property included more than once")),
        ("receive maximum 0", Fresh, connect5(&[0x21, 0, 0]), p("receive maximum 0")),
        ("maximum packet size 0", Fresh, connect5(&[0x27, 0, 0, 0, 0]), p("maximum packet size 0")),
        ("request problem 2", Fresh, connect5(&[0x17, 2]), p("request problem information is not 0 or 1")),
        ("request response 2", Fresh, connect5(&[0x19, 2]), p("request response information is not 0 or 1")),
        ("auth data without method", Fresh, connect5(&cat(&[&[0x16], &s(b"d")])), p("authentication data without an authentication method")),
        ("user property bad UTF-8", Fresh, connect5(&cat(&[&[0x26], &s(b"k"), &s(b"\xff")])), m("invalid UTF-8")),
        ("will: topic alias", Fresh, connect5_will(&[0x23, 0, 1], b"t"), p("property not allowed in this packet")),
        ("will: session expiry", Fresh, connect5_will(&[0x11, 0, 0, 0, 1], b"t"), p("property not allowed in this packet")),
        ("will: payload format 2", Fresh, connect5_will(&[0x01, 2], b"t"), p("payload format indicator is not 0 or 1")),
        ("will: wildcard response topic", Fresh, connect5_will(&cat(&[&[0x08], &s(b"r/#")]), b"t"), p("response topic is not a valid topic name")),
        ("will: delay twice", Fresh, connect5_will(&[0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 1], b"t"), p("property included more than once")),
        ("will: wildcard topic", Fresh, connect5_will(&[], b"#"), m("will topic is not a valid topic name")),
        // PUBLISH.
        ("topic with +", Server(V4), pkt(0x30, &s(b"a/+")), m("wildcard in a PUBLISH topic")),
        ("topic with #", Server(V5), pkt(0x30, &cat(&[&s(b"#"), &[0]])), m("wildcard in a PUBLISH topic")),
        ("topic bad UTF-8", Server(V4), pkt(0x30, &s(b"\xc0\xaf")), m("invalid UTF-8")),
        ("topic NUL", Server(V4), pkt(0x30, &s(b"a\0")), m("string contains U+0000")),
        ("topic past end", Server(V4), pkt(0x30, &[0, 9, b'a']), m("field runs past the end of the packet")),
        ("empty topic 3.1.1", Server(V4), pkt(0x30, &s(b"")), m("PUBLISH with an empty topic")),
        ("empty topic 5 no alias", Server(V5), pkt(0x30, &cat(&[&s(b""), &[0]])), p("PUBLISH with an empty topic and no topic alias")),
        ("QoS 1 packet id 0 v5", Server(V5), pkt(0x32, &cat(&[&s(b"t"), &[0, 0, 0]])), p("PUBLISH with packet identifier 0")),
        ("QoS 2 packet id 0 3.1.1", Server(V4), pkt(0x34, &cat(&[&s(b"t"), &[0, 0]])), m("PUBLISH with packet identifier 0")),
        ("QoS 1 no packet id", Server(V4), pkt(0x32, &s(b"t")), m("field runs past the end of the packet")),
        ("v5 no property length", Server(V5), pkt(0x30, &s(b"t")), m("field runs past the end of the packet")),
        ("client PUBLISH with subscription id", Server(V5), pub5(&[0x0b, 1]), p("property not allowed in this packet")),
        ("payload format 2", Server(V5), pub5(&[0x01, 2]), p("payload format indicator is not 0 or 1")),
        ("response topic wildcard", Server(V5), pub5(&cat(&[&[0x08], &s(b"a/+")])), p("response topic is not a valid topic name")),
        ("content type twice", Server(V5), pub5(&cat(&[&[0x03], &s(b"a"), &[0x03], &s(b"b")])), p("property included more than once")),
        ("session expiry in PUBLISH", Server(V5), pub5(&[0x11, 0, 0, 0, 0]), p("property not allowed in this packet")),
        ("subscription id 0 to client", Client(V5), pub5(&[0x0b, 0]), p("subscription identifier 0")),
        ("subscription id of 5 bytes", Client(V5), pub5(&[0x0b, 0xff, 0xff, 0xff, 0xff, 0x01]), m("variable byte integer longer than 4 bytes")),
        // PUBACK, PUBREC, PUBREL, PUBCOMP.
        ("PUBACK packet id 0", Server(V4), pkt(0x40, &[0, 0]), p("acknowledgement with packet identifier 0")),
        ("PUBREL packet id 0 v5", Server(V5), pkt(0x62, &[0, 0]), p("acknowledgement with packet identifier 0")),
        ("PUBACK too short", Server(V4), pkt(0x40, &[0]), m("field runs past the end of the packet")),
        ("PUBACK 3.1.1 long", Server(V4), pkt(0x40, &[0, 1, 0]), m("acknowledgement longer than 2 bytes")),
        ("PUBCOMP 3.1 long", Server(V31), pkt(0x70, &[0, 1, 0, 0]), m("acknowledgement longer than 2 bytes")),
        ("PUBACK bad reason", Server(V5), pkt(0x40, &[0, 1, 0x92]), p("invalid acknowledgement reason code")),
        ("PUBREL bad reason", Server(V5), pkt(0x62, &[0, 1, 0x10]), p("invalid acknowledgement reason code")),
        ("PUBACK trailing", Server(V5), pkt(0x40, &[0, 1, 0, 0, 0]), m("bytes after the acknowledgement properties")),
        ("PUBACK property", Server(V5), pkt(0x40, &[0, 1, 0, 3, 0x23, 0, 1]), p("property not allowed in this packet")),
        ("PUBACK reason string twice", Server(V5), pkt(0x40, &cat(&[&[0, 1, 0, 8, 0x1f], &s(b"a"), &[0x1f], &s(b"b")])), p("property included more than once")),
        // SUBSCRIBE.
        ("SUBSCRIBE packet id 0 3.1.1", Server(V4), pkt(0x82, &cat(&[&[0, 0], &s(b"a"), &[0]])), m("packet identifier 0")),
        ("SUBSCRIBE packet id 0 v5", Server(V5), pkt(0x82, &cat(&[&[0, 0, 0], &s(b"a"), &[0]])), p("packet identifier 0")),
        ("SUBSCRIBE no filter 3.1.1", Server(V4), pkt(0x82, &[0, 1]), m("SUBSCRIBE without a topic filter")),
        ("SUBSCRIBE no filter v5", Server(V5), pkt(0x82, &[0, 1, 0]), p("SUBSCRIBE without a topic filter")),
        ("SUBSCRIBE 3.1.1 option bit 2", Server(V4), pkt(0x82, &cat(&[&[0, 1], &s(b"a"), &[0x04]])), m("reserved subscription option bits set")),
        ("SUBSCRIBE 3.1 option bit 7", Server(V31), pkt(0x82, &cat(&[&[0, 1], &s(b"a"), &[0x80]])), m("reserved subscription option bits set")),
        ("SUBSCRIBE v5 option bit 6", Server(V5), pkt(0x82, &cat(&[&[0, 1, 0], &s(b"a"), &[0x40]])), m("reserved subscription option bits set")),
        ("SUBSCRIBE QoS 3", Server(V5), pkt(0x82, &cat(&[&[0, 1, 0], &s(b"a"), &[0x03]])), m("subscription with QoS 3")),
        ("SUBSCRIBE QoS 3 3.1.1", Server(V4), pkt(0x82, &cat(&[&[0, 1], &s(b"a"), &[0x03]])), m("subscription with QoS 3")),
        ("SUBSCRIBE retain handling 3", Server(V5), pkt(0x82, &cat(&[&[0, 1, 0], &s(b"a"), &[0x30]])), p("retain handling 3")),
        ("SUBSCRIBE empty filter", Server(V4), pkt(0x82, &cat(&[&[0, 1], &s(b""), &[0]])), m("empty topic filter")),
        ("SUBSCRIBE filter NUL", Server(V5), pkt(0x82, &cat(&[&[0, 1, 0], &s(b"a\0"), &[0]])), m("string contains U+0000")),
        ("SUBSCRIBE filter bad UTF-8", Server(V4), pkt(0x82, &cat(&[&[0, 1], &s(b"\x80"), &[0]])), m("invalid UTF-8")),
        ("SUBSCRIBE missing options", Server(V4), pkt(0x82, &cat(&[&[0, 1], &s(b"a")])), m("field runs past the end of the packet")),
        ("SUBSCRIBE subscription id 0", Server(V5), pkt(0x82, &cat(&[&[0, 1, 2, 0x0b, 0], &s(b"a"), &[0]])), p("subscription identifier 0")),
        ("SUBSCRIBE subscription id twice", Server(V5), pkt(0x82, &cat(&[&[0, 1, 4, 0x0b, 1, 0x0b, 2], &s(b"a"), &[0]])), p("property included more than once")),
        ("SUBSCRIBE reason string", Server(V5), pkt(0x82, &cat(&[&[0, 1, 4, 0x1f], &s(b"r"), &s(b"a"), &[0]])), p("property not allowed in this packet")),
        ("SUBSCRIBE no local shared", Server(V5), pkt(0x82, &cat(&[&[0, 1, 0], &s(b"$share/g/a"), &[0x04]])), p("no local set on a shared subscription")),
        // UNSUBSCRIBE.
        ("UNSUBSCRIBE packet id 0 3.1.1", Server(V4), pkt(0xA2, &cat(&[&[0, 0], &s(b"a")])), m("packet identifier 0")),
        ("UNSUBSCRIBE packet id 0 v5", Server(V5), pkt(0xA2, &cat(&[&[0, 0, 0], &s(b"a")])), p("packet identifier 0")),
        ("UNSUBSCRIBE no filter 3.1.1", Server(V4), pkt(0xA2, &[0, 1]), m("UNSUBSCRIBE without a topic filter")),
        ("UNSUBSCRIBE no filter v5", Server(V5), pkt(0xA2, &[0, 1, 0]), p("UNSUBSCRIBE without a topic filter")),
        ("UNSUBSCRIBE empty filter", Server(V5), pkt(0xA2, &cat(&[&[0, 1, 0], &s(b"")])), m("empty topic filter")),
        ("UNSUBSCRIBE subscription id", Server(V5), pkt(0xA2, &cat(&[&[0, 1, 2, 0x0b, 1], &s(b"a")])), p("property not allowed in this packet")),
        ("UNSUBSCRIBE filter past end", Server(V4), pkt(0xA2, &[0, 1, 0, 3, b'a']), m("field runs past the end of the packet")),
        // PINGREQ, DISCONNECT, AUTH.
        ("PINGREQ body", Server(V5), pkt(0xC0, &[0]), m("PINGREQ with a body")),
        ("PINGRESP body", Client(V4), pkt(0xD0, &[0]), m("PINGRESP with a body")),
        ("DISCONNECT 3.1.1 body", Server(V4), pkt(0xE0, &[0]), m("3.x DISCONNECT with a body")),
        ("DISCONNECT bad reason", Server(V5), pkt(0xE0, &[0x05]), p("invalid DISCONNECT reason code")),
        ("DISCONNECT topic alias", Server(V5), pkt(0xE0, &[0, 3, 0x23, 0, 1]), p("property not allowed in this packet")),
        ("DISCONNECT trailing", Server(V5), pkt(0xE0, &[0, 0, 1]), m("bytes after the DISCONNECT properties")),
        ("AUTH bad reason", Server(V5), pkt(0xF0, &[0x01]), p("invalid AUTH reason code")),
        ("AUTH data without method", Server(V5), pkt(0xF0, &cat(&[&[0x18, 4, 0x16], &s(b"d")])), p("authentication data without an authentication method")),
        ("AUTH session expiry", Server(V5), pkt(0xF0, &[0x18, 5, 0x11, 0, 0, 0, 0]), p("property not allowed in this packet")),
        // Server packets, decoded by a client.
        ("first packet not CONNACK", FreshClient(V4), pkt(0xD0, &[]), p("first packet must be CONNACK")),
        ("CONNACK reserved flags", FreshClient(V4), pkt(0x20, &[2, 0]), m("CONNACK reserved flags set")),
        ("CONNACK session present refused", FreshClient(V4), pkt(0x20, &[1, 5]), p("session present set on a refused connection")),
        ("CONNACK 3.x code 6", FreshClient(V4), pkt(0x20, &[0, 6]), p("invalid CONNACK reason code")),
        ("CONNACK v5 bad reason", FreshClient(V5), pkt(0x20, &[0, 0x01, 0]), p("invalid CONNACK reason code")),
        ("CONNACK v5 topic alias", FreshClient(V5), pkt(0x20, &[0, 0, 3, 0x23, 0, 1]), p("property not allowed in this packet")),
        ("CONNACK v5 maximum QoS 2", FreshClient(V5), pkt(0x20, &[0, 0, 2, 0x24, 2]), p("maximum QoS is not 0 or 1")),
        ("CONNACK 3.x long", FreshClient(V4), pkt(0x20, &[0, 0, 0]), m("bytes after the CONNACK properties")),
        ("SUBACK no codes v5", Client(V5), pkt(0x90, &[0, 1, 0]), p("SUBACK without a return code")),
        ("SUBACK no codes 3.1.1", Client(V4), pkt(0x90, &[0, 1]), m("SUBACK without a return code")),
        ("SUBACK bad code 3.1.1", Client(V4), pkt(0x90, &[0, 1, 3]), p("invalid SUBACK return code")),
        ("SUBACK bad code v5", Client(V5), pkt(0x90, &[0, 1, 0, 0x81]), p("invalid SUBACK return code")),
        ("UNSUBACK 3.1.1 long", Client(V4), pkt(0xB0, &[0, 1, 0]), m("3.x UNSUBACK longer than 2 bytes")),
        ("UNSUBACK v5 no reasons", Client(V5), pkt(0xB0, &[0, 1, 0]), p("UNSUBACK without a reason code")),
        ("UNSUBACK v5 bad reason", Client(V5), pkt(0xB0, &[0, 1, 0, 0x10]), p("invalid UNSUBACK reason code")),
    ]
}

#[test]
fn every_refusal_has_its_exact_variant() {
    for (name, side, bytes, expected) in refusals() {
        assert_eq!(decode(decoder(side), &bytes), Err(expected), "{name}");
    }
}

#[test]
fn reason_codes_follow_the_variant() {
    assert_eq!(Malformed("x").reason_code(), 0x81);
    assert_eq!(Protocol("x").reason_code(), 0x82);
    assert_eq!(TooLarge { size: 10, max: 5 }.reason_code(), 0x95);
    assert_eq!(UnsupportedProtocolVersion(6).reason_code(), 0x84);
    assert_eq!(InvalidProtocolName.reason_code(), 0x84);
}

#[test]
fn topic_alias_0_is_left_to_the_broker() {
    // The broker answers it with DISCONNECT 0x94 (Topic Alias invalid), as
    // for an alias beyond its maximum; the codec must let it through.
    let props = [0x23, 0, 0];
    let bytes = pkt(0x30, &cat(&[&s(b"t"), &prop_len(&props), &props]));
    let p = decode(server(ProtocolVersion::V5), &bytes);
    assert!(matches!(p, Ok(Some(Packet::Publish(p))) if p.properties.topic_alias == Some(0)));
}

#[test]
fn accepted_edge_cases_decode() {
    // 3.1 CONNECT with an empty client id (the broker decides).
    let d = Decoder::new(u32::MAX);
    let c = decode(d, &connect(b"MQIsdp", 3, 2, &cat(&[&[0, 0], &s(b"")])));
    assert!(matches!(c, Ok(Some(Packet::Connect(c))) if c.client_id.is_empty()));
    // v5 password without user name.
    let d = Decoder::new(u32::MAX);
    let c = decode(
        d,
        &connect(b"MQTT", 5, 0x42, &cat(&[&[0, 0, 0], &s(b"a"), &s(b"pw")])),
    );
    assert!(
        matches!(c, Ok(Some(Packet::Connect(c))) if c.password.is_some() && c.username.is_none())
    );
    // User properties repeat, in order.
    let c = decode(
        Decoder::new(u32::MAX),
        &connect5(&cat(&[
            &[0x26],
            &s(b"k"),
            &s(b"1"),
            &[0x26],
            &s(b"k"),
            &s(b"2"),
        ])),
    );
    let Ok(Some(Packet::Connect(c))) = c else {
        panic!("{c:?}")
    };
    assert_eq!(
        c.properties.user_properties,
        [("k".into(), "1".into()), ("k".into(), "2".into())]
    );
    // v5 short forms: PUBACK with reason only, DISCONNECT with reason only.
    assert_eq!(
        decode(server(V5), &pkt(0x40, &[0, 1, 0x10])),
        Ok(Some(Packet::PubAck(PubResponse {
            reason: 0x10,
            ..PubResponse::new(1)
        })))
    );
    assert_eq!(
        decode(server(V5), &pkt(0xE0, &[0x04])),
        Ok(Some(Packet::Disconnect(Disconnect {
            reason: 4,
            ..Disconnect::default()
        })))
    );
    // Invalid filters are returned for the broker to answer.
    let sub = decode(
        server(V5),
        &pkt(0x82, &cat(&[&[0, 1, 0], &s(b"a/#/b"), &[0]])),
    );
    assert!(matches!(sub, Ok(Some(Packet::Subscribe(s))) if s.filters[0].0 == "a/#/b"));
    // AUTH may precede CONNACK on a client.
    let mut d = Decoder::new_client(u32::MAX);
    d.set_version(V5);
    assert_eq!(
        decode(d, &pkt(0xF0, &[])),
        Ok(Some(Packet::Auth(Auth::default())))
    );
    // A client decoder without a version refuses to guess.
    assert_eq!(
        decode(Decoder::new_client(u32::MAX), &pkt(0x20, &[0, 0])),
        Err(Protocol(
            "client decoder has no protocol version (set_version)"
        ))
    );
}

#[test]
fn version_is_known_even_when_the_rest_of_connect_is_refused() {
    let mut d = Decoder::new(u32::MAX);
    assert_eq!(d.version(), None);
    let mut buf = BytesMut::from(&connect5(&[0x21, 0, 0])[..]);
    assert!(d.decode(&mut buf).is_err());
    assert_eq!(d.version(), Some(V5));
    let mut d = Decoder::new(u32::MAX);
    let mut buf = BytesMut::from(&connect(b"MQTT", 7, 2, &[0, 0, 0, 0])[..]);
    assert_eq!(d.decode(&mut buf), Err(UnsupportedProtocolVersion(7)));
    assert_eq!(d.version(), None);
}

#[test]
fn payload_and_binary_fields_share_the_input_buffer() {
    let mut d = server(V5);
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t".into(),
        packet_id: None,
        properties: PublishProperties {
            correlation_data: Some(bytes::Bytes::from_static(b"corr")),
            ..PublishProperties::default()
        },
        payload: bytes::Bytes::from(vec![9u8; 1000]),
    });
    let mut buf = encoded(&publish, V5);
    let range = buf.as_ptr_range();
    let Some(Packet::Publish(p)) = d.decode(&mut buf).unwrap() else {
        panic!("not a PUBLISH")
    };
    assert!(range.contains(&p.payload.as_ptr()));
    let corr = p.properties.correlation_data.unwrap();
    assert!(range.contains(&corr.as_ptr()));
}

#[test]
fn oversized_header_is_refused_before_the_body_arrives_and_without_allocating() {
    let mut d = server(V4);
    let mut buf = BytesMut::with_capacity(64);
    // PUBLISH claiming 200 MB.
    buf.put_u8(0x30);
    buf.put_slice(&varint(200_000_000));
    let capacity = buf.capacity();
    d.set_max_packet_size(1 << 20);
    assert_eq!(
        d.decode(&mut buf),
        Err(TooLarge {
            size: 5 + 200_000_000,
            max: 1 << 20
        })
    );
    assert_eq!(buf.capacity(), capacity);
    assert_eq!(buf.len(), 5);
}

#[test]
fn max_packet_size_counts_the_fixed_header() {
    let publish = |payload: usize| pkt(0x30, &cat(&[&s(b"t"), &vec![0u8; payload]]));
    // 2 header bytes + 3 topic bytes + 5 payload = 10.
    let mut d = server(V4);
    d.set_max_packet_size(10);
    assert_eq!(d.max_packet_size(), 10);
    assert!(matches!(decode(d.clone(), &publish(5)), Ok(Some(_))));
    assert_eq!(decode(d, &publish(6)), Err(TooLarge { size: 11, max: 10 }));
    // CONNECT is bounded too.
    let d = Decoder::new(5);
    assert_eq!(
        decode(d, &connect(b"MQTT", 4, 2, &cat(&[&[0, 0], &s(b"a")]))),
        Err(TooLarge { size: 15, max: 5 })
    );
}

/// All client packets of every version, then the same as a server sees
/// them; returns (buffer, packets).
fn stream(version: ProtocolVersion) -> (Vec<u8>, Vec<Packet>) {
    let packets = client_packets(version);
    let mut buf = BytesMut::new();
    for p in &packets {
        encode(p, version, &mut buf);
    }
    (buf.to_vec(), packets)
}

fn drain(d: &mut Decoder, buf: &mut BytesMut, out: &mut Vec<Packet>) {
    loop {
        let len = buf.len();
        match d.decode(buf) {
            Ok(Some(p)) => out.push(p),
            Ok(None) => {
                assert_eq!(buf.len(), len, "Ok(None) must not consume");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn partial_input_waits_at_every_split_point() {
    for version in VERSIONS {
        let (bytes, packets) = stream(version);
        for split in 0..=bytes.len() {
            let mut d = Decoder::new(u32::MAX);
            let mut buf = BytesMut::from(&bytes[..split]);
            let mut got = Vec::new();
            drain(&mut d, &mut buf, &mut got);
            buf.extend_from_slice(&bytes[split..]);
            drain(&mut d, &mut buf, &mut got);
            assert_eq!(got, packets, "{version:?} split at {split}");
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn byte_by_byte_input_decodes_the_same_packets() {
    for version in VERSIONS {
        let mut bytes = Vec::new();
        let packets = server_packets(version);
        for p in &packets {
            let mut b = BytesMut::new();
            encode(p, version, &mut b);
            bytes.extend_from_slice(&b);
        }
        let mut d = Decoder::new_client(u32::MAX);
        d.set_version(version);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &byte in &bytes {
            buf.put_u8(byte);
            drain(&mut d, &mut buf, &mut got);
        }
        assert_eq!(got, packets, "{version:?}");
    }
}
