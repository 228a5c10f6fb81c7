//! Encoder tests: exact bytes for the short forms, and decode(encode(p)) == p
//! for every packet type in every version. The sample packets are shared
//! with the decoder's fuzz test.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::decode::Decoder;

pub(crate) const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

fn user(v5: bool) -> Vec<UserProperty> {
    if v5 {
        vec![("k".into(), "v".into()), ("k".into(), "v2".into())]
    } else {
        Vec::new()
    }
}

fn reason_props(v5: bool) -> ReasonProperties {
    ReasonProperties {
        reason_string: v5.then(|| "because".into()),
        user_properties: user(v5),
    }
}

fn message_props(v5: bool, from_server: bool) -> PublishProperties {
    if !v5 {
        return PublishProperties::default();
    }
    PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        topic_alias: None,
        response_topic: Some("reply/to".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: user(v5),
        subscription_identifiers: if from_server {
            vec![1, 268_435_455, 300]
        } else {
            Vec::new()
        },
        content_type: Some("text/plain".into()),
    }
}

pub(crate) fn connect(version: ProtocolVersion) -> Connect {
    let v5 = version.is_v5();
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        client_id: "client-1".into(),
        will: Some(Will {
            topic: "will/topic".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: true,
            delay_interval: v5.then_some(5),
            properties: message_props(v5, false),
        }),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"secret\x00\xff")),
        properties: if v5 {
            ConnectProperties {
                session_expiry_interval: Some(120),
                receive_maximum: Some(10),
                maximum_packet_size: Some(65536),
                topic_alias_maximum: Some(8),
                request_response_information: Some(true),
                request_problem_information: Some(false),
                user_properties: user(v5),
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"data")),
            }
        } else {
            ConnectProperties::default()
        },
    }
}

/// Every packet a client sends, CONNECT first.
pub(crate) fn client_packets(version: ProtocolVersion) -> Vec<Packet> {
    let v5 = version.is_v5();
    let ack = |packet_id| PubResponse {
        packet_id,
        reason: if v5 { 0x10 } else { 0 },
        properties: reason_props(v5),
    };
    let mut packets = vec![
        Packet::Connect(Box::new(connect(version))),
        publish(version, QoS::AtMostOnce, false),
        publish(version, QoS::AtLeastOnce, false),
        publish(version, QoS::ExactlyOnce, false),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "empty/payload".into(),
            packet_id: Some(65535),
            properties: PublishProperties::default(),
            payload: Bytes::new(),
        }),
        Packet::PubAck(PubResponse::new(1)),
        Packet::PubAck(ack(2)),
        Packet::PubRec(PubResponse::new(3)),
        Packet::PubRec(ack(4)),
        Packet::PubRel(PubResponse::new(5)),
        Packet::PubComp(PubResponse::new(6)),
        Packet::Subscribe(Subscribe {
            packet_id: 7,
            filters: vec![
                (
                    "a/+/b".into(),
                    SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        no_local: v5,
                        retain_as_published: v5,
                        retain_handling: if v5 {
                            RetainHandling::DoNotSend
                        } else {
                            RetainHandling::SendAtSubscribe
                        },
                    },
                ),
                ("#".into(), SubscriptionOptions::default()),
                // Invalid filters still decode: the broker answers them.
                ("a/#/b".into(), SubscriptionOptions::default()),
            ],
            subscription_identifier: v5.then_some(16_384),
            user_properties: user(v5),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 8,
            filters: vec!["a/+/b".into(), "#".into()],
            user_properties: user(v5),
        }),
        Packet::PingReq,
        Packet::Disconnect(Disconnect::default()),
    ];
    if v5 {
        packets.extend([
            Packet::PubRel(PubResponse {
                packet_id: 9,
                reason: 0x92,
                properties: ReasonProperties::default(),
            }),
            Packet::PubComp(PubResponse {
                packet_id: 10,
                reason: 0,
                properties: reason_props(v5),
            }),
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: String::new(),
                packet_id: None,
                properties: PublishProperties {
                    topic_alias: Some(3),
                    ..PublishProperties::default()
                },
                payload: Bytes::from_static(b"aliased"),
            }),
            Packet::Disconnect(Disconnect {
                reason: 0x04,
                ..Disconnect::default()
            }),
            Packet::Disconnect(Disconnect {
                reason: 0,
                session_expiry_interval: Some(0),
                reason_string: Some("bye".into()),
                user_properties: user(v5),
                server_reference: None,
            }),
            Packet::Auth(Auth::default()),
            Packet::Auth(Auth {
                reason: 0x18,
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"\x01\x02")),
                reason_string: Some("more".into()),
                user_properties: user(v5),
            }),
        ]);
    }
    packets
}

fn publish(version: ProtocolVersion, qos: QoS, from_server: bool) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: qos == QoS::ExactlyOnce,
        topic: "sensors/1/temperature".into(),
        packet_id: (qos != QoS::AtMostOnce).then_some(42),
        properties: message_props(version.is_v5(), from_server),
        payload: Bytes::from_static(b"21.5 \x00\xff binary ok"),
    })
}

