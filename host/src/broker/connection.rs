//! One client connection, from the TCP accept to the close.
//!
//! [`serve`] runs the handshake and CONNECT under the connect timeout, then
//! [`Client::run`] drives the connection: one task, one loop that reads and
//! decodes packets, writes queued deliveries, watches keep alive, and
//! closes when its session is taken over or the broker shuts down (both
//! arrive as a wake-up of the session, so the loop waits on nothing else). Whatever ends the connection, [`Client::finish`] says why
//! (a DISCONNECT reason in MQTT 5), publishes the will when due and leaves
//! the session as its expiry says.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use firehose_mqtt::{Decoder, Disconnect, Packet, ProtocolVersion, reason};
use firehose_transport::{Incoming, MqttStream};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;
use tracing::debug;

use super::inbound::Handled;
use super::outbound::Outbound;
use super::{Broker, connect, will};
use crate::auth::{ClientInfo, Decision, Verdict};
use crate::message::Message;
use crate::session::Session;

/// Stop pulling deliveries into the write buffer above this many bytes.
pub(super) const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Stop reading from a client whose acknowledgements pile up unread.
const READ_PAUSE_AT: usize = 4 * WRITE_HIGH_WATER;
/// Bytes to have free before each read.
const READ_CHUNK: usize = 8 * 1024;
/// How long the final DISCONNECT and pending bytes may take to write.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// After a read that carried this many packets, let other tasks run.
const YIELD_AFTER_PACKETS: usize = 2;
/// Route staged messages once this many wait, even mid-read.
const STAGED_MAX: usize = 256;
/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ending {
    /// The client sent DISCONNECT; `with_will` for MQTT 5 reason 0x04.
    ClientDisconnect { with_will: bool },
    /// The peer closed the connection without DISCONNECT.
    Closed,
    /// Reading or writing failed.
    Io(String),
    /// The client broke the protocol: the MQTT 5 reason code and why.
    Protocol(u8, String),
    /// Nothing arrived within 1.5 times the keep alive.
    KeepAliveTimeout,
    /// Another connection took the session over.
    TakenOver,
    /// The broker is shutting down.
    Shutdown,
}

impl Ending {
    /// The DISCONNECT reason code the server sends (MQTT 5), if any.
    fn server_reason(&self) -> Option<u8> {
        match self {
            Ending::Protocol(code, _) => Some(*code),
            Ending::KeepAliveTimeout => Some(reason::KEEP_ALIVE_TIMEOUT),
            Ending::TakenOver => Some(reason::SESSION_TAKEN_OVER),
            Ending::Shutdown => Some(reason::SERVER_SHUTTING_DOWN),
            Ending::ClientDisconnect { .. } | Ending::Closed | Ending::Io(_) => None,
        }
    }

    /// Whether the will is published (MQTT: on any end but a normal
    /// DISCONNECT; we also keep it back when the broker itself stops).
    fn publishes_will(&self) -> bool {
        match self {
            Ending::ClientDisconnect { with_will } => *with_will,
            Ending::Shutdown => false,
            _ => true,
        }
    }
}

/// What one I/O step did.
enum IoEvent {
    Read(usize),
    Wrote(usize),
    Flushed,
}

/// Runs one accepted connection to its end.
pub async fn serve(incoming: Incoming, listener: Arc<str>, broker: Arc<Broker>) {
    // Boxed: the handshake futures (TLS, websocket, HTTP head, timer) are
    // large and live only until CONNACK; inline they would size every
    // connection's task for its whole life.
    let Some(client) = Box::pin(admit(incoming, listener, &broker)).await else {
        return;
    };
    client.run().await;
}

/// The handshake and CONNECT under the connect timeout; `None` when the
/// connection ends there.
async fn admit(incoming: Incoming, listener: Arc<str>, broker: &Arc<Broker>) -> Option<Client> {
    let remote = incoming.remote_addr();
    let timeout = Duration::from_secs(broker.limits.connect_timeout_secs);
    let accepting = connect::accept(incoming, listener.clone(), broker);
    match tokio::time::timeout(timeout, accepting).await {
        Err(_) => {
            debug!(%listener, %remote, ?timeout, "no complete CONNECT in time; closed");
            None
        }
        Ok(Err(error)) => {
            broker.metrics.connections_refused.incr();
            debug!(%listener, %remote, %error, "connection refused");
            None
        }
        Ok(Ok(client)) => client,
    }
}

