//! The router: who is subscribed to what, and getting each accepted message
//! to every matching session.
//!
//! Publishing happens on the publisher's own task: it matches the topic in
//! the subscription tree under a read lock and pushes a [`Delivery`] into
//! each matching session's bounded queue. No central router task, so no
//! single queue that a slow consumer could fill.

mod retained;
mod trie;

use std::sync::Arc;
use std::time::Instant;

use firehose_mqtt::{QoS, SubscriptionOptions};
use parking_lot::{Mutex, RwLock};

use crate::message::Message;
use crate::metrics::Metrics;
use crate::session::{Delivery, Session};
use retained::RetainedStore;
use trie::{Subscriber, Trie};

/// Subscriptions and retained messages.
#[derive(Debug, Default)]
pub struct Router {
    trie: RwLock<Trie>,
    retained: Mutex<RetainedStore>,
}

/// A filter as the router files it: a shared group, if any, and the filter
/// the topics are matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterKey<'a> {
    pub group: Option<&'a str>,
    pub filter: &'a str,
}

impl Router {
    /// Adds (or replaces) a subscription. Returns true when it is new.
    pub fn subscribe(
        &self,
        key: FilterKey<'_>,
        session: &Arc<Session>,
        options: SubscriptionOptions,
        identifier: Option<u32>,
    ) -> bool {
        let subscriber = Subscriber {
            session: session.clone(),
            options,
            identifier,
        };
        self.trie.write().insert(key.filter, key.group, subscriber)
    }

    /// Removes a subscription; true when there was one.
    pub fn unsubscribe(&self, key: FilterKey<'_>, session: &Arc<Session>) -> bool {
        self.trie.write().remove(key.filter, key.group, session)
    }

    /// The retained messages a new subscription to `filter` receives.
    pub fn retained_for(&self, filter: &str) -> Vec<Arc<Message>> {
        self.retained.lock().matching(filter, Instant::now())
    }

    /// Number of retained topics.
    pub fn retained_count(&self) -> usize {
        self.retained.lock().len()
    }

    /// Routes an accepted message: updates the retained store if it is
    /// retained, then queues it for every matching subscription. Returns
    /// the number of sessions it was queued for.
    pub fn publish(&self, message: Arc<Message>, metrics: &Metrics) -> usize {
        if message.retain {
            self.retained.lock().update(&message);
        }
        let trie = self.trie.read();
        let mut matches = trie.matches(&message.topic);
        if matches.nodes > 1 {
            // One copy per session: sort so a session's subscriptions are
            // adjacent, then merge them.
            matches
                .subscribers
                .sort_by_key(|s| Arc::as_ptr(&s.session) as usize);
        }
        let mut delivered = 0;
        let mut i = 0;
        let subs = &matches.subscribers;
        while i < subs.len() {
            let mut j = i + 1;
            while j < subs.len() && Arc::ptr_eq(&subs[j].session, &subs[i].session) {
                j += 1;
            }
            if let Some(delivery) = merge(&message, &subs[i..j]) {
                subs[i].session.deliver(delivery, metrics);
                delivered += 1;
            }
            i = j;
        }
        delivered
    }
}

/// The one delivery due to a session from its matching subscriptions:
/// the highest granted QoS, every subscription identifier, retained as
/// published if any subscription asks for it. `None` when every matching
/// subscription is no-local and the session published the message.
fn merge(message: &Arc<Message>, subs: &[&Subscriber]) -> Option<Delivery> {
    let own = *subs[0].session.client_id == *message.publisher;
    let mut qos = None::<QoS>;
    let mut retain = false;
    let mut ids: Vec<u32> = Vec::new();
    for sub in subs {
        if own && sub.options.no_local {
            continue;
        }
        let granted = sub.options.qos.min(message.qos);
        qos = Some(qos.map_or(granted, |q| q.max(granted)));
        retain |= sub.options.retain_as_published && message.retain;
        if let Some(id) = sub.identifier {
            ids.push(id);
        }
    }
    Some(Delivery {
        message: message.clone(),
        qos: qos?,
        retain,
        subscription_ids: (!ids.is_empty()).then(|| ids.into_boxed_slice()),
    })
}
