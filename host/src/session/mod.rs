//! Sessions: the state MQTT keeps per client id across connections.
//!
//! A [`Session`] holds the client's subscriptions (as it asked for them),
//! its delivery queues, the QoS 1/2 messages in flight in both directions
//! and its expiry. The router pushes [`Delivery`]s into it from any task;
//! the connection that currently serves the session drains them. When no
//! connection serves it (a persistent session while the client is away),
//! QoS 1/2 deliveries wait in a bounded queue and QoS 0 ones are dropped.
//!
//! Queues are bounded: a consumer that cannot keep up loses QoS 0 messages
//! (counted) and, past `max_queued_messages`, QoS 1/2 ones (counted), and
//! never slows the publisher or anyone else.

mod registry;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use firehose_mqtt::{QoS, SubscriptionOptions};
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

pub use registry::{Opened, SessionRegistry};

use crate::message::Message;
use crate::metrics::Metrics;

/// One message on its way to one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// The QoS it is delivered with: min(published, granted).
    pub qos: QoS,
    /// The RETAIN flag to send.
    pub retain: bool,
    /// MQTT 5 subscription identifiers of the matching subscriptions.
    pub subscription_ids: Option<Box<[u32]>>,
}

/// How far an outgoing QoS 1/2 message has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// PUBLISH sent, PUBACK (QoS 1) or PUBREC (QoS 2) awaited.
    Published,
    /// PUBREL sent, PUBCOMP awaited.
    Released,
}

/// An outgoing QoS 1/2 message not yet acknowledged.
#[derive(Debug, Clone)]
pub struct Inflight {
    pub packet_id: u16,
    pub delivery: Delivery,
    pub stage: Stage,
}

/// A subscription as the client made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    pub identifier: Option<u32>,
}

/// Per-session bounds, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub max_queued_messages: usize,
    pub max_queued_qos0: usize,
}

/// The mutable state of a session; lock it with [`Session::lock`].
#[derive(Debug)]
pub struct SessionState {
    /// A connection is serving this session.
    pub online: bool,
    /// Set when another connection takes the session over: the serving
    /// connection must close.
    pub taken_over: bool,
    /// Set when the broker shuts down: the serving connection must close.
    pub closing: bool,
    /// QoS 0 deliveries waiting to be written.
    pub qos0: VecDeque<Delivery>,
    /// QoS 1/2 deliveries waiting for room in the inflight window.
    pub queued: VecDeque<Delivery>,
    /// Outgoing QoS 1/2 messages awaiting acknowledgement, oldest first.
    pub inflight: VecDeque<Inflight>,
    next_packet_id: u16,
    /// Incoming QoS 2 packet ids received and not yet released.
    pub incoming_qos2: HashSet<u16>,
    /// The client's subscriptions by filter (as sent, `$share/...` included).
    pub subscriptions: HashMap<String, Subscription>,
    /// Session Expiry Interval, seconds; 0 ends the session with the
    /// connection, `u32::MAX` never expires.
    pub expiry_secs: u32,
    /// Bumped each time a connection starts serving the session, so a
    /// pending expiry can tell that the client came back in between.
    pub generation: u64,
    /// A will waiting for its Will Delay Interval while the client is away.
    pub pending_will: Option<Arc<Message>>,
}

impl SessionState {
    /// A packet id not used by any inflight message.
    pub fn allocate_packet_id(&mut self) -> u16 {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            if self.next_packet_id == 0 {
                continue;
            }
            let id = self.next_packet_id;
            if !self.inflight.iter().any(|f| f.packet_id == id) {
                return id;
            }
        }
    }

    /// The inflight entry with this packet id.
    pub fn inflight_mut(&mut self, packet_id: u16) -> Option<&mut Inflight> {
        self.inflight.iter_mut().find(|f| f.packet_id == packet_id)
    }

    /// Removes and returns the inflight entry with this packet id.
    pub fn take_inflight(&mut self, packet_id: u16) -> Option<Inflight> {
        let at = self
            .inflight
            .iter()
            .position(|f| f.packet_id == packet_id)?;
        self.inflight.remove(at)
    }

    /// True when nothing waits to be written.
    pub fn nothing_pending(&self) -> bool {
        self.qos0.is_empty() && self.queued.is_empty()
    }
}