/// Every packet a server sends, CONNACK first.
pub(crate) fn server_packets(version: ProtocolVersion) -> Vec<Packet> {
    let v5 = version.is_v5();
    let mut packets = vec![
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: 0,
            properties: if v5 {
                ConnAckProperties {
                    session_expiry_interval: Some(60),
                    receive_maximum: Some(32),
                    maximum_qos: Some(1),
                    retain_available: Some(true),
                    maximum_packet_size: Some(1 << 20),
                    assigned_client_identifier: Some("auto-1".into()),
                    topic_alias_maximum: Some(64),
                    reason_string: Some("welcome".into()),
                    user_properties: user(v5),
                    wildcard_subscription_available: Some(true),
                    subscription_identifiers_available: Some(false),
                    shared_subscription_available: Some(true),
                    server_keep_alive: Some(30),
                    response_information: Some("resp".into()),
                    server_reference: Some("other:1883".into()),
                    authentication_method: Some("SCRAM".into()),
                    authentication_data: Some(Bytes::from_static(b"x")),
                }
            } else {
                ConnAckProperties::default()
            },
        }),
        publish(version, QoS::AtMostOnce, true),
        publish(version, QoS::ExactlyOnce, true),
        Packet::PubAck(PubResponse::new(1)),
        Packet::PubRec(PubResponse::new(2)),
        Packet::PubRel(PubResponse::new(3)),
        Packet::PubComp(PubResponse::new(4)),
        Packet::SubAck(SubAck {
            packet_id: 5,
            return_codes: vec![0, 1, 2, 0x80],
            properties: reason_props(v5),
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: 6,
            reasons: if v5 { vec![0, 0x11] } else { Vec::new() },
            properties: reason_props(v5),
        }),
        Packet::PingResp,
    ];
    if v5 {
        packets.extend([
            Packet::PubAck(PubResponse {
                packet_id: 7,
                reason: 0x97,
                properties: ReasonProperties::default(),
            }),
            Packet::SubAck(SubAck {
                packet_id: 8,
                return_codes: vec![0x8F, 0xA2],
                properties: ReasonProperties::default(),
            }),
            Packet::Disconnect(Disconnect {
                reason: 0x9C,
                session_expiry_interval: None,
                reason_string: None,
                user_properties: Vec::new(),
                server_reference: Some("other:1883".into()),
            }),
            Packet::Auth(Auth {
                reason: 0x18,
                authentication_method: Some("SCRAM".into()),
                authentication_data: None,
                reason_string: None,
                user_properties: Vec::new(),
            }),
        ]);
    }
    packets
}

pub(crate) fn encoded(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    encode(packet, version, &mut out);
    out
}

fn round_trip(mut decoder: Decoder, packets: &[Packet], version: ProtocolVersion) -> Decoder {
    for packet in packets {
        let mut buf = encoded(packet, version);
        let decoded = decoder
            .decode(&mut buf)
            .unwrap_or_else(|e| panic!("{version:?} {}: {e}", packet.name()));
        assert_eq!(decoded.as_ref(), Some(packet), "{version:?}");
        assert!(buf.is_empty());
    }
    decoder
}

#[test]
fn client_packets_round_trip_in_every_version() {
    for version in VERSIONS {
        let decoder = round_trip(Decoder::new(u32::MAX), &client_packets(version), version);
        assert_eq!(decoder.version(), Some(version));
    }
}

#[test]
fn minimal_connect_round_trips() {
    for version in VERSIONS {
        let mut c = connect(version);
        c.will = None;
        c.username = None;
        c.password = None;
        c.client_id = String::new();
        c.properties = ConnectProperties::default();
        round_trip(
            Decoder::new(u32::MAX),
            &[Packet::Connect(Box::new(c))],
            version,
        );
    }
}

#[test]
fn v5_password_without_username_round_trips() {
    let mut c = connect(ProtocolVersion::V5);
    c.username = None;
    round_trip(
        Decoder::new(u32::MAX),
        &[Packet::Connect(Box::new(c))],
        ProtocolVersion::V5,
    );
}

#[test]
fn server_packets_round_trip_in_every_version() {
    for version in VERSIONS {
        let mut decoder = Decoder::new_client(u32::MAX);
        decoder.set_version(version);
        round_trip(decoder, &server_packets(version), version);
    }
}

#[test]
fn v5_acks_use_the_short_forms() {
    let v5 = ProtocolVersion::V5;
    assert_eq!(
        &encoded(&Packet::PubAck(PubResponse::new(1)), v5)[..],
        [0x40, 2, 0, 1]
    );
    let rec = PubResponse {
        reason: 0x10,
        ..PubResponse::new(1)
    };
    assert_eq!(
        &encoded(&Packet::PubRec(rec), v5)[..],
        [0x50, 3, 0, 1, 0x10]
    );
    assert_eq!(
        &encoded(&Packet::PubRel(PubResponse::new(0x102)), v5)[..],
        [0x62, 2, 1, 2]
    );
    assert_eq!(
        &encoded(&Packet::Disconnect(Disconnect::default()), v5)[..],
        [0xE0, 0]
    );
    let disconnect = Disconnect {
        reason: 0x8E,
        ..Disconnect::default()
    };
    assert_eq!(
        &encoded(&Packet::Disconnect(disconnect), v5)[..],
        [0xE0, 1, 0x8E]
    );
    assert_eq!(&encoded(&Packet::Auth(Auth::default()), v5)[..], [0xF0, 0]);
    assert_eq!(&encoded(&Packet::PingReq, v5)[..], [0xC0, 0]);
    assert_eq!(&encoded(&Packet::PingResp, v5)[..], [0xD0, 0]);
}

