//! What a connected client sends: PUBLISH and its acknowledgements,
//! SUBSCRIBE, UNSUBSCRIBE, PINGREQ and DISCONNECT.
//!
//! Every PUBLISH and every subscription goes through the authorizer. A
//! refused PUBLISH is acknowledged as the protocol requires (MQTT 5 QoS 1/2
//! with reason 0x87, everything else as if accepted) and never routed,
//! retained or counted as delivered: readers that announce themselves keep
//! their connection.

use std::sync::Arc;
use std::time::Instant;

use firehose_mqtt::topic::valid_topic_filter;
use firehose_mqtt::{
    Disconnect, Packet, PubResponse, Publish, QoS, ReasonProperties, RetainHandling, SubAck,
    Subscribe, UnsubAck, Unsubscribe, reason,
};

use super::connection::{Client, Ending};
use super::filter_key;
use crate::auth::Decision;
use crate::message::Message;
use crate::session::{Delivery, Stage, Subscription};

/// What [`Client::handle`] did with a packet.
pub(super) enum Handled {
    /// Handled; `Some` ends the connection.
    Done(Option<Ending>),
    /// A SUBSCRIBE: each filter goes to the authorizer.
    Subscribe(Subscribe),
    /// A PUBLISH whose decision is not cached.
    AskPublish(Publish),
    /// An allowed PUBLISH whose topic has a transform chain.
    Transform(Publish),
}

/// Where a PUBLISH stands after its synchronous checks.
enum PublishStep {
    Done(Option<Ending>),
    Ask(Publish),
    Transform(Publish),
}

