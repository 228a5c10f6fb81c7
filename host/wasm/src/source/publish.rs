//! `firehose:bus/publish`: how a source puts a message on the bus.
//!
//! Before a message reaches the broker the host checks, in this order:
//!
//! 1. the source is not being stopped (`shutting-down`: return from `run`);
//! 2. the topic is a valid MQTT topic name (`invalid-topic`);
//! 3. the topic lies under the source's prefix (`outside-prefix`);
//! 4. topic, payload and properties fit in the size limit (`too-large`).
//!
//! `publish-batch` (since 0.1.1) runs the same checks on every message of
//! its list first; the messages before the first refusal go to the sink
//! together ([`SourceSink::publish_batch`]), and the refusal is returned
//! with how many were published.
//!
//! A refused message is counted in the source's `rejected` counter and
//! logged (rate-limited) with the source's name. An accepted one is handed
//! to the [`SourceSink`] and `publish` returns only once the sink took it:
//! that is the backpressure. If the source is stopped while the sink is
//! busy, `publish` returns `shutting-down` and the message is not
//! published.
//!
//! **Prefix rule.** A prefix names a subtree: `gerrit` (or `gerrit/`,
//! the same) admits `gerrit/a` and `gerrit/a/b`, but neither `gerrit`
//! itself nor `gerritx/a`. The bare prefix topic is refused so that a
//! source's topics are always below the level it owns, which is what the
//! subscription filter `gerrit/#` of a subscriber who only wants that
//! source's events relies on.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::state::SourceState;
use super::{SinkError, SourceSink, SourceStats};
use crate::bindings::source::firehose::bus::publish::{self, BatchError, PublishError};
use crate::bindings::source::firehose::bus::types as wit;
use crate::types::Message;

/// A source's topic prefix: the subtree it may publish in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPrefix {
    /// The prefix with exactly one trailing `/`.
    with_slash: String,
}

impl TopicPrefix {
    /// Parses a configured prefix (`gerrit` or `gerrit/`, `a/b`). Refused:
    /// empty, wildcards, NUL, empty levels, and `$` topics (reserved for
    /// the broker).
    pub fn parse(prefix: &str) -> Result<TopicPrefix, String> {
        let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
        if trimmed.is_empty() {
            return Err("must name at least one topic level (e.g. \"gerrit\")".into());
        }
        if !firehose_mqtt::topic::valid_topic_name(trimmed) {
            return Err(format!("{prefix:?} is not a valid topic (no +, # or NUL)"));
        }
        if trimmed.starts_with('$') {
            return Err(format!(
                "{prefix:?}: topics starting with $ are the broker's"
            ));
        }
        if trimmed.split('/').any(str::is_empty) {
            return Err(format!("{prefix:?} has an empty topic level"));
        }
        Ok(TopicPrefix {
            with_slash: format!("{trimmed}/"),
        })
    }

    /// Whether `topic` lies under this prefix (strictly below it).
    pub fn admits(&self, topic: &str) -> bool {
        topic.len() > self.with_slash.len() && topic.starts_with(&self.with_slash)
    }

    /// The prefix as the guest is told it: `gerrit/`.
    pub fn as_str(&self) -> &str {
        &self.with_slash
    }
}

impl std::fmt::Display for TopicPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.with_slash)
    }
}

/// What the publish import of one run needs.
pub(crate) struct Publisher {
    pub prefix: TopicPrefix,
    pub max_message_bytes: u32,
    pub sink: Arc<dyn SourceSink>,
    pub stop: watch::Receiver<bool>,
    pub stats: Arc<SourceStats>,
}

