//! The six scenarios and what they share: parameters, client-group threads
//! (each group runs on its own current_thread tokio runtime), the payload
//! layouts, the warm-up handshake, the QoS 0 receive loop and the groups of
//! subscribers that run it ([`Receivers`]).
//!
//! Five run against every broker through [`run`]; the sixth, `source`
//! (the cost of a WASM source), runs two variants of firehose instead and
//! is driven by [`source::run_round`].
//!
//! Every payload carries a sequence number (u64::MAX marks a warm-up
//! message, never counted), the send time in nanoseconds since the run's
//! shared monotonic base `Instant` and the publisher's index, at fixed
//! offsets so a publisher patches them in place; see [`PayloadFormat`].

pub mod fanin;
pub mod fanout;
pub mod idle;
pub mod latency;
pub mod qos1;
pub mod source;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::timeout;

use crate::client::{self, BIG_READ_BUF, Conn, Credentials, Packet};
use crate::report::BrokerResult;

/// Scenario sizes and knobs (from the command line).
#[derive(Clone, Debug)]
pub struct Params {
    /// Target deliveries per throughput scenario (fan-out: published x subscribers).
    pub messages: u64,
    /// QoS 1 messages (1 -> 1).
    pub qos1_messages: u64,
    pub subscribers: usize,
    pub publishers: usize,
    pub payload: usize,
    /// What the payload bytes look like (the same for every broker).
    pub payload_format: PayloadFormat,
    /// Latency run length.
    pub duration: Duration,
    /// Latency publish rate, msg/s.
    pub rate: u64,
    pub connections: usize,
    pub qos1_window: usize,
    pub qos1_lead: u64,
    pub keep_alive: u16,
    /// Quiet time after the last publish before receivers give up on the rest.
    pub settle: Duration,
    /// Cap on the publishing phase of a throughput scenario.
    pub max_time: Duration,
    /// Source scenario: messages the source (and the native publisher)
    /// publish in each run.
    pub source_messages: u64,
    /// Source scenario: the subscriber counts, each measured with both
    /// variants.
    pub source_subscribers: Vec<usize>,
    /// Source scenario: firehose's `max_queued_qos0` (per subscriber).
    pub source_queue: usize,
    /// Source scenario: messages per `publish-batch` call of the batch
    /// variant (1: that variant is not run).
    pub source_batch: usize,
}

/// What a scenario gets to run against one broker.
#[derive(Clone)]
pub struct Ctx {
    pub broker: crate::brokers::BrokerKind,
    pub addr: SocketAddr,
    pub pid: u32,
    pub params: Params,
    /// Unique per scenario run: topics are `bench/<tag>/...`.
    pub tag: String,
    /// The user name and password publishers send in CONNECT (the broker
    /// lets only this user publish); `None`: publishers are anonymous.
    /// Subscribers and idle connections are always anonymous.
    pub publisher_login: Option<Credentials>,
}

impl Ctx {
    pub fn topic(&self, name: &str) -> String {
        format!("bench/{}/{name}", self.tag)
    }
}

