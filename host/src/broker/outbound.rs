//! Writing deliveries to the client: QoS 0 as they come, QoS 1/2 within the
//! inflight window, each respecting the client's Maximum Packet Size and
//! using topic aliases when the client allows them (MQTT 5).
//!
//! Runs on the connection's task; it only moves deliveries from the
//! session's queues into the write buffer, up to a high-water mark, so a
//! client that does not read holds at most that much here and the rest of
//! its backlog is bounded by the session's queues.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use firehose_mqtt::encode::OutgoingPublish;
use firehose_mqtt::{ConnectProperties, Packet, PubResponse, QoS};

use super::connection::{Client, WRITE_HIGH_WATER};
use crate::session::{Delivery, Inflight, Stage};

/// Write buffer space reserved at once when deliveries are waiting.
const WRITE_CHUNK: usize = 16 * 1024;

/// Per-connection outbound state.
#[derive(Debug)]
pub(super) struct Outbound {
    /// Topic aliases the client accepts from us (its Topic Alias Maximum).
    alias_max: u16,
    aliases: HashMap<Arc<str>, u16>,
    /// The client's Maximum Packet Size.
    max_packet: u32,
    /// How many QoS 1/2 messages may be unacknowledged at once.
    window: usize,
    /// Inflight messages of a resumed session still have to be resent.
    resend: bool,
}

impl Outbound {
    pub fn new(client: &ConnectProperties, max_inflight: u16, resumed: bool) -> Outbound {
        let receive_maximum = client.receive_maximum.unwrap_or(u16::MAX);
        Outbound {
            alias_max: client.topic_alias_maximum.unwrap_or(0),
            aliases: HashMap::new(),
            max_packet: client.maximum_packet_size.unwrap_or(u32::MAX),
            window: usize::from(max_inflight.min(receive_maximum)),
            resend: resumed,
        }
    }
}

impl Client {
    /// Moves deliveries from the session queues into the write buffer.
    pub(super) fn fill_outbound(&mut self) {
        if self.wbuf.len() >= WRITE_HIGH_WATER {
            return;
        }
        let session = self.session.clone();
        let mut state = session.lock();
        if state.nothing_pending() && !self.outbound.resend {
            return;
        }
        if self.wbuf.capacity() - self.wbuf.len() < WRITE_CHUNK / 4 {
            // One allocation for a batch instead of doubling from one packet.
            self.wbuf.reserve(WRITE_CHUNK);
        }
        let now = Instant::now();
        if self.outbound.resend {
            self.outbound.resend = false;
            let inflight: Vec<Inflight> = state.inflight.iter().cloned().collect();
            for entry in inflight {
                match entry.stage {
                    Stage::Published => {
                        self.write_delivery(&entry.delivery, Some(entry.packet_id), true, now);
                    }
                    Stage::Released => {
                        self.send(&Packet::PubRel(PubResponse::new(entry.packet_id)));
                    }
                }
            }
        }
        while self.wbuf.len() < WRITE_HIGH_WATER {
            let Some(delivery) = state.qos0.pop_front() else {
                break;
            };
            if delivery.message.is_expired(now) {
                self.broker.metrics.expired_dropped.incr();
                continue;
            }
            self.write_delivery(&delivery, None, false, now);
        }
        while self.wbuf.len() < WRITE_HIGH_WATER && state.inflight.len() < self.outbound.window {
            let Some(delivery) = state.queued.pop_front() else {
                break;
            };
            if delivery.message.is_expired(now) {
                self.broker.metrics.expired_dropped.incr();
                continue;
            }
            let packet_id = state.allocate_packet_id();
            if self.write_delivery(&delivery, Some(packet_id), false, now) {
                state.inflight.push_back(Inflight {
                    packet_id,
                    delivery,
                    stage: Stage::Published,
                });
            }
        }
    }

    /// Encodes one delivery as a PUBLISH. False when it was dropped because
    /// it exceeds the client's Maximum Packet Size.
    fn write_delivery(
        &mut self,
        delivery: &Delivery,
        packet_id: Option<u16>,
        dup: bool,
        now: Instant,
    ) -> bool {
        let message = &delivery.message;
        let v5 = self.version.is_v5();
        let mut topic: &str = &message.topic;
        let mut topic_alias = None;
        let mut new_alias = None;
        if v5 && self.outbound.alias_max > 0 {
            match self.outbound.aliases.get(&message.topic) {
                Some(&alias) => {
                    topic_alias = Some(alias);
                    topic = "";
                }
                None if self.outbound.aliases.len() < usize::from(self.outbound.alias_max) => {
                    let alias = self.outbound.aliases.len() as u16 + 1;
                    topic_alias = Some(alias);
                    new_alias = Some(alias);
                }
                None => {}
            }
        }
        let publish = OutgoingPublish {
            dup,
            qos: if packet_id.is_some() {
                delivery.qos
            } else {
                QoS::AtMostOnce
            },
            retain: delivery.retain,
            topic,
            packet_id,
            properties: &message.properties,
            message_expiry_interval: if v5 {
                message.remaining_expiry(now)
            } else {
                None
            },
            topic_alias,
            subscription_identifiers: delivery.subscription_ids.as_deref().unwrap_or_default(),
            payload: &message.payload,
        };
        if publish.encoded_len(self.version) > self.outbound.max_packet as usize {
            self.broker.metrics.oversize_dropped.incr();
            return false;
        }
        if let Some(alias) = new_alias {
            self.outbound.aliases.insert(message.topic.clone(), alias);
        }
        publish.encode(self.version, &mut self.wbuf);
        self.broker.metrics.messages_delivered.incr();
        true
    }
}