/// A connected client: its socket, buffers, session and per-connection
/// protocol state.
pub(super) struct Client {
    pub broker: Arc<Broker>,
    pub stream: MqttStream,
    pub rbuf: BytesMut,
    pub wbuf: BytesMut,
    /// Bytes were written that a TLS or websocket layer may still buffer.
    pub needs_flush: bool,
    pub decoder: Decoder,
    pub info: ClientInfo,
    pub version: ProtocolVersion,
    pub session: Arc<Session>,
    /// Held while this connection serves the session.
    pub serving: OwnedMutexGuard<()>,
    pub keep_alive: Option<Duration>,
    /// The will (already authorized) and its delay in seconds.
    pub will: Option<(Arc<Message>, u32)>,
    /// Session Expiry Interval sent in CONNECT (MQTT 5 forbids raising it
    /// from 0 at DISCONNECT).
    pub connect_expiry: u32,
    /// Topic aliases the client set (MQTT 5).
    pub aliases_in: HashMap<u16, String>,
    pub outbound: Outbound,
    /// Decisions remembered for this connection (where the authorizer's
    /// verdict allows), valid while the policy set is the same.
    decisions: DecisionCache,
    /// Accepted messages of the current read that went through a transform
    /// chain, routed together once the read's packets are handled (or
    /// before a packet that is not a PUBLISH). Routing a read's messages in
    /// one burst, rather than one between each transform call, lets the
    /// subscribers' tasks write them in large batches, as they do without
    /// transforms.
    pub staged: Vec<Arc<Message>>,
}