/// A session, shared by the registry, the router and the serving connection.
#[derive(Debug)]
pub struct Session {
    pub client_id: Arc<str>,
    limits: QueueLimits,
    state: Mutex<SessionState>,
    /// Wakes the serving connection: deliveries arrived, or it was taken over.
    wake: Notify,
    /// Held by the connection serving the session for its whole life, so a
    /// taking-over connection can wait for the old one to finish.
    serving: Arc<tokio::sync::Mutex<()>>,
}

impl Session {
    pub fn new(client_id: Arc<str>, expiry_secs: u32, limits: QueueLimits) -> Session {
        Session {
            client_id,
            limits,
            state: Mutex::new(SessionState {
                online: false,
                taken_over: false,
                closing: false,
                qos0: VecDeque::new(),
                queued: VecDeque::new(),
                inflight: VecDeque::new(),
                next_packet_id: 0,
                incoming_qos2: HashSet::new(),
                subscriptions: HashMap::new(),
                expiry_secs,
                generation: 0,
                pending_will: None,
            }),
            wake: Notify::new(),
            serving: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Locks the session state. Keep the guard briefly: the router takes
    /// the same lock for every delivery.
    pub fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock()
    }

    /// Queues a delivery, dropping it (counted) when the bounds say so, and
    /// wakes the serving connection if the queues were empty.
    pub fn deliver(&self, delivery: Delivery, metrics: &Metrics) {
        let mut state = self.state.lock();
        let was_idle = state.nothing_pending();
        match delivery.qos {
            QoS::AtMostOnce => {
                if !state.online {
                    return;
                }
                if state.qos0.len() >= self.limits.max_queued_qos0 {
                    metrics.qos0_dropped.incr();
                    return;
                }
                state.qos0.push_back(delivery);
            }
            QoS::AtLeastOnce | QoS::ExactlyOnce => {
                if state.queued.len() >= self.limits.max_queued_messages {
                    metrics.queued_dropped.incr();
                    return;
                }
                state.queued.push_back(delivery);
            }
        }
        let online = state.online;
        drop(state);
        if was_idle && online {
            self.wake.notify_one();
        }
    }

    /// Wakes the serving connection (deliveries to look at, or a takeover).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`Session::wake`] or a delivery woke the connection.
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// Becomes the serving connection: waits for any previous one to let go.
    pub async fn serve(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.serving.clone().lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firehose_mqtt::PublishProperties;

    fn message(qos: QoS) -> Arc<Message> {
        Arc::new(Message {
            topic: "a/b".into(),
            payload: bytes::Bytes::from_static(b"x"),
            qos,
            retain: false,
            properties: PublishProperties::default(),
            expires_at: None,
            publisher: "p".into(),
        })
    }

    fn delivery(qos: QoS) -> Delivery {
        Delivery {
            message: message(qos),
            qos,
            retain: false,
            subscription_ids: None,
        }
    }

    fn session(max: usize) -> Session {
        Session::new(
            "c".into(),
            0,
            QueueLimits {
                max_queued_messages: max,
                max_queued_qos0: max,
            },
        )
    }

    #[test]
    fn qos0_to_an_offline_session_is_dropped_and_qos1_is_kept() {
        let metrics = Metrics::default();
        let s = session(10);
        s.deliver(delivery(QoS::AtMostOnce), &metrics);
        s.deliver(delivery(QoS::AtLeastOnce), &metrics);
        let state = s.lock();
        assert!(state.qos0.is_empty());
        assert_eq!(state.queued.len(), 1);
    }

    #[test]
    fn full_queues_drop_and_count() {
        let metrics = Metrics::default();
        let s = session(2);
        s.lock().online = true;
        for _ in 0..5 {
            s.deliver(delivery(QoS::AtMostOnce), &metrics);
            s.deliver(delivery(QoS::ExactlyOnce), &metrics);
        }
        assert_eq!(s.lock().qos0.len(), 2);
        assert_eq!(s.lock().queued.len(), 2);
        assert_eq!(metrics.qos0_dropped.get(), 3);
        assert_eq!(metrics.queued_dropped.get(), 3);
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let s = session(2);
        let mut state = s.lock();
        state.next_packet_id = u16::MAX - 1;
        let a = state.allocate_packet_id();
        assert_eq!(a, u16::MAX);
        state.inflight.push_back(Inflight {
            packet_id: 1,
            delivery: delivery(QoS::AtLeastOnce),
            stage: Stage::Published,
        });
        assert_eq!(state.allocate_packet_id(), 2);
    }
}