#[test]
fn v3_packets_drop_what_the_version_cannot_carry() {
    let v4 = ProtocolVersion::V3_1_1;
    let connack = ConnAck {
        session_present: true,
        code: 0,
        properties: ConnAckProperties {
            reason_string: Some("ignored".into()),
            ..ConnAckProperties::default()
        },
    };
    assert_eq!(&encoded(&Packet::ConnAck(connack), v4)[..], [0x20, 2, 1, 0]);
    let ack = PubResponse {
        reason: 0x80,
        ..PubResponse::new(7)
    };
    assert_eq!(&encoded(&Packet::PubAck(ack), v4)[..], [0x40, 2, 0, 7]);
    let unsuback = UnsubAck {
        packet_id: 9,
        reasons: vec![0, 0x11],
        properties: ReasonProperties::default(),
    };
    assert_eq!(
        &encoded(&Packet::UnsubAck(unsuback), v4)[..],
        [0xB0, 2, 0, 9]
    );
    let suback = SubAck {
        packet_id: 9,
        return_codes: vec![1, 0x80],
        properties: ReasonProperties::default(),
    };
    assert_eq!(
        &encoded(&Packet::SubAck(suback), v4)[..],
        [0x90, 4, 0, 9, 1, 0x80]
    );
    let disconnect = Disconnect {
        reason: 0x8E,
        ..Disconnect::default()
    };
    assert_eq!(&encoded(&Packet::Disconnect(disconnect), v4)[..], [0xE0, 0]);
}

#[test]
fn connect_names_the_protocol_of_the_version() {
    let mut c = connect(ProtocolVersion::V3_1);
    c.will = None;
    c.username = None;
    c.password = None;
    c.client_id = "c".into();
    assert_eq!(
        &encoded(&Packet::Connect(Box::new(c.clone())), ProtocolVersion::V3_1)[..],
        b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01c"
    );
    assert_eq!(
        &encoded(
            &Packet::Connect(Box::new(c.clone())),
            ProtocolVersion::V3_1_1
        )[..],
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"
    );
    assert_eq!(
        &encoded(&Packet::Connect(Box::new(c)), ProtocolVersion::V5)[..],
        b"\x10\x0e\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x01c"
    );
}

#[test]
fn publish_len_matches_the_encoding_and_encode_matches_encode_publish() {
    for version in VERSIONS {
        let mut packets = server_packets(version);
        packets.extend(client_packets(version));
        let big = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t".repeat(200),
            packet_id: Some(1),
            properties: message_props(version.is_v5(), true),
            payload: Bytes::from(vec![7u8; 3_000_000]),
        };
        packets.push(Packet::Publish(big));
        for packet in packets {
            let Packet::Publish(p) = &packet else {
                continue;
            };
            let mut direct = BytesMut::new();
            encode_publish(p, version, &mut direct);
            assert_eq!(direct.len(), publish_len(p, version));
            assert_eq!(direct, encoded(&packet, version));
        }
    }
}

#[test]
fn encode_appends_to_what_is_already_buffered() {
    let mut out = BytesMut::from(&b"xy"[..]);
    encode(&Packet::PingReq, ProtocolVersion::V5, &mut out);
    encode_publish(
        &Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "a".into(),
            packet_id: None,
            properties: PublishProperties::default(),
            payload: Bytes::from_static(b"p"),
        },
        ProtocolVersion::V3_1_1,
        &mut out,
    );
    assert_eq!(&out[..], b"xy\xc0\x00\x31\x04\x00\x01ap");
}

#[test]
fn remaining_length_uses_multi_byte_varints() {
    for (len, header) in [
        (127usize, vec![0x30, 0x7f]),
        (128, vec![0x30, 0x80, 0x01]),
        (16_383, vec![0x30, 0xff, 0x7f]),
        (16_384, vec![0x30, 0x80, 0x80, 0x01]),
        (2_097_152, vec![0x30, 0x80, 0x80, 0x80, 0x01]),
    ] {
        let p = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "a".into(),
            packet_id: None,
            properties: PublishProperties::default(),
            payload: Bytes::from(vec![0u8; len - 3]),
        };
        let mut out = BytesMut::new();
        encode_publish(&p, ProtocolVersion::V3_1_1, &mut out);
        assert_eq!(&out[..header.len()], &header[..], "{len}");
        let mut d = Decoder::new(u32::MAX);
        d.decode(&mut encoded(
            &client_packets(ProtocolVersion::V3_1_1)[0],
            ProtocolVersion::V3_1_1,
        ))
        .unwrap();
        assert_eq!(d.decode(&mut out).unwrap(), Some(Packet::Publish(p)));
    }
}