/// The size of a message as the host counts it against the limit.
fn message_size(m: &wit::Message) -> usize {
    m.topic.len()
        + m.payload.len()
        + m.content_type.as_ref().map_or(0, String::len)
        + m.user_properties
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// The checks of steps 2 to 4; `Ok` if the message may be published.
pub(crate) fn check(
    prefix: &TopicPrefix,
    max_bytes: u32,
    m: &wit::Message,
) -> Result<(), PublishError> {
    let topic = &m.topic;
    if !firehose_mqtt::topic::valid_topic_name(topic) {
        // One scan for the common case; the reason only for a refusal.
        let why = if topic.is_empty() {
            "the topic is empty"
        } else if topic.bytes().any(|b| b == b'+' || b == b'#') {
            "a topic name must not contain the wildcards + or #"
        } else {
            "not a valid MQTT topic name (NUL, or longer than 65535 bytes)"
        };
        return Err(PublishError::InvalidTopic(why.into()));
    }
    if !prefix.admits(topic) {
        return Err(PublishError::OutsidePrefix(prefix.as_str().to_owned()));
    }
    if message_size(m) > max_bytes as usize {
        return Err(PublishError::TooLarge(max_bytes));
    }
    Ok(())
}

impl publish::Host for SourceState {
    async fn publish(&mut self, message: wit::Message) -> Result<(), PublishError> {
        let publisher = &mut self.publisher;
        if *publisher.stop.borrow() {
            return Err(PublishError::ShuttingDown);
        }
        if let Err(error) = check(&publisher.prefix, publisher.max_message_bytes, &message) {
            self.note_rejected(&message.topic, &error);
            return Err(error);
        }
        let publisher = &mut self.publisher;
        let message = Message::from(message);
        let topic_len = message.topic.len();
        let result = match publisher.sink.try_publish(&self.name, message) {
            Ok(()) => Ok(()),
            Err(message) => tokio::select! {
                biased;
                result = publisher.sink.publish(&self.name, message) => result,
                _ = publisher.stop.wait_for(|stop| *stop) => Err(SinkError::ShuttingDown),
            },
        };
        // A source that publishes as fast as it can must not keep its
        // worker thread from the subscribers' tasks that drain what it
        // routed: this yields once the task's scheduling budget is spent
        // (every ~128 publishes), as a socket read would.
        tokio::task::coop::consume_budget().await;
        match result {
            Ok(()) => {
                publisher.stats.published.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(
                    target: "firehose_wasm::source",
                    source = &*self.name,
                    topic_len,
                    "published"
                );
                Ok(())
            }
            Err(SinkError::ShuttingDown) => Err(PublishError::ShuttingDown),
        }
    }

    async fn publish_batch(&mut self, mut messages: Vec<wit::Message>) -> Result<(), BatchError> {
        if *self.publisher.stop.borrow() {
            return Err(BatchError {
                published: 0,
                error: PublishError::ShuttingDown,
            });
        }
        // The checks need nothing but the message, so they all run first:
        // what passes is the list up to the first refusal, published whole.
        let refused = messages.iter().enumerate().find_map(|(at, m)| {
            check(&self.publisher.prefix, self.publisher.max_message_bytes, m)
                .err()
                .map(|error| (at, error))
        });
        if let Some((at, error)) = &refused {
            self.note_rejected(&messages[*at].topic, error);
            messages.truncate(*at);
        }
        let count = messages.len();
        if count > 0 {
            let publisher = &mut self.publisher;
            let messages: Vec<Message> = messages.into_iter().map(Message::from).collect();
            let mut taken = 0;
            let result = tokio::select! {
                biased;
                result = publisher.sink.publish_batch(&self.name, messages, &mut taken) => result,
                _ = publisher.stop.wait_for(|stop| *stop) => Err(SinkError::ShuttingDown),
            };
            publisher
                .stats
                .published
                .fetch_add(taken as u64, Ordering::Relaxed);
            // One batch is one unit of the task's budget, as one socket
            // read of many packets is for a client's connection.
            tokio::task::coop::consume_budget().await;
            tracing::trace!(
                target: "firehose_wasm::source",
                source = &*self.name,
                messages = taken,
                "published a batch"
            );
            if let Err(SinkError::ShuttingDown) = result {
                return Err(BatchError {
                    published: batch_index(taken),
                    error: PublishError::ShuttingDown,
                });
            }
        }
        match refused {
            None => Ok(()),
            Some((at, error)) => Err(BatchError {
                published: batch_index(at),
                error,
            }),
        }
    }
}

/// A position in a batch, as the guest's `u32` (a list in a 32-bit
/// guest's memory never has more elements).
fn batch_index(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, payload: &[u8]) -> wit::Message {
        wit::Message {
            topic: topic.into(),
            payload: payload.into(),
            qos: wit::Qos::AtMostOnce,
            retain: false,
            content_type: None,
            user_properties: Vec::new(),
        }
    }

    #[test]
    fn a_prefix_admits_its_subtree_only() {
        for text in ["gerrit", "gerrit/"] {
            let p = TopicPrefix::parse(text).unwrap();
            assert_eq!(p.as_str(), "gerrit/");
            assert!(p.admits("gerrit/a"));
            assert!(p.admits("gerrit/a/b"));
            assert!(!p.admits("gerrit"));
            assert!(!p.admits("gerrit/"));
            assert!(!p.admits("gerritx/a"));
            assert!(!p.admits("other/gerrit/a"));
        }
    }

    #[test]
    fn bad_prefixes_are_refused_saying_why() {
        for (text, why) in [
            ("", "at least one topic level"),
            ("/", "at least one topic level"),
            ("a/+", "not a valid topic"),
            ("a/#", "not a valid topic"),
            ("$SYS", "broker's"),
            ("a//b", "empty topic level"),
        ] {
            let e = TopicPrefix::parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn checks_name_the_rule_that_was_broken() {
        let p = TopicPrefix::parse("demo").unwrap();
        assert_eq!(check(&p, 100, &msg("demo/a", b"x")), Ok(()));
        assert_eq!(
            check(&p, 100, &msg("other/a", b"x")),
            Err(PublishError::OutsidePrefix("demo/".into()))
        );
        assert!(matches!(
            check(&p, 100, &msg("demo/+", b"x")),
            Err(PublishError::InvalidTopic(why)) if why.contains("wildcards")
        ));
        assert!(matches!(
            check(&p, 100, &msg("", b"x")),
            Err(PublishError::InvalidTopic(_))
        ));
        assert!(matches!(
            check(&p, 100, &msg("demo/\0", b"x")),
            Err(PublishError::InvalidTopic(_))
        ));
        assert_eq!(
            check(&p, 10, &msg("demo/a", &[0; 5])),
            Err(PublishError::TooLarge(10))
        );
    }
}