/// Which scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    FanOut,
    FanIn,
    Qos1,
    Latency,
    Idle,
    /// The cost of a WASM source: firehose only, two variants.
    Source,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::FanOut,
        Scenario::FanIn,
        Scenario::Qos1,
        Scenario::Latency,
        Scenario::Idle,
        Scenario::Source,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::FanOut => "fanout",
            Scenario::FanIn => "fanin",
            Scenario::Qos1 => "qos1",
            Scenario::Latency => "latency",
            Scenario::Idle => "idle",
            Scenario::Source => "source",
        }
    }

    pub fn parse(s: &str) -> Result<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .with_context(|| {
                format!("unknown scenario {s:?} (fanout, fanin, qos1, latency, idle, source)")
            })
    }

    pub fn title(self, p: &Params) -> String {
        let payloads = format!("{}-byte {} payloads", p.payload, p.payload_format.name());
        match self {
            Scenario::FanOut => format!(
                "Fan-out: 1 publisher -> {} subscribers, QoS 0, {payloads}",
                p.subscribers
            ),
            Scenario::FanIn => format!(
                "Fan-in: {} publishers -> 1 subscriber, QoS 0, {payloads}",
                p.publishers
            ),
            Scenario::Qos1 => format!("QoS 1, 1 publisher -> 1 subscriber, {payloads}"),
            Scenario::Latency => format!(
                "Latency: {} msg/s to {} subscribers, QoS 0, {payloads}",
                p.rate, p.subscribers
            ),
            Scenario::Idle => format!("Idle connections: {}", p.connections),
            Scenario::Source => source::title(p, None),
        }
    }

    /// What the scenario measures and how (for the report).
    pub fn description(self, p: &Params) -> String {
        match self {
            Scenario::FanOut => format!(
                "The publisher writes {} messages as fast as TCP lets it (64 per write); each of the \
                 {} subscribers counts what arrives. msg/s = deliveries summed over subscribers / \
                 (last delivery - first publish). Receivers stop when complete or {} s after the \
                 last publish. QoS 0 may drop: the delivered fraction is shown.",
                p.messages / p.subscribers as u64,
                p.subscribers,
                p.settle.as_secs_f64()
            ),
            Scenario::FanIn => format!(
                "{} publishers each write {} messages as fast as TCP lets them to one topic; one \
                 subscriber counts them. Same timing and settle rule as fan-out.",
                p.publishers,
                p.messages / p.publishers as u64
            ),
            Scenario::Qos1 => format!(
                "The publisher sends {} QoS 1 messages keeping at most {} PUBACKs outstanding and at \
                 most {} messages ahead of what the subscriber has received (so no broker needs to \
                 queue past its limits); the subscriber subscribes with QoS 1 and PUBACKs each \
                 delivery. Every sequence number must arrive (duplicates are counted) and every \
                 publish must be acknowledged, else the run is FAILED.",
                p.qos1_messages, p.qos1_window, p.qos1_lead
            ),
            Scenario::Latency => format!(
                "One publisher sends {} msg/s for {} s (one message per write, the send time in \
                 the payload); {} subscribers take (receive time - send time) from one monotonic \
                 clock in one process. Percentiles over all deliveries.",
                p.rate,
                p.duration.as_secs_f64(),
                p.subscribers
            ),
            Scenario::Idle => format!(
                "Opens {} MQTT 3.1.1 connections (clean session, keep alive {} s; rumqttd refuses \
                 keep alive 0) and leaves them idle. Memory per connection = (VmRSS after - VmRSS \
                 before) / connections, from /proc/<pid>/status; afterwards every connection must \
                 answer a PINGREQ.",
                p.connections, p.keep_alive
            ),
            Scenario::Source => source::description(p, None),
        }
    }
}

/// Runs one scenario against one broker.
pub async fn run(scenario: Scenario, ctx: &Ctx) -> Result<BrokerResult> {
    match scenario {
        Scenario::FanOut => fanout::run(ctx).await,
        Scenario::FanIn => fanin::run(ctx).await,
        Scenario::Qos1 => qos1::run(ctx).await,
        Scenario::Latency => latency::run(ctx).await,
        Scenario::Idle => idle::run(ctx).await,
        // Two variants of one broker, not one run per broker.
        Scenario::Source => bail!("the source scenario runs through source::run_round"),
    }
}

/// Runs `f` on a new OS thread with its own current_thread runtime; the
/// result arrives on the returned future (an error if the thread panicked).
pub fn spawn_group<T, F, Fut>(name: &str, f: F) -> impl Future<Output = Result<T>> + use<T, F, Fut>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
{
    let (tx, rx) = oneshot::channel();
    let name = name.to_owned();
    let spawned = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let result = match rt {
                Ok(rt) => rt.block_on(f()),
                Err(e) => Err(e.into()),
            };
            let _ = tx.send(result);
        });
    async move {
        spawned.with_context(|| format!("spawning thread {name}"))?;
        rx.await
            .map_err(|_| anyhow!("client group {name} panicked"))?
    }
}

