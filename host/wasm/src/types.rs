//! Host-side values that cross into policies: plain Rust types, so the
//! broker never depends on generated bindings. They mirror the WIT
//! interface `firehose:bus/types` and convert to and from the bindings in
//! [`crate::bindings`].

/// MQTT quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

/// One application message, as published and as routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
    pub retain: bool,
    /// MQTT 5 content type.
    pub content_type: Option<String>,
    /// MQTT 5 user properties, in order.
    pub user_properties: Vec<(String, String)>,
}

impl Message {
    /// A QoS 0, not retained message without properties.
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos: Qos::AtMostOnce,
            retain: false,
            content_type: None,
            user_properties: Vec::new(),
        }
    }
}

/// A connected (or connecting) client, as the host knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    /// Set only once the password was verified; `None` is anonymous.
    pub username: Option<String>,
    /// Listener name from the broker config.
    pub listener: String,
    /// `ip:port` (`[v6]:port`).
    pub remote_address: String,
    /// Subject of a verified TLS client certificate.
    pub tls_identity: Option<String>,
}

impl Client {
    /// An anonymous client on `listener`.
    pub fn anonymous(
        id: impl Into<String>,
        listener: impl Into<String>,
        remote_address: impl Into<String>,
    ) -> Self {
        Client {
            id: id.into(),
            username: None,
            listener: listener.into(),
            remote_address: remote_address.into(),
            tls_identity: None,
        }
    }
}

/// What an ACL policy answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused, with the policy's reason (for the log).
    Deny(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// What a transform did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Route the message unchanged.
    Pass,
    /// Do not route it.
    Drop,
    /// Route these instead (the host still checks their topics and sizes).
    Replace(Vec<Message>),
}

/// Which answers of an ACL policy the broker may remember (the policy's
/// `cache-hints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheHints {
    /// `check-subscribe` depends only on the client and the filter.
    pub subscribe: bool,
    /// `check-publish` depends only on the client and the topic.
    pub publish: bool,
}
