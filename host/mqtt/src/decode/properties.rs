//! MQTT 5 properties (section 2.2.2): identifiers, which packet may carry
//! which (the table of section 2.2.2.2), and reading a property list.
//!
//! An unknown identifier is Malformed; a known one the packet may not carry,
//! or one given twice, is a Protocol Error; so are out-of-range values.

use bytes::Bytes;

use super::DecodeError;
use super::reader::Reader;
use crate::packet::UserProperty;
use crate::topic::valid_topic_name;

/// Property identifiers.
pub(crate) mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

use id::*;

/// A set of property identifiers (all are below 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdSet(u64);

impl IdSet {
    pub(crate) const fn of(ids: &[u8]) -> IdSet {
        let mut bits = 0u64;
        let mut i = 0;
        while i < ids.len() {
            bits |= 1 << ids[i];
            i += 1;
        }
        IdSet(bits)
    }

    pub(crate) const fn with(self, id: u8) -> IdSet {
        IdSet(self.0 | 1 << id)
    }

    fn contains(self, id: u8) -> bool {
        id < 64 && self.0 & (1 << id) != 0
    }
}

const KNOWN: IdSet = IdSet::of(&[
    PAYLOAD_FORMAT_INDICATOR,
    MESSAGE_EXPIRY_INTERVAL,
    CONTENT_TYPE,
    RESPONSE_TOPIC,
    CORRELATION_DATA,
    SUBSCRIPTION_IDENTIFIER,
    SESSION_EXPIRY_INTERVAL,
    ASSIGNED_CLIENT_IDENTIFIER,
    SERVER_KEEP_ALIVE,
    AUTHENTICATION_METHOD,
    AUTHENTICATION_DATA,
    REQUEST_PROBLEM_INFORMATION,
    WILL_DELAY_INTERVAL,
    REQUEST_RESPONSE_INFORMATION,
    RESPONSE_INFORMATION,
    SERVER_REFERENCE,
    REASON_STRING,
    RECEIVE_MAXIMUM,
    TOPIC_ALIAS_MAXIMUM,
    TOPIC_ALIAS,
    MAXIMUM_QOS,
    RETAIN_AVAILABLE,
    USER_PROPERTY,
    MAXIMUM_PACKET_SIZE,
    WILDCARD_SUBSCRIPTION_AVAILABLE,
    SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    SHARED_SUBSCRIPTION_AVAILABLE,
]);

/// The properties each packet may carry (section 2.2.2.2).
pub(crate) mod allowed {
    use super::IdSet;
    use super::id::*;

    pub const CONNECT: IdSet = IdSet::of(&[
        SESSION_EXPIRY_INTERVAL,
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        REQUEST_PROBLEM_INFORMATION,
        REQUEST_RESPONSE_INFORMATION,
        RECEIVE_MAXIMUM,
        TOPIC_ALIAS_MAXIMUM,
        USER_PROPERTY,
        MAXIMUM_PACKET_SIZE,
    ]);
    pub const WILL: IdSet = IdSet::of(&[
        WILL_DELAY_INTERVAL,
        PAYLOAD_FORMAT_INDICATOR,
        MESSAGE_EXPIRY_INTERVAL,
        CONTENT_TYPE,
        RESPONSE_TOPIC,
        CORRELATION_DATA,
        USER_PROPERTY,
    ]);
    pub const CONNACK: IdSet = IdSet::of(&[
        SESSION_EXPIRY_INTERVAL,
        ASSIGNED_CLIENT_IDENTIFIER,
        SERVER_KEEP_ALIVE,
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        RESPONSE_INFORMATION,
        SERVER_REFERENCE,
        REASON_STRING,
        RECEIVE_MAXIMUM,
        TOPIC_ALIAS_MAXIMUM,
        MAXIMUM_QOS,
        RETAIN_AVAILABLE,
        USER_PROPERTY,
        MAXIMUM_PACKET_SIZE,
        WILDCARD_SUBSCRIPTION_AVAILABLE,
        SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        SHARED_SUBSCRIPTION_AVAILABLE,
    ]);
    /// PUBLISH from a client: no Subscription Identifier.
    pub const PUBLISH: IdSet = IdSet::of(&[
        PAYLOAD_FORMAT_INDICATOR,
        MESSAGE_EXPIRY_INTERVAL,
        CONTENT_TYPE,
        RESPONSE_TOPIC,
        CORRELATION_DATA,
        TOPIC_ALIAS,
        USER_PROPERTY,
    ]);
    /// PUBLISH from the server: any number of Subscription Identifiers.
    pub const PUBLISH_FROM_SERVER: IdSet = PUBLISH.with(SUBSCRIPTION_IDENTIFIER);
    /// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK.
    pub const ACK: IdSet = IdSet::of(&[REASON_STRING, USER_PROPERTY]);
    pub const SUBSCRIBE: IdSet = IdSet::of(&[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY]);
    pub const UNSUBSCRIBE: IdSet = IdSet::of(&[USER_PROPERTY]);
    pub const DISCONNECT: IdSet = IdSet::of(&[
        SESSION_EXPIRY_INTERVAL,
        SERVER_REFERENCE,
        REASON_STRING,
        USER_PROPERTY,
    ]);
    pub const AUTH: IdSet = IdSet::of(&[
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        REASON_STRING,
        USER_PROPERTY,
    ]);

    /// Properties that may appear more than once (with `PUBLISH_FROM_SERVER`
    /// Subscription Identifier is added).
    pub const REPEATABLE: IdSet = IdSet::of(&[USER_PROPERTY]);
    pub const REPEATABLE_IN_SERVER_PUBLISH: IdSet = REPEATABLE.with(SUBSCRIPTION_IDENTIFIER);
}