pub const WARMUP_SEQ: u64 = u64::MAX;

/// What the payload bytes look like. The same format goes to every broker
/// of a run, so the comparison stays fair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    /// A small JSON object, the realistic case for a transform such as
    /// redact: `{"seq":"<16 hex>","sent":"<16 hex>","pub":"<8 hex>",
    /// "data":"xxx..."}`, padded with `x` in `data` to the payload size.
    /// It has no `email` field, so redact answers pass.
    Json,
    /// The same object with the padding in an `email` field instead of
    /// `data`: redact removes it and answers replace (its expensive path);
    /// receivers get the shorter object.
    JsonEmail,
    /// Little endian binary: bytes 0..8 sequence number, 8..16 send time,
    /// 16..20 publisher index, then padding (0x5a).
    Binary,
}

/// Offsets of the hex digits in the JSON formats.
const JSON_SEQ_AT: usize = 8; // {"seq":"
const JSON_SENT_AT: usize = JSON_SEQ_AT + 16 + 10; // ","sent":"
const JSON_PUB_AT: usize = JSON_SENT_AT + 16 + 9; // ","pub":"

impl PayloadFormat {
    pub const ALL: [PayloadFormat; 3] = [
        PayloadFormat::Json,
        PayloadFormat::JsonEmail,
        PayloadFormat::Binary,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PayloadFormat::Json => "json",
            PayloadFormat::JsonEmail => "json-email",
            PayloadFormat::Binary => "binary",
        }
    }

    pub fn parse(s: &str) -> Result<PayloadFormat> {
        PayloadFormat::ALL
            .into_iter()
            .find(|f| f.name() == s.trim())
            .with_context(|| format!("unknown payload format {s:?} (json, json-email, binary)"))
    }

    /// The JSON key of the padding.
    fn pad_key(self) -> &'static str {
        if self == PayloadFormat::JsonEmail {
            "email"
        } else {
            "data"
        }
    }

    /// The smallest payload of this format (no padding).
    pub fn min_len(self) -> usize {
        match self {
            PayloadFormat::Binary => 20,
            // ...<8 hex>","<key>":""}
            _ => JSON_PUB_AT + 8 + 3 + self.pad_key().len() + 3 + 2,
        }
    }

    /// A payload of `len` bytes (at least `min_len`).
    pub fn build(self, len: usize, seq: u64, sent_ns: u64, publisher: u32) -> Vec<u8> {
        let len = len.max(self.min_len());
        let mut p = match self {
            PayloadFormat::Binary => vec![0x5a; len],
            _ => {
                let head = format!(
                    "{{\"seq\":\"{:016x}\",\"sent\":\"{:016x}\",\"pub\":\"{:08x}\",\"{}\":\"",
                    0,
                    0,
                    publisher,
                    self.pad_key()
                );
                let mut p = head.into_bytes();
                p.resize(len - 2, b'x');
                p.extend_from_slice(b"\"}");
                p
            }
        };
        if self == PayloadFormat::Binary {
            p[16..20].copy_from_slice(&publisher.to_le_bytes());
        }
        self.write_seq(&mut p, seq);
        self.write_sent_ns(&mut p, sent_ns);
        p
    }

    pub fn write_seq(self, p: &mut [u8], seq: u64) {
        match self {
            PayloadFormat::Binary => p[0..8].copy_from_slice(&seq.to_le_bytes()),
            _ => write_hex(&mut p[JSON_SEQ_AT..JSON_SEQ_AT + 16], seq),
        }
    }

    pub fn write_sent_ns(self, p: &mut [u8], sent_ns: u64) {
        match self {
            PayloadFormat::Binary => p[8..16].copy_from_slice(&sent_ns.to_le_bytes()),
            _ => write_hex(&mut p[JSON_SENT_AT..JSON_SENT_AT + 16], sent_ns),
        }
    }

    /// The sequence number (`WARMUP_SEQ - 1` if unreadable).
    pub fn read_seq(self, p: &[u8]) -> u64 {
        match self {
            PayloadFormat::Binary => p
                .get(0..8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap())),
            _ => p.get(JSON_SEQ_AT..JSON_SEQ_AT + 16).and_then(read_hex),
        }
        .unwrap_or(WARMUP_SEQ - 1)
    }

    pub fn read_sent_ns(self, p: &[u8]) -> u64 {
        match self {
            PayloadFormat::Binary => p
                .get(8..16)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap())),
            _ => p.get(JSON_SENT_AT..JSON_SENT_AT + 16).and_then(read_hex),
        }
        .unwrap_or(0)
    }
}