impl Client {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        broker: Arc<Broker>,
        stream: MqttStream,
        rbuf: BytesMut,
        decoder: Decoder,
        info: ClientInfo,
        session: Arc<Session>,
        serving: OwnedMutexGuard<()>,
        outbound: Outbound,
    ) -> Client {
        let version = info.protocol;
        Client {
            broker,
            stream,
            rbuf,
            wbuf: BytesMut::new(),
            needs_flush: false,
            decoder,
            info,
            version,
            session,
            serving,
            keep_alive: None,
            will: None,
            connect_expiry: 0,
            aliases_in: HashMap::new(),
            outbound,
            decisions: DecisionCache::default(),
            staged: Vec::new(),
        }
    }

    /// Routes what [`Client::staged`] holds, in order.
    fn route_staged(&mut self) {
        if !self.staged.is_empty() {
            self.broker.route_staged(&mut self.staged);
        }
    }

    /// Appends a packet to the write buffer.
    pub fn send(&mut self, packet: &Packet) {
        firehose_mqtt::encode(packet, self.version, &mut self.wbuf);
    }

    /// The remembered decision for publishing to `topic`, if any.
    pub fn cached_publish_decision(&self, topic: &str) -> Option<Decision> {
        let generation = self.broker.policy_generation();
        self.decisions.get(Kind::Publish, topic, generation)
    }

    /// Asks the authorizer about a publish, remembering the answer per
    /// topic where the verdict allows it.
    pub async fn ask_publish(&mut self, publish: &firehose_mqtt::Publish) -> Decision {
        let generation = self.broker.policy_generation();
        let verdict = self
            .broker
            .authorizer()
            .check_publish(&self.info, publish)
            .await;
        self.decisions
            .remember(Kind::Publish, &publish.topic, generation, &verdict);
        verdict.decision
    }

    /// Whether this client may subscribe to `filter`: the remembered
    /// decision, else the authorizer's (remembered where it allows).
    pub async fn ask_subscribe(&mut self, filter: &str) -> Decision {
        let generation = self.broker.policy_generation();
        if let Some(decision) = self.decisions.get(Kind::Subscribe, filter, generation) {
            return decision;
        }
        let verdict = self
            .broker
            .authorizer()
            .check_subscribe(&self.info, filter)
            .await;
        self.decisions
            .remember(Kind::Subscribe, filter, generation, &verdict);
        verdict.decision
    }

    /// Serves the connection until it ends, then cleans up.
    pub(super) async fn run(mut self) {
        let ending = self.serve_loop().await;
        // Boxed, like the handshake: only a closing connection needs it.
        Box::pin(self.finish(ending)).await;
    }

    async fn serve_loop(&mut self) -> Ending {
        let session = self.session.clone();
        let keep_alive = self.keep_alive.map(|k| k + k / 2);
        let far = Duration::from_secs(86_400 * 365);
        let deadline = tokio::time::sleep(keep_alive.unwrap_or(far));
        tokio::pin!(deadline);
        loop {
            // Packets already buffered (pipelined after CONNECT, or several
            // in one read) are handled before waiting for more.
            let mut handled = 0usize;
            loop {
                match self.decoder.decode(&mut self.rbuf) {
                    Ok(Some(packet)) => {
                        handled += 1;
                        if !matches!(packet, Packet::Publish(_)) || self.staged.len() >= STAGED_MAX
                        {
                            self.route_staged();
                        }
                        let ending = match self.handle(packet) {
                            Handled::Done(ending) => ending,
                            waiting => self.handle_async(waiting).await,
                        };
                        if let Some(ending) = ending {
                            self.route_staged();
                            return ending;
                        }
                    }
                    Ok(None) => {
                        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
                            self.rbuf = BytesMut::new();
                        }
                        break;
                    }
                    Err(error) => {
                        self.route_staged();
                        return Ending::Protocol(error.reason_code(), error.to_string());
                    }
                }
            }
            // Before anything is written: a client never sees the
            // acknowledgement of a message that is not yet routed.
            self.route_staged();
            if handled >= YIELD_AFTER_PACKETS {
                // A publisher flooding us would otherwise keep its worker
                // thread for a whole scheduling budget (many reads), filling
                // subscriber queues faster than their tasks get to run and
                // drain them. Yielding after each busy read lets the woken
                // subscribers write in between.
                tokio::task::yield_now().await;
            }
            {
                let state = session.lock();
                if state.taken_over {
                    return Ending::TakenOver;
                }
                if state.closing {
                    return Ending::Shutdown;
                }
            }
            self.fill_outbound();
            let read = self.wbuf.len() < READ_PAUSE_AT;
            let room = self.wbuf.len() < WRITE_HIGH_WATER;
            let event = tokio::select! {
                biased;
                event = poll_fn(|cx| poll_io(&mut self.stream, &mut self.rbuf, &self.wbuf, self.needs_flush, read, cx)) => event,
                () = session.woken(), if room => continue,
                () = &mut deadline, if keep_alive.is_some() => return Ending::KeepAliveTimeout,
            };
            match event {
                Err(error) => return Ending::Io(error.to_string()),
                Ok(IoEvent::Read(0)) => return Ending::Closed,
                Ok(IoEvent::Read(_)) => {
                    if let Some(k) = keep_alive {
                        deadline.as_mut().reset(Instant::now() + k);
                    }
                }
                Ok(IoEvent::Wrote(n)) => {
                    self.wbuf.advance(n);
                    self.needs_flush = true;
                    if self.wbuf.is_empty() {
                        self.wbuf = BytesMut::new();
                    }
                }
                Ok(IoEvent::Flushed) => self.needs_flush = false,
            }
        }
    }

    /// Says goodbye as the ending requires, publishes the will when due and
    /// leaves the session to its expiry.
    async fn finish(mut self, ending: Ending) {
        if self.version.is_v5()
            && let Some(code) = ending.server_reason()
        {
            self.send(&Packet::Disconnect(Disconnect {
                reason: code,
                ..Disconnect::default()
            }));
        }
        let server_closes = ending.server_reason().is_some();
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.shutdown().await?;
            if server_closes {
                // Read and discard what the client still sends until it
                // closes too: closing with unread input would make the
                // kernel answer with a reset, which can destroy our
                // DISCONNECT before the client reads it.
                let mut sink = [0u8; 1024];
                while self.stream.read(&mut sink).await? > 0 {}
            }
            Ok::<(), io::Error>(())
        })
        .await;
        match &ending {
            Ending::Protocol(code, why) => {
                self.broker.metrics.protocol_errors.incr();
                debug!(client_id = %self.info.client_id, listener = %self.info.listener,
                       remote = %self.info.remote_addr, reason = format!("0x{code:02X}"), why, "connection closed: protocol error");
            }
            other => debug!(client_id = %self.info.client_id, listener = %self.info.listener,
                            remote = %self.info.remote_addr, ending = ?other, "connection closed"),
        }

        let (taken_over, expiry, generation) = {
            let mut state = self.session.lock();
            state.online = false;
            state.qos0.clear();
            (state.taken_over, state.expiry_secs, state.generation)
        };
        if ending.publishes_will()
            && let Some((message, delay)) = self.will.take()
        {
            will::publish_or_delay(&self.broker, &self.session, message, delay, expiry);
        }
        if taken_over {
            // The connection that took over owns the session now.
            return;
        }
        if expiry == 0 {
            if self.broker.sessions.remove(&self.session) {
                self.broker.discard_session(&self.session);
            }
        } else if expiry != u32::MAX {
            let broker = self.broker.clone();
            let session = self.session.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(u64::from(expiry))).await;
                if broker.sessions.expire(&session, generation) {
                    broker.discard_session(&session);
                }
            });
        }
        drop(self.serving);
    }
}

