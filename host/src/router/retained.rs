//! Retained messages: the last retained message per topic, handed to new
//! subscribers. An empty retained payload clears the topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use firehose_mqtt::topic::matches;

use crate::message::Message;

/// The retained message store.
#[derive(Debug, Default)]
pub struct RetainedStore {
    by_topic: HashMap<Arc<str>, Arc<Message>>,
}

impl RetainedStore {
    /// Stores `message` as its topic's retained message, or clears the
    /// topic when the payload is empty.
    pub fn update(&mut self, message: &Arc<Message>) {
        if message.payload.is_empty() {
            self.by_topic.remove(&message.topic);
        } else {
            // A copy of its own: the received payload shares its read
            // buffer, which a long-lived retained message must not pin.
            self.by_topic
                .insert(message.topic.clone(), Arc::new(message.detached()));
        }
    }

    /// The unexpired retained messages whose topic `filter` matches;
    /// expired ones met on the way are dropped.
    pub fn matching(&mut self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        self.by_topic.retain(|_, m| !m.is_expired(now));
        self.by_topic
            .values()
            .filter(|m| matches(filter, &m.topic))
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_topic.len()
    }
}
