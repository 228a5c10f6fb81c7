//! The variable header and payload of each packet type.
//!
//! Each function gets a [`Reader`] over exactly the packet's remaining
//! length, with the fixed header already checked, and must consume all of it.

use super::DecodeError::{self, Malformed, Protocol};
use super::kind;
use super::properties::{self, IdSet, Properties, allowed};
use super::reader::Reader;
use crate::packet::*;
use crate::topic::{SHARE_PREFIX, valid_topic_name};

/// A Malformed Packet in 3.x, a Protocol Error in 5.0: the versions
/// disagree on how to classify some violations.
fn by_version(v5: bool, what: &'static str) -> DecodeError {
    if v5 { Protocol(what) } else { Malformed(what) }
}

/// The properties of a packet whose MQTT 5 form has a property list (none
/// before 5.0).
fn properties(r: &mut Reader, v5: bool, ids: IdSet) -> Result<Properties, DecodeError> {
    if v5 {
        properties::read(r, ids, allowed::REPEATABLE)
    } else {
        Ok(Properties::default())
    }
}

pub(super) fn connect(
    r: &mut Reader,
    version: &mut Option<ProtocolVersion>,
) -> Result<Connect, DecodeError> {
    let name_len = r.u16()? as usize;
    let name = r.take(name_len)?;
    let level = r.u8()?;
    let protocol = match (&name[..], level) {
        (b"MQTT", 4) => ProtocolVersion::V3_1_1,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQIsdp", 3) => ProtocolVersion::V3_1,
        (b"MQTT" | b"MQIsdp", level) => {
            return Err(DecodeError::UnsupportedProtocolVersion(level));
        }
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    *version = Some(protocol);
    let v5 = protocol.is_v5();

    let flags = r.u8()?;
    if flags & 0b1 != 0 {
        return Err(Malformed("CONNECT reserved flag set"));
    }
    let clean_start = flags & 0b10 != 0;
    let will_flag = flags & 0b100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b10_0000 != 0;
    let password_flag = flags & 0b100_0000 != 0;
    let username_flag = flags & 0b1000_0000 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(Malformed(
            "will QoS or will retain set without the will flag",
        ));
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(Malformed("will QoS 3"))?;
    if !v5 && password_flag && !username_flag {
        return Err(Malformed("password flag set without the user name flag"));
    }
    let keep_alive = r.u16()?;

    let props = properties(r, v5, allowed::CONNECT)?;
    props.check_authentication()?;

    let client_id = r.string()?;
    let will = if will_flag {
        let props = properties(r, v5, allowed::WILL)?;
        let topic = r.string()?;
        if !valid_topic_name(&topic) {
            return Err(Malformed("will topic is not a valid topic name"));
        }
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            delay_interval: props.will_delay_interval,
            properties: publish_properties(props),
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.binary()?)
    } else {
        None
    };
    r.finish("bytes after the last CONNECT field")?;

    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties: ConnectProperties {
            session_expiry_interval: props.session_expiry_interval,
            receive_maximum: props.receive_maximum,
            maximum_packet_size: props.maximum_packet_size,
            topic_alias_maximum: props.topic_alias_maximum,
            request_response_information: props.request_response_information,
            request_problem_information: props.request_problem_information,
            user_properties: props.user_properties,
            authentication_method: props.authentication_method,
            authentication_data: props.authentication_data,
        },
    })
}

fn publish_properties(p: Properties) -> PublishProperties {
    PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        topic_alias: p.topic_alias,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        subscription_identifiers: p.subscription_identifiers,
        content_type: p.content_type,
    }
}

fn reason_properties(p: Properties) -> ReasonProperties {
    ReasonProperties {
        reason_string: p.reason_string,
        user_properties: p.user_properties,
    }
}

