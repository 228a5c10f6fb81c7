//! The message as the broker routes it: one immutable, shared value per
//! accepted PUBLISH (or will), delivered by reference to every subscriber.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use firehose_mqtt::{PublishProperties, QoS};

/// An accepted application message.
#[derive(Debug)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: QoS,
    /// The RETAIN flag as published.
    pub retain: bool,
    /// The MQTT 5 properties that travel with the message (topic alias and
    /// subscription identifiers are per-hop and never stored here).
    pub properties: PublishProperties,
    /// When the message expires (from Message Expiry Interval), if ever.
    pub expires_at: Option<Instant>,
    /// Client id of the publisher, for the no-local subscribe option.
    pub publisher: Arc<str>,
}

impl Message {
    /// A copy whose payload owns its bytes (a received payload is a slice
    /// of the connection's read buffer).
    pub fn detached(&self) -> Message {
        Message {
            topic: self.topic.clone(),
            payload: Bytes::copy_from_slice(&self.payload),
            qos: self.qos,
            retain: self.retain,
            properties: self.properties.clone(),
            expires_at: self.expires_at,
            publisher: self.publisher.clone(),
        }
    }

    /// True once the message's expiry interval has elapsed.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Seconds left before expiry, rounded up, for the forwarded Message
    /// Expiry Interval; `None` when the message never expires.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX).max(1)
        })
    }

    /// The absolute expiry for a message received now with `interval` seconds.
    pub fn expiry_from(interval: Option<u32>, now: Instant) -> Option<Instant> {
        interval.map(|secs| now + Duration::from_secs(u64::from(secs)))
    }
}