impl Client {
    /// Handles one packet as far as it can without waiting: what needs the
    /// authorizer comes back as [`Handled::Subscribe`] or
    /// [`Handled::AskPublish`] for [`Client::handle_async`].
    pub(super) fn handle(&mut self, packet: Packet) -> Handled {
        Handled::Done(match packet {
            Packet::Publish(publish) => match self.on_publish(publish) {
                PublishStep::Done(ending) => ending,
                PublishStep::Ask(publish) => return Handled::AskPublish(publish),
                PublishStep::Transform(publish) => return Handled::Transform(publish),
            },
            Packet::PubAck(ack) => {
                let mut state = self.session.lock();
                if state.inflight_mut(ack.packet_id).is_some_and(|f| {
                    f.stage == Stage::Published && f.delivery.qos == QoS::AtLeastOnce
                }) {
                    state.take_inflight(ack.packet_id);
                }
                None
            }
            Packet::PubRec(rec) => {
                let release = {
                    let mut state = self.session.lock();
                    match state.inflight_mut(rec.packet_id) {
                        Some(f) if f.delivery.qos == QoS::ExactlyOnce && rec.reason >= 0x80 => {
                            state.take_inflight(rec.packet_id);
                            None
                        }
                        Some(f) if f.delivery.qos == QoS::ExactlyOnce => {
                            f.stage = Stage::Released;
                            Some(reason::SUCCESS)
                        }
                        _ => Some(reason::PACKET_IDENTIFIER_NOT_FOUND),
                    }
                };
                if let Some(code) = release {
                    self.send(&Packet::PubRel(self.response(rec.packet_id, code)));
                }
                None
            }
            Packet::PubComp(comp) => {
                let mut state = self.session.lock();
                if state
                    .inflight_mut(comp.packet_id)
                    .is_some_and(|f| f.stage == Stage::Released)
                {
                    state.take_inflight(comp.packet_id);
                }
                None
            }
            Packet::PubRel(rel) => {
                let known = self.session.lock().incoming_qos2.remove(&rel.packet_id);
                let code = if known {
                    reason::SUCCESS
                } else {
                    reason::PACKET_IDENTIFIER_NOT_FOUND
                };
                self.send(&Packet::PubComp(self.response(rel.packet_id, code)));
                None
            }
            Packet::Subscribe(subscribe) => return Handled::Subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe) => {
                self.on_unsubscribe(unsubscribe);
                None
            }
            Packet::PingReq => {
                self.send(&Packet::PingResp);
                None
            }
            Packet::Disconnect(disconnect) => Some(self.on_disconnect(disconnect)),
            Packet::Auth(_) => Some(Ending::Protocol(
                reason::PROTOCOL_ERROR,
                "AUTH without enhanced authentication".into(),
            )),
            other => Some(Ending::Protocol(
                reason::PROTOCOL_ERROR,
                format!("{} is not sent by clients", other.name()),
            )),
        })
    }

    /// Finishes what [`Client::handle`] could not: the parts that wait for
    /// the authorizer. Boxed, so that the connection's long-lived future
    /// does not carry their state while idle.
    pub(super) async fn handle_async(&mut self, handled: Handled) -> Option<Ending> {
        match handled {
            Handled::Done(ending) => ending,
            Handled::Subscribe(subscribe) => Box::pin(self.on_subscribe(subscribe)).await,
            Handled::AskPublish(publish) => Box::pin(self.on_publish_uncached(publish)).await,
            Handled::Transform(publish) => Box::pin(self.stage_publish(publish)).await,
        }
    }

    /// An acknowledgement with a reason code where the version has them.
    fn response(&self, packet_id: u16, code: u8) -> PubResponse {
        PubResponse {
            packet_id,
            reason: if self.version.is_v5() { code } else { 0 },
            properties: ReasonProperties::default(),
        }
    }

    /// The synchronous part of a PUBLISH: topic alias, QoS 2 bookkeeping,
    /// payload format, and the decision when it is cached. `Ask` when the
    /// authorizer must be asked first.
    fn on_publish(&mut self, mut publish: Publish) -> PublishStep {
        // Topic alias (MQTT 5): set it, or resolve an empty topic by it.
        if let Some(alias) = publish.properties.topic_alias.take() {
            if alias == 0 || alias > self.broker.limits.topic_alias_maximum {
                return PublishStep::Done(Some(Ending::Protocol(
                    reason::TOPIC_ALIAS_INVALID,
                    format!("topic alias {alias} out of range"),
                )));
            }
            if publish.topic.is_empty() {
                match self.aliases_in.get(&alias) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => {
                        return PublishStep::Done(Some(Ending::Protocol(
                            reason::PROTOCOL_ERROR,
                            format!("topic alias {alias} was never set"),
                        )));
                    }
                }
            } else {
                self.aliases_in.insert(alias, publish.topic.clone());
            }
        }

        if publish.qos == QoS::ExactlyOnce {
            let packet_id = publish.packet_id.unwrap_or(0);
            let state = self.session.lock();
            if state.incoming_qos2.contains(&packet_id) {
                // A retransmission of a message we already have.
                drop(state);
                self.send(&Packet::PubRec(self.response(packet_id, reason::SUCCESS)));
                return PublishStep::Done(None);
            }
            if state.incoming_qos2.len() >= usize::from(self.broker.limits.receive_maximum) {
                return PublishStep::Done(Some(Ending::Protocol(
                    reason::RECEIVE_MAXIMUM_EXCEEDED,
                    "more unacknowledged QoS 2 publishes than Receive Maximum".into(),
                )));
            }
        }

        if publish.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&publish.payload).is_err()
        {
            return PublishStep::Done(self.acknowledge(&publish, reason::PAYLOAD_FORMAT_INVALID));
        }
        match self.cached_publish_decision(&publish.topic) {
            Some(Decision::Allow) if self.broker.transforms_apply(&publish.topic) => {
                PublishStep::Transform(publish)
            }
            Some(Decision::Allow) => {
                let message = self.message(&publish);
                self.staged.push(message);
                PublishStep::Done(self.acknowledge(&publish, reason::SUCCESS))
            }
            Some(Decision::Deny(why)) => PublishStep::Done(self.refused(&publish, &why)),
            None => PublishStep::Ask(publish),
        }
    }

    /// A PUBLISH whose decision is not remembered: the authorizer decides.
    async fn on_publish_uncached(&mut self, publish: Publish) -> Option<Ending> {
        match self.ask_publish(&publish).await {
            Decision::Allow => self.stage_publish(publish).await,
            Decision::Deny(why) => self.refused(&publish, &why),
        }
    }

    /// An allowed PUBLISH: through the transform chain of its topic into
    /// [`Client::staged`], routed with the rest of this read's messages,
    /// then acknowledged.
    async fn stage_publish(&mut self, publish: Publish) -> Option<Ending> {
        let message = self.message(&publish);
        self.broker.transform_into(message, &mut self.staged).await;
        self.acknowledge(&publish, reason::SUCCESS)
    }

    /// Counts and acknowledges a refused PUBLISH; nothing is routed.
    fn refused(&mut self, publish: &Publish, why: &str) -> Option<Ending> {
        self.broker
            .note_refused_publish(&self.info, &publish.topic, why);
        self.acknowledge(publish, reason::NOT_AUTHORIZED)
    }

    /// The acknowledgement a PUBLISH gets, by QoS and outcome.
    fn acknowledge(&mut self, publish: &Publish, code: u8) -> Option<Ending> {
        match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => {
                if code == reason::PAYLOAD_FORMAT_INVALID && self.version.is_v5() {
                    return Some(Ending::Protocol(code, "payload is not UTF-8".into()));
                }
            }
            (QoS::AtLeastOnce, Some(id)) => {
                self.send(&Packet::PubAck(self.response(id, code)));
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // A refusal (MQTT 5) ends the exchange at PUBREC; otherwise
                // the id waits for PUBREL.
                if code == reason::SUCCESS || !self.version.is_v5() {
                    self.session.lock().incoming_qos2.insert(id);
                }
                self.send(&Packet::PubRec(self.response(id, code)));
            }
        }
        None
    }

    /// The routed message of an authorized PUBLISH.
    fn message(&self, publish: &Publish) -> Arc<Message> {
        let now = Instant::now();
        let mut properties = publish.properties.clone();
        properties.topic_alias = None;
        let message = Message {
            topic: publish.topic.as_str().into(),
            payload: publish.payload.clone(),
            qos: publish.qos,
            retain: publish.retain,
            expires_at: Message::expiry_from(properties.message_expiry_interval, now),
            properties,
            publisher: self.info.client_id.clone(),
        };
        Arc::new(message)
    }

    async fn on_subscribe(&mut self, subscribe: Subscribe) -> Option<Ending> {
        let v5 = self.version.is_v5();
        let failure = |code: u8| if v5 { code } else { reason::V3_SUBACK_FAILURE };
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained = Vec::new();
        for (filter, options) in &subscribe.filters {
            let key = match filter_key(filter) {
                Ok(key) if valid_topic_filter(key.filter) => key,
                _ => {
                    codes.push(failure(reason::TOPIC_FILTER_INVALID));
                    continue;
                }
            };
            if key.group.is_some() && options.no_local && v5 {
                return Some(Ending::Protocol(
                    reason::PROTOCOL_ERROR,
                    "no local on a shared subscription".into(),
                ));
            }
            let decision = self.ask_subscribe(key.filter).await;
            if let Decision::Deny(why) = decision {
                self.broker.metrics.subscriptions_refused.incr();
                tracing::debug!(client_id = %self.info.client_id, filter, why, "subscription refused");
                codes.push(failure(reason::NOT_AUTHORIZED));
                continue;
            }
            let is_new = self.broker.router.subscribe(
                key,
                &self.session,
                *options,
                subscribe.subscription_identifier,
            );
            self.session.lock().subscriptions.insert(
                filter.clone(),
                Subscription {
                    options: *options,
                    identifier: subscribe.subscription_identifier,
                },
            );
            codes.push(options.qos as u8);
            let send_retained = key.group.is_none()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => is_new,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for message in self.broker.router.retained_for(key.filter) {
                    retained.push(Delivery {
                        qos: options.qos.min(message.qos),
                        retain: true,
                        subscription_ids: subscribe
                            .subscription_identifier
                            .map(|id| vec![id].into_boxed_slice()),
                        message,
                    });
                }
            }
        }
        self.send(&Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            return_codes: codes,
            properties: ReasonProperties::default(),
        }));
        // Queued after the SUBACK is in the write buffer, so it goes first.
        for delivery in retained {
            self.session.deliver(delivery, &self.broker.metrics);
        }
        None
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            let code = match filter_key(filter) {
                Ok(key) => {
                    let had = self.session.lock().subscriptions.remove(filter).is_some();
                    self.broker.router.unsubscribe(key, &self.session);
                    if had {
                        reason::SUCCESS
                    } else {
                        reason::NO_SUBSCRIPTION_EXISTED
                    }
                }
                Err(_) => reason::TOPIC_FILTER_INVALID,
            };
            reasons.push(code);
        }
        if !self.version.is_v5() {
            reasons.clear();
        }
        self.send(&Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reasons,
            properties: ReasonProperties::default(),
        }));
    }

    fn on_disconnect(&mut self, disconnect: Disconnect) -> Ending {
        if let Some(expiry) = disconnect.session_expiry_interval {
            if self.connect_expiry == 0 && expiry != 0 {
                return Ending::Protocol(
                    reason::PROTOCOL_ERROR,
                    "session expiry set at DISCONNECT after 0 at CONNECT".into(),
                );
            }
            self.session.lock().expiry_secs =
                expiry.min(self.broker.limits.max_session_expiry_secs);
        }
        Ending::ClientDisconnect {
            with_will: disconnect.reason == reason::DISCONNECT_WITH_WILL,
        }
    }
}