/// Writes `v` as `out.len()` lowercase hex digits (most significant first).
fn write_hex(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

fn read_hex(digits: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// Coordination between a publisher group and a receiver group.
pub struct Shared {
    /// Receivers that have seen a warm-up message (so their subscription is live).
    pub warmed: AtomicUsize,
    /// When the publishers finished (receivers then wait `settle` for stragglers).
    pub pub_done: Mutex<Option<Instant>>,
    /// Receivers are told to give up (the publisher side failed).
    pub abort: AtomicBool,
    /// All receivers are finished (publishers may disconnect).
    pub finished: AtomicBool,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            warmed: AtomicUsize::new(0),
            pub_done: Mutex::new(None),
            abort: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        })
    }

    pub fn mark_done(&self) {
        self.pub_done
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
    }

    pub fn done_at(&self) -> Option<Instant> {
        *self.pub_done.lock().unwrap()
    }

    /// Marks the receivers finished; on failure also tells publishers to stop.
    pub fn finish(&self, failed: bool) {
        if failed {
            self.abort.store(true, Ordering::Relaxed);
        }
        self.finished.store(true, Ordering::Release);
    }

    /// Waits (at most `limit`) until the receivers are finished, so a
    /// publisher's connection outlives its messages.
    pub async fn wait_finished(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.finished.load(Ordering::Acquire)
            && !self.abort.load(Ordering::Relaxed)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Publishes warm-up messages on `topic` every 20 ms until `receivers`
/// receivers have seen one (at most 30 s).
pub async fn warm_up(
    conn: &mut Conn,
    topic: &str,
    format: PayloadFormat,
    shared: &Shared,
    receivers: usize,
) -> Result<()> {
    let mut msg = Vec::new();
    let payload = format.build(0, WARMUP_SEQ, 0, 0);
    client::encode_publish(&mut msg, topic, 0, 0, &payload);
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.warmed.load(Ordering::Acquire) < receivers {
        if shared.abort.load(Ordering::Relaxed) {
            bail!("receivers failed during warm-up");
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {receivers} receivers got a warm-up message within 30 s",
                shared.warmed.load(Ordering::Acquire)
            );
        }
        conn.stream.write_all(&msg).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Discard whatever the broker sends the publisher (nothing expected).
        if let Ok(r) = timeout(Duration::from_millis(0), conn.fill()).await {
            if !r? {
                bail!("broker closed the publisher connection during warm-up");
            }
            conn.drain(|_| {})?;
        }
    }
    Ok(())
}

