//! Transform chains: for each accepted message whose topic matches a
//! chain's filters, the chain's components run in order and decide what is
//! routed instead: the message itself (`pass`), nothing (`drop`), or
//! replacement messages (`replace`), each of which goes on through the
//! rest of the chain.
//!
//! The host checks what a transform hands back: every replacement topic
//! must be a valid topic name (no wildcards) and every payload must fit
//! the broker's maximum packet size; at most [`MAX_REPLACEMENTS`] messages
//! come out of one call and at most [`MAX_OUTPUT`] out of a whole chain.
//! A failed call (trap, deadline, out of memory) or an invalid replacement
//! is an error for that message, and the chain's `on_error` decides:
//! `drop` (default) routes nothing, `pass` skips the failing component.
//!
//! A replacement keeps what the WIT message does not carry from the
//! message it replaces: its MQTT 5 properties (expiry, response topic,
//! correlation data...) and its publisher.

use std::sync::Arc;

use bytes::Bytes;
use firehose_mqtt::QoS;
use firehose_wasm::{Outcome, Qos, TransformPolicy};
use tracing::warn;

use crate::config::OnError;
use crate::message::Message;
use crate::metrics::{Counter, RateLimit};

/// The most messages one `apply` call may return.
pub const MAX_REPLACEMENTS: usize = 64;

/// The most messages one published message may turn into through a chain.
pub const MAX_OUTPUT: usize = 256;

/// The configured chains, in config order.
#[derive(Default)]
pub struct TransformChains {
    chains: Vec<Chain>,
}

impl TransformChains {
    pub fn new(chains: Vec<Chain>) -> TransformChains {
        TransformChains { chains }
    }

    /// The chain that applies to `topic`: the first whose filters match.
    pub fn for_topic(&self, topic: &str) -> Option<&Chain> {
        if self.chains.is_empty() {
            return None;
        }
        self.chains.iter().find(|chain| chain.matches(topic))
    }

    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// Every chain, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Chain> {
        self.chains.iter()
    }
}

/// One chain: its filters, its components and its counters.
pub struct Chain {
    name: Arc<str>,
    filters: Vec<String>,
    on_error: OnError,
    steps: Vec<TransformPolicy>,
    stats: ChainStats,
    error_log: RateLimit,
}

/// What a chain did, since it was loaded.
#[derive(Debug, Default)]
pub struct ChainStats {
    /// Messages that entered the chain.
    pub messages: Counter,
    /// Messages a component dropped.
    pub dropped: Counter,
    /// Messages a component replaced (by one or more, or none).
    pub replaced: Counter,
    /// Failed calls and invalid replacements.
    pub errors: Counter,
    /// Messages dropped because of an error (`on_error = "drop"`).
    pub dropped_on_error: Counter,
}

/// Why a transform's answer could not be used.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Call(#[from] firehose_wasm::PolicyError),
    #[error("replacement {index}: topic {topic:?} is not a valid topic name")]
    BadTopic { index: usize, topic: String },
    #[error("replacement {index}: payload of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        index: usize,
        size: usize,
        limit: usize,
    },
    #[error("{count} replacements; at most {MAX_REPLACEMENTS} per call")]
    TooMany { count: usize },
}