/// Every property any packet can carry; each packet copies out its own.
#[derive(Debug, Default)]
pub(crate) struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<bool>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<bool>,
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub reason_string: Option<String>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub user_properties: Vec<UserProperty>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
}

impl Properties {
    /// Authentication Data without an Authentication Method is a Protocol
    /// Error (CONNECT, CONNACK, AUTH).
    pub(crate) fn check_authentication(&self) -> Result<(), DecodeError> {
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(DecodeError::Protocol(
                "authentication data without an authentication method",
            ));
        }
        Ok(())
    }
}

fn protocol(what: &'static str) -> DecodeError {
    DecodeError::Protocol(what)
}

fn flag(value: u8, what: &'static str) -> Result<bool, DecodeError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(protocol(what)),
    }
}

fn nonzero_u16(value: u16, what: &'static str) -> Result<u16, DecodeError> {
    if value == 0 {
        Err(protocol(what))
    } else {
        Ok(value)
    }
}

/// Reads a property length and the properties it covers.
pub(crate) fn read(
    r: &mut Reader,
    allowed: IdSet,
    repeatable: IdSet,
) -> Result<Properties, DecodeError> {
    let len = r.varint()? as usize;
    if len > r.remaining() {
        return Err(DecodeError::Malformed(
            "property length runs past the end of the packet",
        ));
    }
    let mut r = Reader::new(r.take(len)?);
    let mut p = Properties::default();
    let mut seen = 0u64;
    while !r.is_empty() {
        let id = r.u8()?;
        if !KNOWN.contains(id) {
            return Err(DecodeError::Malformed("unknown property identifier"));
        }
        if !allowed.contains(id) {
            return Err(protocol("property not allowed in this packet"));
        }
        if seen & (1 << id) != 0 && !repeatable.contains(id) {
            return Err(protocol("property included more than once"));
        }
        seen |= 1 << id;
        match id {
            PAYLOAD_FORMAT_INDICATOR => {
                let v = r.u8()?;
                flag(v, "payload format indicator is not 0 or 1")?;
                p.payload_format_indicator = Some(v);
            }
            MESSAGE_EXPIRY_INTERVAL => p.message_expiry_interval = Some(r.u32()?),
            CONTENT_TYPE => p.content_type = Some(r.string()?),
            RESPONSE_TOPIC => {
                let topic = r.string()?;
                if !valid_topic_name(&topic) {
                    return Err(protocol("response topic is not a valid topic name"));
                }
                p.response_topic = Some(topic);
            }
            CORRELATION_DATA => p.correlation_data = Some(r.binary()?),
            SUBSCRIPTION_IDENTIFIER => {
                let v = r.varint()?;
                if v == 0 {
                    return Err(protocol("subscription identifier 0"));
                }
                p.subscription_identifiers.push(v);
            }
            SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(r.u32()?),
            ASSIGNED_CLIENT_IDENTIFIER => p.assigned_client_identifier = Some(r.string()?),
            SERVER_KEEP_ALIVE => p.server_keep_alive = Some(r.u16()?),
            AUTHENTICATION_METHOD => p.authentication_method = Some(r.string()?),
            AUTHENTICATION_DATA => p.authentication_data = Some(r.binary()?),
            REQUEST_PROBLEM_INFORMATION => {
                p.request_problem_information =
                    Some(flag(r.u8()?, "request problem information is not 0 or 1")?);
            }
            WILL_DELAY_INTERVAL => p.will_delay_interval = Some(r.u32()?),
            REQUEST_RESPONSE_INFORMATION => {
                p.request_response_information =
                    Some(flag(r.u8()?, "request response information is not 0 or 1")?);
            }
            RESPONSE_INFORMATION => p.response_information = Some(r.string()?),
            SERVER_REFERENCE => p.server_reference = Some(r.string()?),
            REASON_STRING => p.reason_string = Some(r.string()?),
            RECEIVE_MAXIMUM => {
                p.receive_maximum = Some(nonzero_u16(r.u16()?, "receive maximum 0")?);
            }
            TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(r.u16()?),
            // Alias 0 is refused by the broker with 0x94 (Topic Alias
            // invalid), as for any alias beyond its maximum.
            TOPIC_ALIAS => p.topic_alias = Some(r.u16()?),
            MAXIMUM_QOS => {
                let v = r.u8()?;
                flag(v, "maximum QoS is not 0 or 1")?;
                p.maximum_qos = Some(v);
            }
            RETAIN_AVAILABLE => {
                p.retain_available = Some(flag(r.u8()?, "retain available is not 0 or 1")?);
            }
            USER_PROPERTY => {
                let name = r.string()?;
                let value = r.string()?;
                p.user_properties.push((name, value));
            }
            MAXIMUM_PACKET_SIZE => {
                let v = r.u32()?;
                if v == 0 {
                    return Err(protocol("maximum packet size 0"));
                }
                p.maximum_packet_size = Some(v);
            }
            WILDCARD_SUBSCRIPTION_AVAILABLE => {
                p.wildcard_subscription_available = Some(flag(
                    r.u8()?,
                    "wildcard subscription available is not 0 or 1",
                )?);
            }
            SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                p.subscription_identifiers_available = Some(flag(
                    r.u8()?,
                    "subscription identifier available is not 0 or 1",
                )?);
            }
            SHARED_SUBSCRIPTION_AVAILABLE => {
                p.shared_subscription_available = Some(flag(
                    r.u8()?,
                    "shared subscription available is not 0 or 1",
                )?);
            }
            _ => return Err(DecodeError::Malformed("unknown property identifier")),
        }
    }
    Ok(p)
}