/// A 50 ms ticker for receivers' time checks (one timer per period rather
/// than one per read).
pub fn ticker() -> tokio::time::Interval {
    let mut t = tokio::time::interval(Duration::from_millis(50));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// Time to stop receiving: past the hard deadline, or `settle` has passed
/// since the publishers finished with nothing new since.
pub fn receiver_should_stop(
    shared: &Shared,
    last: Option<Instant>,
    settle: Duration,
    hard_deadline: Instant,
) -> bool {
    let now = Instant::now();
    if now >= hard_deadline {
        return true;
    }
    shared.done_at().is_some_and(|done| {
        let quiet_since = last.map_or(done, |l| l.max(done));
        now.duration_since(quiet_since) >= settle
    })
}

/// What one QoS 0 receiver saw.
#[derive(Default)]
pub struct RecvStats {
    pub count: u64,
    pub last: Option<Instant>,
    /// The broker closed the connection before the end.
    pub closed: bool,
}

/// Receives QoS 0 publishes until `expected` arrived, or `settle` passed
/// since the publishers finished with nothing new, or `hard_deadline`.
/// `on_msg(payload, read_time)` sees every counted message.
pub async fn receive_qos0(
    conn: &mut Conn,
    format: PayloadFormat,
    shared: &Shared,
    expected: u64,
    settle: Duration,
    hard_deadline: Instant,
    mut on_msg: impl FnMut(&[u8], Instant),
) -> Result<RecvStats> {
    let mut st = RecvStats::default();
    let mut warmed = false;
    let mut tick = ticker();
    while st.count < expected && !shared.abort.load(Ordering::Relaxed) {
        tokio::select! {
            biased;
            r = conn.fill() => match r {
                Ok(true) => {}
                Ok(false) => {
                    st.closed = true;
                    break;
                }
                Err(_) if st.count > 0 || warmed => {
                    st.closed = true;
                    break;
                }
                Err(e) => return Err(e),
            },
            _ = tick.tick() => {
                if receiver_should_stop(shared, st.last, settle, hard_deadline) {
                    break;
                }
                continue;
            }
        }
        let t = Instant::now();
        conn.drain(|p| {
            if let Packet::Publish { payload, .. } = p {
                if format.read_seq(payload) == WARMUP_SEQ {
                    if !warmed {
                        warmed = true;
                        shared.warmed.fetch_add(1, Ordering::AcqRel);
                    }
                } else {
                    st.count += 1;
                    st.last = Some(t);
                    on_msg(payload, t);
                }
            }
        })?;
    }
    Ok(st)
}

/// The client ids of a receiver group.
#[derive(Clone, Copy, Debug)]
pub enum ClientIds {
    /// `n` clients `<prefix>-0` .. `<prefix>-<n-1>` (see [`connect_many`]).
    Numbered(&'static str, usize),
    /// One client with exactly this id.
    One(&'static str),
}

/// A scenario's QoS 0 subscribers: anonymous clients that each subscribe
/// to `topic` and run [`receive_qos0`] until `expected` messages arrived
/// (or the settle rule or `hard_deadline` stops them), then disconnect.
#[derive(Clone, Debug)]
pub struct Receivers {
    pub addr: SocketAddr,
    pub ids: ClientIds,
    pub topic: String,
    pub format: PayloadFormat,
    pub keep_alive: u16,
    pub settle: Duration,
    pub expected: u64,
    pub hard_deadline: Instant,
}

impl Receivers {
    /// Receivers of `expected` messages each on `topic`, with the format,
    /// keep alive and settle time of `p`.
    pub fn new(
        addr: SocketAddr,
        ids: ClientIds,
        topic: &str,
        p: &Params,
        expected: u64,
        hard_deadline: Instant,
    ) -> Receivers {
        Receivers {
            addr,
            ids,
            topic: topic.to_owned(),
            format: p.payload_format,
            keep_alive: p.keep_alive,
            settle: p.settle,
            expected,
            hard_deadline,
        }
    }

    /// Runs the receivers on their own client-group thread `name` (see
    /// [`spawn_group`]) and counts what they get: one [`RecvStats`] per
    /// receiver, in the order they finished. When all are done (or one
    /// failed) `shared` is [finished](Shared::finish).
    pub fn spawn(
        self,
        name: &str,
        shared: &Arc<Shared>,
    ) -> impl Future<Output = Result<Vec<RecvStats>>> + use<> {
        let all = self.spawn_with(name, shared, || (), |_: &mut (), _: &[u8], _| {});
        async move { Ok(all.await?.into_iter().map(|(st, ())| st).collect()) }
    }

    /// [`spawn`](Receivers::spawn), and each receiver also keeps a state
    /// of its own, made by `init` and passed to `on_msg(state, payload,
    /// read_time)` with every counted message.
    pub fn spawn_with<S, I, M>(
        self,
        name: &str,
        shared: &Arc<Shared>,
        init: I,
        on_msg: M,
    ) -> impl Future<Output = Result<Vec<(RecvStats, S)>>> + use<S, I, M>
    where
        S: Send + 'static,
        I: Fn() -> S + Clone + Send + 'static,
        M: FnMut(&mut S, &[u8], Instant) + Clone + Send + 'static,
    {
        let shared = Arc::clone(shared);
        spawn_group(name, move || async move {
            let r = async {
                let conns = match self.ids {
                    ClientIds::Numbered(prefix, n) => {
                        connect_many(self.addr, prefix, n, None, self.keep_alive, BIG_READ_BUF)
                            .await?
                    }
                    ClientIds::One(id) => vec![
                        Conn::connect(self.addr, None, id, None, self.keep_alive, BIG_READ_BUF)
                            .await?,
                    ],
                };
                let mut set = tokio::task::JoinSet::new();
                for mut conn in conns {
                    let (shared, topic) = (Arc::clone(&shared), self.topic.clone());
                    let (init, mut on_msg) = (init.clone(), on_msg.clone());
                    let Receivers {
                        format,
                        settle,
                        expected,
                        hard_deadline,
                        ..
                    } = self;
                    set.spawn(async move {
                        conn.subscribe(&topic, 0).await?;
                        let mut state = init();
                        let st = receive_qos0(
                            &mut conn,
                            format,
                            &shared,
                            expected,
                            settle,
                            hard_deadline,
                            |payload, t| on_msg(&mut state, payload, t),
                        )
                        .await?;
                        conn.disconnect().await;
                        anyhow::Ok((st, state))
                    });
                }
                let mut all = Vec::new();
                while let Some(r) = set.join_next().await {
                    all.push(r??);
                }
                anyhow::Ok(all)
            }
            .await;
            shared.finish(r.is_err());
            r
        })
    }
}

/// What a group of QoS 0 receivers saw together.
pub struct RecvTotals {
    /// Messages counted, summed over the receivers.
    pub delivered: u64,
    /// The last counted delivery of any receiver.
    pub last: Option<Instant>,
    /// Receivers whose connection the broker closed before the end.
    pub closed: usize,
}

impl RecvTotals {
    pub fn of<'a>(stats: impl IntoIterator<Item = &'a RecvStats>) -> RecvTotals {
        let mut t = RecvTotals {
            delivered: 0,
            last: None,
            closed: 0,
        };
        for st in stats {
            t.delivered += st.count;
            t.last = t.last.max(st.last);
            t.closed += usize::from(st.closed);
        }
        t
    }
}

/// Writes `count` QoS 0 publishes (sequence numbers `first..first+count`)
/// as fast as the socket takes them, 64 per write.
pub async fn flood(
    conn: &mut Conn,
    topic: &str,
    (format, payload_len): (PayloadFormat, usize),
    publisher: u32,
    first: u64,
    count: u64,
) -> Result<()> {
    const BATCH: u64 = 64;
    let mut template = Vec::new();
    let at = client::encode_publish(
        &mut template,
        topic,
        0,
        0,
        &format.build(payload_len, 0, 0, publisher),
    );
    let mut batch = Vec::with_capacity(template.len() * BATCH as usize);
    let mut seq = first;
    let end = first + count;
    while seq < end {
        batch.clear();
        let n = BATCH.min(end - seq);
        for _ in 0..n {
            let off = batch.len() + at;
            batch.extend_from_slice(&template);
            format.write_seq(&mut batch[off..], seq);
            seq += 1;
        }
        conn.stream.write_all(&batch).await?;
    }
    Ok(())
}

/// Connects `n` clients named `<prefix>-<i>` concurrently (at most 200 at
/// once), all with `login` if given.
pub async fn connect_many(
    addr: SocketAddr,
    prefix: &str,
    n: usize,
    login: Option<&Credentials>,
    keep_alive: u16,
    read_buf: usize,
) -> Result<Vec<Conn>> {
    let mut conns: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0;
    while next < n || !set.is_empty() {
        while next < n && set.len() < 200 {
            let id = format!("{prefix}-{next}");
            let i = next;
            let login = login.cloned();
            set.spawn(async move {
                (
                    i,
                    Conn::connect(addr, None, &id, login.as_ref(), keep_alive, read_buf).await,
                )
            });
            next += 1;
        }
        if let Some(joined) = set.join_next().await {
            let (i, conn) = joined?;
            conns[i] = Some(conn.with_context(|| format!("connecting {prefix}-{i}"))?);
        }
    }
    Ok(conns
        .into_iter()
        .map(|c| c.expect("all connected"))
        .collect())
}

/// Throughput figures shared by the QoS 0 scenarios.
pub fn qos0_result(
    broker: crate::brokers::BrokerKind,
    expected: u64,
    delivered: u64,
    elapsed: Duration,
    cpu: crate::procfs::CpuSpent,
    closed: usize,
    timed_out: bool,
) -> BrokerResult {
    use crate::report::{Better, Metric};
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut r = BrokerResult::new(broker);
    r.metrics = vec![
        Metric::new(
            "delivered msg/s",
            delivered as f64 / secs,
            0,
            Better::Higher,
        ),
        Metric::new(
            "broker CPU us/msg",
            cpu.broker_us as f64 / delivered.max(1) as f64,
            3,
            Better::Lower,
        ),
        Metric::new(
            "loadgen CPU us/msg",
            cpu.bench_us as f64 / delivered.max(1) as f64,
            3,
            Better::Info,
        ),
        Metric::new("delivered", delivered as f64, 0, Better::Info),
        Metric::new("expected", expected as f64, 0, Better::Info),
        Metric::new(
            "delivered %",
            100.0 * delivered as f64 / expected.max(1) as f64,
            2,
            Better::Higher,
        ),
        Metric::new("seconds", secs, 2, Better::Info),
    ];
    if closed > 0 {
        r.notes.push(format!(
            "{closed} receiver connection(s) closed by the broker"
        ));
    }
    if timed_out {
        r.notes.push("publishing hit --max-secs".into());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_formats_roundtrip() {
        for format in PayloadFormat::ALL {
            for len in [0, format.min_len(), 100, 1000] {
                let mut p = format.build(len, 7, 123_456_789, 3);
                assert_eq!(p.len(), len.max(format.min_len()), "{format:?}");
                assert_eq!(format.read_seq(&p), 7);
                assert_eq!(format.read_sent_ns(&p), 123_456_789);
                format.write_seq(&mut p, WARMUP_SEQ);
                format.write_sent_ns(&mut p, 42);
                assert_eq!(format.read_seq(&p), WARMUP_SEQ);
                assert_eq!(format.read_sent_ns(&p), 42);
            }
        }
    }

    #[test]
    fn json_payloads_are_json() {
        let p = PayloadFormat::Json.build(100, 0x1f, 0x2e, 5);
        let text = std::str::from_utf8(&p).unwrap();
        assert_eq!(
            text,
            r#"{"seq":"000000000000001f","sent":"000000000000002e","pub":"00000005","data":"xxxxxxxxxxxxxxxxxxxxx"}"#
        );
        assert!(!text.contains("email"));
        let p = PayloadFormat::JsonEmail.build(0, 1, 2, 3);
        assert!(std::str::from_utf8(&p).unwrap().ends_with(r#""email":""}"#));
        // What redact leaves of it still carries the sequence number.
        let redacted = br#"{"seq":"0000000000000009","sent":"0000000000000002","pub":"00000003"}"#;
        assert_eq!(PayloadFormat::JsonEmail.read_seq(redacted), 9);
        assert_eq!(PayloadFormat::JsonEmail.read_sent_ns(redacted), 2);
    }
}