pub(super) fn connack(r: &mut Reader, v5: bool) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xfe != 0 {
        return Err(Malformed("CONNACK reserved flags set"));
    }
    let session_present = flags & 1 != 0;
    let code = r.u8()?;
    let props = properties(r, v5, allowed::CONNACK)?;
    r.finish("bytes after the CONNACK properties")?;
    props.check_authentication()?;
    let known = if v5 {
        CONNACK_REASONS.contains(&code)
    } else {
        code <= 5
    };
    if !known {
        return Err(Protocol("invalid CONNACK reason code"));
    }
    if session_present && code != 0 {
        return Err(Protocol("session present set on a refused connection"));
    }
    Ok(ConnAck {
        session_present,
        code,
        properties: ConnAckProperties {
            session_expiry_interval: props.session_expiry_interval,
            receive_maximum: props.receive_maximum,
            maximum_qos: props.maximum_qos,
            retain_available: props.retain_available,
            maximum_packet_size: props.maximum_packet_size,
            assigned_client_identifier: props.assigned_client_identifier,
            topic_alias_maximum: props.topic_alias_maximum,
            reason_string: props.reason_string,
            user_properties: props.user_properties,
            wildcard_subscription_available: props.wildcard_subscription_available,
            subscription_identifiers_available: props.subscription_identifiers_available,
            shared_subscription_available: props.shared_subscription_available,
            server_keep_alive: props.server_keep_alive,
            response_information: props.response_information,
            server_reference: props.server_reference,
            authentication_method: props.authentication_method,
            authentication_data: props.authentication_data,
        },
    })
}

/// `from_server`: decoding as a client, where Subscription Identifiers are
/// allowed (and repeatable).
pub(super) fn publish(
    r: &mut Reader,
    flags: u8,
    v5: bool,
    from_server: bool,
) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(Malformed("PUBLISH with QoS 3"))?;
    let topic = r.string()?;
    if topic.contains(['+', '#']) {
        return Err(Malformed("wildcard in a PUBLISH topic"));
    }
    if topic.is_empty() && !v5 {
        return Err(Malformed("PUBLISH with an empty topic"));
    }
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        match r.u16()? {
            0 => return Err(by_version(v5, "PUBLISH with packet identifier 0")),
            id => Some(id),
        }
    };
    let properties = if v5 {
        let (ids, repeatable) = if from_server {
            (
                allowed::PUBLISH_FROM_SERVER,
                allowed::REPEATABLE_IN_SERVER_PUBLISH,
            )
        } else {
            (allowed::PUBLISH, allowed::REPEATABLE)
        };
        publish_properties(properties::read(r, ids, repeatable)?)
    } else {
        PublishProperties::default()
    };
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(Protocol("PUBLISH with an empty topic and no topic alias"));
    }
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b1 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP; `kind` picks the valid reason codes.
pub(super) fn pub_response(r: &mut Reader, v5: bool, kind: u8) -> Result<PubResponse, DecodeError> {
    let packet_id = r.u16()?;
    if packet_id == 0 {
        return Err(Protocol("acknowledgement with packet identifier 0"));
    }
    if !v5 {
        r.finish("acknowledgement longer than 2 bytes")?;
        return Ok(PubResponse::new(packet_id));
    }
    let reason = if r.is_empty() { 0 } else { r.u8()? };
    let props = if r.is_empty() {
        Properties::default()
    } else {
        properties::read(r, allowed::ACK, allowed::REPEATABLE)?
    };
    r.finish("bytes after the acknowledgement properties")?;
    let reasons: &[u8] = if kind == kind::PUBACK || kind == kind::PUBREC {
        PUBACK_REASONS
    } else {
        PUBREL_REASONS
    };
    if !reasons.contains(&reason) {
        return Err(Protocol("invalid acknowledgement reason code"));
    }
    Ok(PubResponse {
        packet_id,
        reason,
        properties: reason_properties(props),
    })
}

fn packet_id(r: &mut Reader, v5: bool) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(by_version(v5, "packet identifier 0")),
        id => Ok(id),
    }
}

fn filter(r: &mut Reader) -> Result<String, DecodeError> {
    let filter = r.string()?;
    if filter.is_empty() {
        return Err(Malformed("empty topic filter"));
    }
    Ok(filter)
}

pub(super) fn subscribe(r: &mut Reader, v5: bool) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r, v5)?;
    let props = properties(r, v5, allowed::SUBSCRIBE)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = filter(r)?;
        let options = r.u8()?;
        let reserved = if v5 { 0b1100_0000 } else { 0b1111_1100 };
        if options & reserved != 0 {
            return Err(Malformed("reserved subscription option bits set"));
        }
        let qos = QoS::from_u8(options & 0b11).ok_or(Malformed("subscription with QoS 3"))?;
        let retain_handling = match (options >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(Protocol("retain handling 3")),
        };
        let no_local = options & 0b100 != 0;
        if no_local && filter.starts_with(SHARE_PREFIX) {
            return Err(Protocol("no local set on a shared subscription"));
        }
        filters.push((
            filter,
            SubscriptionOptions {
                qos,
                no_local,
                retain_as_published: options & 0b1000 != 0,
                retain_handling,
            },
        ));
    }
    if filters.is_empty() {
        return Err(by_version(v5, "SUBSCRIBE without a topic filter"));
    }
    Ok(Subscribe {
        packet_id,
        filters,
        subscription_identifier: props.subscription_identifiers.first().copied(),
        user_properties: props.user_properties,
    })
}