impl Chain {
    pub fn new(
        name: &str,
        filters: Vec<String>,
        on_error: OnError,
        steps: Vec<TransformPolicy>,
    ) -> Chain {
        Chain {
            name: name.into(),
            filters,
            on_error,
            steps,
            stats: ChainStats::default(),
            error_log: RateLimit::new(std::time::Duration::from_secs(1)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> &ChainStats {
        &self.stats
    }

    fn matches(&self, topic: &str) -> bool {
        self.filters
            .iter()
            .any(|filter| firehose_mqtt::topic::matches(filter, topic))
    }

    /// Runs `message` through the chain; returns what is to be routed
    /// instead (possibly nothing, possibly `message` itself).
    /// `max_payload` bounds replacement payloads.
    pub async fn apply(&self, message: Arc<Message>, max_payload: usize) -> Vec<Arc<Message>> {
        self.stats.messages.incr();
        let mut current = vec![message];
        for step in &self.steps {
            let mut next = Vec::with_capacity(current.len());
            for message in current {
                match self.apply_step(step, &message, max_payload).await {
                    Ok(Outcome::Pass) => next.push(message),
                    Ok(Outcome::Drop) => self.stats.dropped.incr(),
                    Ok(Outcome::Replace(replacements)) => {
                        self.stats.replaced.incr();
                        next.extend(
                            replacements
                                .into_iter()
                                .map(|r| Arc::new(replacement(&message, r))),
                        );
                    }
                    Err(error) => {
                        self.stats.errors.incr();
                        self.log_error(step, &message.topic, &error);
                        match self.on_error {
                            OnError::Pass => next.push(message),
                            OnError::Drop => self.stats.dropped_on_error.incr(),
                        }
                    }
                }
                if next.len() > MAX_OUTPUT {
                    self.stats.errors.incr();
                    warn!(
                        chain = %self.name,
                        component = step.name(),
                        "more than {MAX_OUTPUT} messages out of one; the rest are dropped"
                    );
                    next.truncate(MAX_OUTPUT);
                    break;
                }
            }
            current = next;
            if current.is_empty() {
                break;
            }
        }
        current
    }

    /// One component's answer for one message, checked.
    async fn apply_step(
        &self,
        step: &TransformPolicy,
        message: &Message,
        max_payload: usize,
    ) -> Result<Outcome, StepError> {
        let outcome = step.apply_owned(to_wasm(message)).await?;
        if let Outcome::Replace(replacements) = &outcome {
            if replacements.len() > MAX_REPLACEMENTS {
                return Err(StepError::TooMany {
                    count: replacements.len(),
                });
            }
            for (index, r) in replacements.iter().enumerate() {
                if !firehose_mqtt::topic::valid_topic_name(&r.topic) {
                    return Err(StepError::BadTopic {
                        index,
                        topic: r.topic.clone(),
                    });
                }
                if r.payload.len() > max_payload {
                    return Err(StepError::TooLarge {
                        index,
                        size: r.payload.len(),
                        limit: max_payload,
                    });
                }
            }
        }
        Ok(outcome)
    }

    fn log_error(&self, step: &TransformPolicy, topic: &str, error: &StepError) {
        if let Some(suppressed) = self.error_log.check() {
            warn!(
                chain = %self.name,
                component = step.name(),
                topic,
                on_error = ?self.on_error,
                suppressed,
                errors = self.stats.errors.get(),
                %error,
                "transform failed"
            );
        }
    }
}

/// The WIT view of a routed message (a copy: the guest gets its own).
fn to_wasm(message: &Message) -> firehose_wasm::Message {
    firehose_wasm::Message {
        topic: message.topic.to_string(),
        payload: message.payload.to_vec(),
        qos: match message.qos {
            QoS::AtMostOnce => Qos::AtMostOnce,
            QoS::AtLeastOnce => Qos::AtLeastOnce,
            QoS::ExactlyOnce => Qos::ExactlyOnce,
        },
        retain: message.retain,
        content_type: message.properties.content_type.clone(),
        user_properties: message.properties.user_properties.clone(),
    }
}

/// A replacement message, with what WIT does not carry taken from the
/// message it replaces.
fn replacement(original: &Message, r: firehose_wasm::Message) -> Message {
    let mut properties = original.properties.clone();
    properties.content_type = r.content_type;
    properties.user_properties = r.user_properties;
    if properties.payload_format_indicator == Some(1) && std::str::from_utf8(&r.payload).is_err() {
        properties.payload_format_indicator = None;
    }
    Message {
        topic: r.topic.into(),
        payload: Bytes::from(r.payload),
        qos: match r.qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
            Qos::ExactlyOnce => QoS::ExactlyOnce,
        },
        retain: r.retain,
        properties,
        expires_at: original.expires_at,
        publisher: original.publisher.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firehose_mqtt::PublishProperties;

    fn message(topic: &str, payload: &[u8]) -> Message {
        Message {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: PublishProperties {
                message_expiry_interval: Some(60),
                response_topic: Some("reply/here".into()),
                payload_format_indicator: Some(1),
                ..PublishProperties::default()
            },
            expires_at: None,
            publisher: "pub".into(),
        }
    }

    #[test]
    fn a_replacement_keeps_the_properties_wit_does_not_carry() {
        let original = message("a/b", b"{}");
        let mut r = firehose_wasm::Message::new("x/y", b"new".to_vec());
        r.content_type = Some("text/plain".into());
        r.user_properties = vec![("k".into(), "v".into())];
        let m = replacement(&original, r);
        assert_eq!(&*m.topic, "x/y");
        assert_eq!(&m.payload[..], b"new");
        assert_eq!(m.qos, QoS::AtMostOnce);
        assert_eq!(m.properties.message_expiry_interval, Some(60));
        assert_eq!(m.properties.response_topic.as_deref(), Some("reply/here"));
        assert_eq!(m.properties.content_type.as_deref(), Some("text/plain"));
        assert_eq!(m.properties.user_properties, vec![("k".into(), "v".into())]);
        assert_eq!(m.properties.payload_format_indicator, Some(1));
        assert_eq!(&*m.publisher, "pub");
    }

    #[test]
    fn a_binary_replacement_drops_the_utf8_format_indicator() {
        let original = message("a/b", b"{}");
        let r = firehose_wasm::Message::new("a/b", vec![0xff, 0xfe]);
        assert_eq!(
            replacement(&original, r)
                .properties
                .payload_format_indicator,
            None
        );
    }

    #[test]
    fn the_first_matching_chain_applies() {
        let chains = TransformChains::new(vec![
            Chain::new("gerrit", vec!["gerrit/#".into()], OnError::Drop, vec![]),
            Chain::new("all", vec!["#".into()], OnError::Pass, vec![]),
        ]);
        assert_eq!(chains.for_topic("gerrit/x/y").unwrap().name(), "gerrit");
        assert_eq!(chains.for_topic("demo/tick").unwrap().name(), "all");
        assert!(TransformChains::default().for_topic("a").is_none());
    }

    #[test]
    fn to_wasm_carries_topic_payload_and_properties() {
        let mut m = message("a/b", b"hi");
        m.properties.content_type = Some("application/json".into());
        m.properties.user_properties = vec![("a".into(), "1".into())];
        let w = to_wasm(&m);
        assert_eq!(w.topic, "a/b");
        assert_eq!(w.payload, b"hi");
        assert_eq!(w.qos, Qos::AtLeastOnce);
        assert_eq!(w.content_type.as_deref(), Some("application/json"));
        assert_eq!(w.user_properties, vec![("a".into(), "1".into())]);
    }
}
