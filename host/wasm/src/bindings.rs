//! Bindings generated from `wit/` (package `firehose:bus`) for the policy
//! worlds and the source world. Only this crate sees them: the broker gets the plain types of
//! [`crate::types`], converted here.
//!
//! Exports are called with `call_async` (the WASI imports are async);
//! `config` and `log` are plain synchronous host functions.

use crate::types::{CacheHints, Client, Decision, Message, Outcome, Qos};

/// World `acl-policy`; also the home of the shared interfaces (`types`,
/// `config`, `log`) that the other worlds reuse through `with`.
pub(crate) mod acl {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "acl-policy",
        exports: { default: async },
    });
}

/// World `transform-policy`.
pub(crate) mod transform {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "transform-policy",
        exports: { default: async },
        with: {
            "firehose:bus/types": super::acl::firehose::bus::types,
            "firehose:bus/config": super::acl::firehose::bus::config,
            "firehose:bus/log": super::acl::firehose::bus::log,
        },
    });
}

/// World `source`: the shared interfaces come from [`acl`]; `publish` and
/// `publish-batch` are async (they await the broker's backpressure), and
/// so is `run`.
pub(crate) mod source {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "source",
        imports: {
            "firehose:bus/publish.publish": async,
            "firehose:bus/publish.publish-batch": async,
        },
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
        with: {
            "firehose:bus/types": super::acl::firehose::bus::types,
            "firehose:bus/config": super::acl::firehose::bus::config,
            "firehose:bus/log": super::acl::firehose::bus::log,
        },
    });
}

use acl::exports::firehose::bus::acl::Cacheable;
use acl::firehose::bus::types as wit;
use transform::exports::firehose::bus::transform::Outcome as WitOutcome;

impl From<Qos> for wit::Qos {
    fn from(qos: Qos) -> Self {
        match qos {
            Qos::AtMostOnce => wit::Qos::AtMostOnce,
            Qos::AtLeastOnce => wit::Qos::AtLeastOnce,
            Qos::ExactlyOnce => wit::Qos::ExactlyOnce,
        }
    }
}

impl From<wit::Qos> for Qos {
    fn from(qos: wit::Qos) -> Self {
        match qos {
            wit::Qos::AtMostOnce => Qos::AtMostOnce,
            wit::Qos::AtLeastOnce => Qos::AtLeastOnce,
            wit::Qos::ExactlyOnce => Qos::ExactlyOnce,
        }
    }
}

impl From<&Message> for wit::Message {
    fn from(m: &Message) -> Self {
        wit::Message {
            topic: m.topic.clone(),
            payload: m.payload.clone(),
            qos: m.qos.into(),
            retain: m.retain,
            content_type: m.content_type.clone(),
            user_properties: m.user_properties.clone(),
        }
    }
}

impl From<Message> for wit::Message {
    fn from(m: Message) -> Self {
        wit::Message {
            topic: m.topic,
            payload: m.payload,
            qos: m.qos.into(),
            retain: m.retain,
            content_type: m.content_type,
            user_properties: m.user_properties,
        }
    }
}

impl From<wit::Message> for Message {
    fn from(m: wit::Message) -> Self {
        Message {
            topic: m.topic,
            payload: m.payload,
            qos: m.qos.into(),
            retain: m.retain,
            content_type: m.content_type,
            user_properties: m.user_properties,
        }
    }
}

impl From<&Client> for wit::Client {
    fn from(c: &Client) -> Self {
        wit::Client {
            id: c.id.clone(),
            username: c.username.clone(),
            listener: c.listener.clone(),
            remote_address: c.remote_address.clone(),
            tls_identity: c.tls_identity.clone(),
        }
    }
}

impl From<wit::Decision> for Decision {
    fn from(d: wit::Decision) -> Self {
        match d {
            wit::Decision::Allow => Decision::Allow,
            wit::Decision::Deny(reason) => Decision::Deny(reason),
        }
    }
}

impl From<WitOutcome> for Outcome {
    fn from(o: WitOutcome) -> Self {
        match o {
            WitOutcome::Pass => Outcome::Pass,
            WitOutcome::Drop => Outcome::Drop,
            WitOutcome::Replace(messages) => {
                Outcome::Replace(messages.into_iter().map(Message::from).collect())
            }
        }
    }
}

impl From<Cacheable> for CacheHints {
    fn from(c: Cacheable) -> Self {
        CacheHints {
            subscribe: c.contains(Cacheable::SUBSCRIBE),
            publish: c.contains(Cacheable::PUBLISH),
        }
    }
}
