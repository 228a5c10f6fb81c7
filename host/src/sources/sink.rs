//! Where a source's accepted messages go: into the broker, exactly like
//! a client's publish after its ACL check (transform chains, then the
//! router), with the publisher id `$source/<name>`.
//!
//! `publish` returns once the broker has taken the message (`publish-batch`
//! once it has taken them all, routed together): it awaits
//! the transform chain for the topic (a topic without one is routed at
//! once, [`SourceSink::try_publish`]), and the runtime yields to other
//! tasks when the source's scheduling budget is spent, which is the
//! backpressure a source feels. Routing itself never waits for a slow subscriber (each
//! subscriber's bounded queues apply their own limits, as for every
//! publisher).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use firehose_mqtt::{PublishProperties, QoS};
use firehose_wasm::{Qos, SinkError, SourceSink};

use crate::broker::Broker;
use crate::message::Message;

/// The publisher id of a source's messages.
pub fn publisher_id(source: &str) -> String {
    format!("$source/{source}")
}

/// Hands one source's messages to the broker.
pub struct BrokerSink {
    broker: Arc<Broker>,
    /// `$source/<name>`, shared by every message of the source.
    publisher: Arc<str>,
}

impl BrokerSink {
    pub fn new(broker: Arc<Broker>, source: &str) -> Self {
        BrokerSink {
            broker,
            publisher: Arc::from(publisher_id(source)),
        }
    }
}

impl SourceSink for BrokerSink {
    fn publish<'a>(
        &'a self,
        _source: &'a str,
        message: firehose_wasm::Message,
    ) -> Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>> {
        Box::pin(async move {
            let message = broker_message(&self.publisher, message);
            self.broker.ingest(Arc::new(message)).await;
            Ok(())
        })
    }

    /// Routes at once a message whose topic has no transform chain: the
    /// common case, without the boxed future of [`Self::publish`].
    fn try_publish(
        &self,
        _source: &str,
        message: firehose_wasm::Message,
    ) -> Result<(), firehose_wasm::Message> {
        if self.broker.transforms_apply(&message.topic) {
            return Err(message);
        }
        self.broker
            .route(Arc::new(broker_message(&self.publisher, message)));
        Ok(())
    }

    /// Runs each message through its topic's transform chain (if any),
    /// then routes them all together, in order, as a client connection
    /// routes what one read brought: subscribers are woken once for the
    /// lot. They count as taken only once routed.
    fn publish_batch<'a>(
        &'a self,
        _source: &'a str,
        messages: Vec<firehose_wasm::Message>,
        taken: &'a mut usize,
    ) -> Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>> {
        Box::pin(async move {
            let count = messages.len();
            // A batch is usually of one topic or a few: consecutive equal
            // topics share one `Arc<str>` instead of a copy each.
            let mut last_topic: Option<Arc<str>> = None;
            let messages: Vec<Arc<Message>> = messages
                .into_iter()
                .map(|mut message| {
                    let topic = match &last_topic {
                        Some(topic) if **topic == *message.topic => topic.clone(),
                        _ => Arc::from(std::mem::take(&mut message.topic)),
                    };
                    last_topic = Some(topic.clone());
                    Arc::new(broker_message_to(&self.publisher, topic, message))
                })
                .collect();
            let mut staged = Vec::with_capacity(count);
            self.broker.transform_all_into(messages, &mut staged).await;
            self.broker.route_staged(&mut staged);
            *taken = count;
            Ok(())
        })
    }
}

/// The broker's message for a source's `message`; `publisher` is the
/// source's [`publisher_id`].
pub fn broker_message(publisher: &Arc<str>, mut message: firehose_wasm::Message) -> Message {
    let topic = Arc::from(std::mem::take(&mut message.topic));
    broker_message_to(publisher, topic, message)
}

/// [`broker_message`] with the topic already made (`message.topic` is
/// ignored).
fn broker_message_to(
    publisher: &Arc<str>,
    topic: Arc<str>,
    message: firehose_wasm::Message,
) -> Message {
    Message {
        topic,
        payload: Bytes::from(message.payload),
        qos: match message.qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
            Qos::ExactlyOnce => QoS::ExactlyOnce,
        },
        retain: message.retain,
        properties: PublishProperties {
            content_type: message.content_type,
            user_properties: message.user_properties,
            ..PublishProperties::default()
        },
        expires_at: None,
        publisher: publisher.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_message_keeps_its_fields_and_names_its_source() {
        let m = firehose_wasm::Message {
            topic: "demo/clock/tick".into(),
            payload: b"{}".to_vec(),
            qos: Qos::AtLeastOnce,
            retain: true,
            content_type: Some("application/json".into()),
            user_properties: vec![("k".into(), "v".into())],
        };
        let b = broker_message(&Arc::from(publisher_id("demo")), m);
        assert_eq!(&*b.topic, "demo/clock/tick");
        assert_eq!(&b.payload[..], b"{}");
        assert_eq!(b.qos, QoS::AtLeastOnce);
        assert!(b.retain);
        assert_eq!(
            b.properties.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(b.properties.user_properties, vec![("k".into(), "v".into())]);
        assert_eq!(&*b.publisher, "$source/demo");
    }
}