pub(super) fn suback(r: &mut Reader, v5: bool) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r, v5)?;
    let props = properties(r, v5, allowed::ACK)?;
    let return_codes = r.rest().to_vec();
    if return_codes.is_empty() {
        return Err(by_version(v5, "SUBACK without a return code"));
    }
    let valid: &[u8] = if v5 { SUBACK_REASONS } else { &[0, 1, 2, 0x80] };
    if !return_codes.iter().all(|c| valid.contains(c)) {
        return Err(Protocol("invalid SUBACK return code"));
    }
    Ok(SubAck {
        packet_id,
        return_codes,
        properties: reason_properties(props),
    })
}

pub(super) fn unsubscribe(r: &mut Reader, v5: bool) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r, v5)?;
    let props = properties(r, v5, allowed::UNSUBSCRIBE)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(filter(r)?);
    }
    if filters.is_empty() {
        return Err(by_version(v5, "UNSUBSCRIBE without a topic filter"));
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        user_properties: props.user_properties,
    })
}

pub(super) fn unsuback(r: &mut Reader, v5: bool) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r, v5)?;
    if !v5 {
        r.finish("3.x UNSUBACK longer than 2 bytes")?;
        return Ok(UnsubAck {
            packet_id,
            reasons: Vec::new(),
            properties: ReasonProperties::default(),
        });
    }
    let props = properties::read(r, allowed::ACK, allowed::REPEATABLE)?;
    let reasons = r.rest().to_vec();
    if reasons.is_empty() {
        return Err(Protocol("UNSUBACK without a reason code"));
    }
    if !reasons.iter().all(|c| UNSUBACK_REASONS.contains(c)) {
        return Err(Protocol("invalid UNSUBACK reason code"));
    }
    Ok(UnsubAck {
        packet_id,
        reasons,
        properties: reason_properties(props),
    })
}

pub(super) fn disconnect(r: &mut Reader, v5: bool) -> Result<Disconnect, DecodeError> {
    if !v5 {
        r.finish("3.x DISCONNECT with a body")?;
        return Ok(Disconnect::default());
    }
    let reason = if r.is_empty() { 0 } else { r.u8()? };
    let props = if r.is_empty() {
        Properties::default()
    } else {
        properties::read(r, allowed::DISCONNECT, allowed::REPEATABLE)?
    };
    r.finish("bytes after the DISCONNECT properties")?;
    if !DISCONNECT_REASONS.contains(&reason) {
        return Err(Protocol("invalid DISCONNECT reason code"));
    }
    Ok(Disconnect {
        reason,
        session_expiry_interval: props.session_expiry_interval,
        reason_string: props.reason_string,
        user_properties: props.user_properties,
        server_reference: props.server_reference,
    })
}

pub(super) fn auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    let reason = if r.is_empty() { 0 } else { r.u8()? };
    let props = if r.is_empty() {
        Properties::default()
    } else {
        properties::read(r, allowed::AUTH, allowed::REPEATABLE)?
    };
    r.finish("bytes after the AUTH properties")?;
    props.check_authentication()?;
    if !AUTH_REASONS.contains(&reason) {
        return Err(Protocol("invalid AUTH reason code"));
    }
    Ok(Auth {
        reason,
        authentication_method: props.authentication_method,
        authentication_data: props.authentication_data,
        reason_string: props.reason_string,
        user_properties: props.user_properties,
    })
}

// The reason codes each MQTT 5 packet may carry (section 2.4 and each
// packet's reason code table); a sender MUST use one of them.
const CONNACK_REASONS: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK_REASONS: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_REASONS: &[u8] = &[0x00, 0x92];
const SUBACK_REASONS: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK_REASONS: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_REASONS: &[u8] = &[0x00, 0x18, 0x19];