/// One step of socket I/O: write what is buffered (or flush it), else read.
fn poll_io(
    stream: &mut MqttStream,
    rbuf: &mut BytesMut,
    wbuf: &BytesMut,
    needs_flush: bool,
    read: bool,
    cx: &mut Context<'_>,
) -> Poll<io::Result<IoEvent>> {
    if !wbuf.is_empty() {
        match Pin::new(&mut *stream).poll_write(cx, wbuf) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => return Poll::Ready(Ok(IoEvent::Wrote(n))),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
    } else if needs_flush {
        match Pin::new(&mut *stream).poll_flush(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Ok(IoEvent::Flushed)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
    }
    if !read {
        return Poll::Pending;
    }
    if rbuf.capacity() == 0 {
        // Idle connections hold no read buffer: wait for data first.
        std::task::ready!(stream.poll_read_ready(cx))?;
    }
    if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
        rbuf.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(Pin::new(stream), cx, rbuf).map_ok(IoEvent::Read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_task_stays_small() {
        // What every idle connection pays for its task, besides its session
        // and socket: keep it well under a kilobyte or two.
        let size = std::mem::size_of::<Client>();
        assert!(size < 1024, "Client is {size} bytes");
    }
}

/// What a remembered decision was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Publish,
    Subscribe,
}

/// Decisions remembered per connection: publish by topic, subscribe by
/// filter, each map at most [`DecisionCache::MAX`] entries (cleared when
/// full), all forgotten when the policy set changes. Empty until the first
/// cacheable verdict: an idle reader pays one pointer for it.
#[derive(Default)]
struct DecisionCache(Option<Box<Remembered>>);

struct Remembered {
    generation: u64,
    publish: HashMap<Box<str>, Decision>,
    subscribe: HashMap<Box<str>, Decision>,
}

impl DecisionCache {
    const MAX: usize = 1024;

    fn get(&self, kind: Kind, key: &str, generation: u64) -> Option<Decision> {
        let remembered = self.0.as_deref()?;
        if remembered.generation != generation {
            return None;
        }
        remembered.map(kind).get(key).cloned()
    }

    fn remember(&mut self, kind: Kind, key: &str, generation: u64, verdict: &Verdict) {
        if !verdict.cacheable {
            return;
        }
        let remembered = self.0.get_or_insert_with(|| {
            Box::new(Remembered {
                generation,
                publish: HashMap::new(),
                subscribe: HashMap::new(),
            })
        });
        if remembered.generation != generation {
            remembered.generation = generation;
            remembered.publish.clear();
            remembered.subscribe.clear();
        }
        let map = match kind {
            Kind::Publish => &mut remembered.publish,
            Kind::Subscribe => &mut remembered.subscribe,
        };
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key.into(), verdict.decision.clone());
    }
}

impl Remembered {
    fn map(&self, kind: Kind) -> &HashMap<Box<str>, Decision> {
        match kind {
            Kind::Publish => &self.publish,
            Kind::Subscribe => &self.subscribe,
        }
    }
}

#[cfg(test)]
mod decision_cache_tests {
    use super::*;

    #[test]
    fn remembers_cacheable_verdicts_for_one_generation() {
        let mut cache = DecisionCache::default();
        cache.remember(Kind::Publish, "a/b", 1, &Verdict::lasting(Decision::Allow));
        cache.remember(
            Kind::Publish,
            "a/c",
            1,
            &Verdict::once(Decision::Deny("failed".into())),
        );
        assert_eq!(cache.get(Kind::Publish, "a/b", 1), Some(Decision::Allow));
        assert_eq!(cache.get(Kind::Subscribe, "a/b", 1), None);
        assert_eq!(
            cache.get(Kind::Publish, "a/c", 1),
            None,
            "a failed call is not remembered"
        );
        assert_eq!(
            cache.get(Kind::Publish, "a/b", 2),
            None,
            "a new policy set forgets"
        );
        cache.remember(
            Kind::Subscribe,
            "x/#",
            2,
            &Verdict::lasting(Decision::Allow),
        );
        assert_eq!(cache.get(Kind::Publish, "a/b", 2), None);
        assert_eq!(cache.get(Kind::Subscribe, "x/#", 2), Some(Decision::Allow));
    }
}
