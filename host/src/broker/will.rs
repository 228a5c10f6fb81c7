//! Last wills: published when a connection ends without a normal
//! DISCONNECT, at once or after the MQTT 5 Will Delay Interval.
//!
//! A delayed will waits in the session (`pending_will`). It is published
//! when the delay passes with the client still away, or when the session
//! ends first (`Broker::discard_session`); a client that comes back to the
//! session in time cancels it.

use std::sync::Arc;
use std::time::Duration;

use super::Broker;
use crate::message::Message;
use crate::session::Session;

/// Publishes `message` now if it has no delay or the session ends now,
/// else parks it in the session until the delay passes.
pub(super) fn publish_or_delay(
    broker: &Arc<Broker>,
    session: &Arc<Session>,
    message: Arc<Message>,
    delay_secs: u32,
    session_expiry_secs: u32,
) {
    if delay_secs == 0 || session_expiry_secs == 0 {
        broker.publish(message);
        return;
    }
    let generation = {
        let mut state = session.lock();
        state.pending_will = Some(message);
        state.generation
    };
    let broker = broker.clone();
    let session = session.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(u64::from(delay_secs))).await;
        let due = {
            let mut state = session.lock();
            if state.online || state.generation != generation {
                None
            } else {
                state.pending_will.take()
            }
        };
        if let Some(message) = due {
            broker.publish(message);
        }
    });
}
