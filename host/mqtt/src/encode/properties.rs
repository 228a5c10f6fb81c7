//! MQTT 5 property lists, written to a [`Sink`]: each packet's properties
//! are one [`Props`] value, emitted once to measure and once to write.

use bytes::Bytes;

use super::Sink;
use crate::decode::properties::id::*;
use crate::packet::*;

/// Something that emits a property list (without its length prefix).
pub(crate) trait Props {
    fn emit<S: Sink>(&self, s: &mut S);

    /// The encoded size of the list, without its length prefix.
    fn len(&self) -> usize {
        let mut len = super::Len(0);
        self.emit(&mut len);
        len.0
    }
}

/// Writes the property length then the properties.
pub(crate) fn write<S: Sink, P: Props>(s: &mut S, props: &P) {
    let len = props.len();
    s.varint(len as u32);
    props.emit(s);
}

fn byte<S: Sink>(s: &mut S, id: u8, v: Option<u8>) {
    if let Some(v) = v {
        s.u8(id);
        s.u8(v);
    }
}

fn flag<S: Sink>(s: &mut S, id: u8, v: Option<bool>) {
    byte(s, id, v.map(u8::from));
}

fn two<S: Sink>(s: &mut S, id: u8, v: Option<u16>) {
    if let Some(v) = v {
        s.u8(id);
        s.u16(v);
    }
}

fn four<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.u8(id);
        s.u32(v);
    }
}

fn string<S: Sink>(s: &mut S, id: u8, v: &Option<String>) {
    if let Some(v) = v {
        s.u8(id);
        s.string(v);
    }
}

fn binary<S: Sink>(s: &mut S, id: u8, v: &Option<Bytes>) {
    if let Some(v) = v {
        s.u8(id);
        s.binary(v);
    }
}

fn user<S: Sink>(s: &mut S, props: &[UserProperty]) {
    for (name, value) in props {
        s.u8(USER_PROPERTY);
        s.string(name);
        s.string(value);
    }
}

impl Props for ConnectProperties {
    fn emit<S: Sink>(&self, s: &mut S) {
        four(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        two(s, RECEIVE_MAXIMUM, self.receive_maximum);
        four(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        two(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        flag(
            s,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        flag(
            s,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        user(s, &self.user_properties);
        string(s, AUTHENTICATION_METHOD, &self.authentication_method);
        binary(s, AUTHENTICATION_DATA, &self.authentication_data);
    }
}

/// The will's properties: Will Delay Interval plus the message properties
/// a will may carry (never a topic alias or subscription identifier).
pub(crate) struct WillProps<'a>(pub &'a Will);

impl Props for WillProps<'_> {
    fn emit<S: Sink>(&self, s: &mut S) {
        let p = &self.0.properties;
        four(s, WILL_DELAY_INTERVAL, self.0.delay_interval);
        message(s, p);
    }
}

/// The properties a PUBLISH and a will share.
fn message<S: Sink>(s: &mut S, p: &PublishProperties) {
    byte(s, PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
    four(s, MESSAGE_EXPIRY_INTERVAL, p.message_expiry_interval);
    string(s, CONTENT_TYPE, &p.content_type);
    string(s, RESPONSE_TOPIC, &p.response_topic);
    binary(s, CORRELATION_DATA, &p.correlation_data);
    user(s, &p.user_properties);
}

/// A PUBLISH's properties: the message's own, with the per-copy ones
/// (expiry, topic alias, subscription identifiers) from the view.
pub(crate) struct OutgoingProps<'a, 'b>(pub &'b super::OutgoingPublish<'a>);

impl Props for OutgoingProps<'_, '_> {
    fn emit<S: Sink>(&self, s: &mut S) {
        let p = self.0.properties;
        byte(s, PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
        four(s, MESSAGE_EXPIRY_INTERVAL, self.0.message_expiry_interval);
        string(s, CONTENT_TYPE, &p.content_type);
        string(s, RESPONSE_TOPIC, &p.response_topic);
        binary(s, CORRELATION_DATA, &p.correlation_data);
        user(s, &p.user_properties);
        two(s, TOPIC_ALIAS, self.0.topic_alias);
        for &id in self.0.subscription_identifiers {
            s.u8(SUBSCRIPTION_IDENTIFIER);
            s.varint(id);
        }
    }
}

impl Props for ConnAckProperties {
    fn emit<S: Sink>(&self, s: &mut S) {
        four(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        two(s, RECEIVE_MAXIMUM, self.receive_maximum);
        byte(s, MAXIMUM_QOS, self.maximum_qos);
        flag(s, RETAIN_AVAILABLE, self.retain_available);
        four(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        string(
            s,
            ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
        );
        two(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        string(s, REASON_STRING, &self.reason_string);
        user(s, &self.user_properties);
        flag(
            s,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        flag(
            s,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        flag(
            s,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        two(s, SERVER_KEEP_ALIVE, self.server_keep_alive);
        string(s, RESPONSE_INFORMATION, &self.response_information);
        string(s, SERVER_REFERENCE, &self.server_reference);
        string(s, AUTHENTICATION_METHOD, &self.authentication_method);
        binary(s, AUTHENTICATION_DATA, &self.authentication_data);
    }
}

impl Props for ReasonProperties {
    fn emit<S: Sink>(&self, s: &mut S) {
        string(s, REASON_STRING, &self.reason_string);
        user(s, &self.user_properties);
    }
}

impl Props for Subscribe {
    fn emit<S: Sink>(&self, s: &mut S) {
        if let Some(id) = self.subscription_identifier {
            s.u8(SUBSCRIPTION_IDENTIFIER);
            s.varint(id);
        }
        user(s, &self.user_properties);
    }
}

impl Props for Unsubscribe {
    fn emit<S: Sink>(&self, s: &mut S) {
        user(s, &self.user_properties);
    }
}

impl Props for Disconnect {
    fn emit<S: Sink>(&self, s: &mut S) {
        four(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        string(s, REASON_STRING, &self.reason_string);
        user(s, &self.user_properties);
        string(s, SERVER_REFERENCE, &self.server_reference);
    }
}

impl Props for Auth {
    fn emit<S: Sink>(&self, s: &mut S) {
        string(s, AUTHENTICATION_METHOD, &self.authentication_method);
        binary(s, AUTHENTICATION_DATA, &self.authentication_data);
        string(s, REASON_STRING, &self.reason_string);
        user(s, &self.user_properties);
    }
}
