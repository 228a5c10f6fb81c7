//! Scenario 6, the cost of a WASM source: firehose delivering a source's
//! flood to `S` subscribers, beside the same firehose delivering the same
//! flood from a native MQTT publisher over loopback (issue 4, point 8).
//!
//! Two variants of one broker config, each on a freshly started broker,
//! for every subscriber count of `--source-subscribers`:
//!
//! - **wasm source**: the config has a `[[source]]` running
//!   `source-flood.wasm` (`policies/testing/source-flood`), granted TCP to
//!   one port of the bench. The source connects there at start and waits;
//!   the bench connects the subscribers, warms them up with a native
//!   client, then sends `go`: the clock starts. The source publishes
//!   `--source-messages` QoS 0 messages as fast as `publish` returns and
//!   answers `done <published> <errors> <guest-ns>`.
//! - **native publisher**: the same config without the source; one MQTT
//!   client warms the subscribers up and then writes the same messages as
//!   fast as TCP takes them (64 per write, as in fan-out).
//!
//! Subscribers' QoS 0 queues (`max_queued_qos0`) hold every message of a
//! run (`--source-queue`, default the message count), so neither variant
//! is entitled to drop: what is compared is the speed of a lossless
//! delivery. Other brokers do not run WASM sources and are skipped.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{
    ClientIds, Ctx, Params, Receivers, RecvTotals, Shared, flood, qos0_result, spawn_group, warm_up,
};
use crate::brokers::{BrokerKind, Limits, RunningBroker};
use crate::client::{BIG_READ_BUF, Conn};
use crate::procfs::{CpuMark, CpuSpent};
use crate::report::{Better, BrokerResult, Metric, ScenarioResult};

/// The row of the source variant that calls `publish` per message.
pub const WASM: &str = "wasm source";
/// The row of the source variant that hands over `--source-batch`
/// messages per `publish-batch` call.
pub const WASM_BATCH: &str = "wasm source, publish-batch";
/// The row of the native variant.
pub const NATIVE: &str = "native publisher";

/// The component's file name (in `--wasm-dir`, built by `guests/build`).
pub const COMPONENT: &str = "source-flood.wasm";

/// How long the bench waits for the source's connection after the broker
/// is up (it connects as soon as its run starts).
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which variant of the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Wasm,
    WasmBatch,
    Native,
}

impl Variant {
    pub fn label(self) -> &'static str {
        match self {
            Variant::Wasm => WASM,
            Variant::WasmBatch => WASM_BATCH,
            Variant::Native => NATIVE,
        }
    }

    /// Messages the source hands over per host call (`None`: native).
    fn batch(self, p: &Params) -> Option<usize> {
        match self {
            Variant::Wasm => Some(1),
            Variant::WasmBatch => Some(p.source_batch),
            Variant::Native => None,
        }
    }
}

/// The title of the scenario for `subs` subscribers (all counts: `None`).
pub fn title(p: &Params, subs: Option<usize>) -> String {
    let subs = match subs {
        Some(n) => subscribers(n),
        None => {
            let counts: Vec<String> = p.source_subscribers.iter().map(usize::to_string).collect();
            format!("{} subscribers", counts.join(" or "))
        }
    };
    format!(
        "WASM source vs native publisher: {} messages -> {subs}, QoS 0, {}-byte {} payloads",
        p.source_messages,
        p.payload,
        p.payload_format.name()
    )
}

/// `1 subscriber`, `10 subscribers`.
fn subscribers(n: usize) -> String {
    format!("{n} subscriber{}", if n == 1 { "" } else { "s" })
}

/// What the scenario measures and how (for the report).
pub fn description(p: &Params, subs: Option<usize>) -> String {
    let subs = subs.map_or_else(|| "S subscribers".to_owned(), subscribers);
    format!(
        "firehose only: Mosquitto and rumqttd do not run WASM sources, and firehose+policies is \
         not measured here. Two variants, each on a freshly started firehose with the limits \
         above except `max_queued_qos0 = {q}` (so that no subscriber queue needs to drop), the \
         order swapped every other round. **{WASM}**: the config adds a `[[source]]` running \
         source-flood.wasm (below); it connects to a TCP port of the bench and waits; the bench \
         connects {subs}, warms them up with a native client, then sends `go` (the \
         clock starts) and the source publishes {n} QoS 0 messages to one topic as fast as \
         `publish` returns, then answers `done`. **{NATIVE}**: the config without the source; one \
         MQTT client warms the subscribers up, then writes the same {n} messages as fast as TCP \
         takes them (64 per write, QoS 0). msg/s = deliveries summed over subscribers / (last \
         delivery - start); publish msg/s = messages / (`done` received - start) for the source, \
         / (last write - start) for the native publisher. total CPU = broker + load generator: \
         the native publisher's CPU is the load generator's, the source's is the broker's. The \
         source's config:\n\n```toml\n{}```",
        source_toml(
            Path::new("<work dir>/wasm/source-flood.wasm"),
            "bench/<run>",
            p,
            1,
            "127.0.0.1:<go port>".parse().ok(),
        ),
        q = p.source_queue,
        n = p.source_messages,
    )
}

/// The `[[source]]` entry of the wasm variant (`go`: `None` shows a
/// placeholder port).
pub fn source_toml(
    wasm: &Path,
    run: &str,
    p: &Params,
    batch: usize,
    go: Option<SocketAddr>,
) -> String {
    let go = go.map_or_else(|| "127.0.0.1:<go port>".to_owned(), |a| a.to_string());
    format!(
        r#"[[source]]
name = "flood"
path = {path:?}
prefix = "{run}"

[source.config]
count = "{count}"
topic = "{run}/flood"
payload_size = "{size}"
format = "{format}"
qos = "0"
go = "{go}"
batch = "{batch}"

[source.grants]
tcp = ["{go}"]

# [source.limits]: the defaults (memory_mib = 64)
"#,
        path = wasm.display().to_string(),
        count = p.source_messages,
        size = p.payload,
        format = p.payload_format.name(),
    )
}

/// Runs both variants for every subscriber count: one [`ScenarioResult`]
/// per count, its rows labeled [`WASM`] and [`NATIVE`].
pub async fn run_round(
    setup: &crate::Setup<'_>,
    wasm: &Path,
    work: &Path,
    run_no: &mut usize,
    (round, rounds): (usize, usize),
) -> Vec<ScenarioResult> {
    let p = setup.params;
    let mut out = Vec::new();
    for &subs in &p.source_subscribers {
        let mut heading = title(p, Some(subs));
        if rounds > 1 {
            heading.push_str(&format!(" (round {round} of {rounds})"));
        }
        eprintln!("\n== {heading}");
        let mut order = vec![Variant::Wasm];
        if p.source_batch > 1 {
            order.push(Variant::WasmBatch);
        }
        order.push(Variant::Native);
        if round % 2 == 0 {
            order.reverse();
        }
        let mut rows = Vec::new();
        for &variant in &order {
            *run_no += 1;
            let dir = work.join(format!(
                "{:02}-source-{subs}-{}",
                *run_no,
                variant_dir(variant)
            ));
            let r = run_variant(variant, subs, setup, wasm, &dir, *run_no)
                .await
                .unwrap_or_else(|e| BrokerResult::error(BrokerKind::Firehose, &e))
                .labeled(variant.label());
            eprintln!("  {}", r.summary());
            rows.push(r);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // The sources first and the native publisher, the reference of
        // the ratios, last in every table, whatever the run order.
        rows.sort_by_key(|r| {
            [WASM, WASM_BATCH, NATIVE]
                .iter()
                .position(|l| r.label == Some(*l))
        });
        if order[0] != Variant::Wasm {
            let order: Vec<&str> = order.iter().map(|v| v.label()).collect();
            heading.push_str(&format!(", run in the order {}", order.join(", ")));
        }
        out.push(ScenarioResult {
            // Short: it names the rows of the summary over the rounds.
            scenario: format!("source -> {}", subscribers(subs)),
            title: heading,
            description: description(p, Some(subs)),
            results: rows,
        });
    }
    out
}

fn variant_dir(variant: Variant) -> &'static str {
    match variant {
        Variant::Wasm => "wasm",
        Variant::WasmBatch => "wasm-batch",
        Variant::Native => "native",
    }
}

/// The limits of this scenario: `base` with the QoS 0 queue resized.
fn limits(base: &Limits, p: &Params) -> Limits {
    Limits {
        max_queued_qos0: u32::try_from(p.source_queue).unwrap_or(u32::MAX),
        ..base.clone()
    }
}

/// Starts firehose for `variant`, measures, stops it.
async fn run_variant(
    variant: Variant,
    subs: usize,
    setup: &crate::Setup<'_>,
    wasm: &Path,
    dir: &Path,
    run_no: usize,
) -> Result<BrokerResult> {
    let p = setup.params;
    let tag = format!("source{run_no}");
    let run = format!("bench/{tag}");
    let (go, extra) = match variant.batch(p) {
        Some(batch) => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding go port")?;
            let addr = listener.local_addr()?;
            (
                Some(listener),
                source_toml(wasm, &run, p, batch, Some(addr)),
            )
        }
        None => (None, String::new()),
    };
    let mut broker = RunningBroker::start(
        BrokerKind::Firehose,
        setup.bins,
        &limits(setup.limits, p),
        None,
        &extra,
        dir,
    )
    .await?;
    let ctx = Ctx {
        broker: BrokerKind::Firehose,
        addr: broker.addr,
        pid: broker.pid(),
        params: p.clone(),
        tag,
        publisher_login: None,
    };
    let load_before = crate::load_average();
    let r = measure(&ctx, subs, &format!("{run}/flood"), go).await;
    broker.check_alive()?;
    broker.stop();
    let mut r = r?;
    r.metrics.push(Metric::new(
        "load avg (1 min)",
        load_before,
        2,
        Better::Info,
    ));
    Ok(r)
}

/// What the publishing side saw.
struct Published {
    cpu: CpuMark,
    start: Instant,
    /// When the last message was handed over (`done` read, last write).
    end: Option<Instant>,
    /// The source's `done` line: published, errors, guest nanoseconds.
    report: Option<(u64, u64, u64)>,
}

/// Subscribers on one thread, the publishing side (the go handshake with
/// the source, or the native publisher) on another.
async fn measure(
    ctx: &Ctx,
    subs: usize,
    topic: &str,
    go: Option<std::net::TcpListener>,
) -> Result<BrokerResult> {
    let p = ctx.params.clone();
    let count = p.source_messages;
    let wasm = go.is_some();
    let shared = Shared::new();
    let hard_deadline = Instant::now() + Duration::from_secs(60) + p.max_time + p.settle * 2;

    let receivers = Receivers::new(
        ctx.addr,
        ClientIds::Numbered("src-sub", subs),
        topic,
        &p,
        count,
        hard_deadline,
    )
    .spawn("source-subs", &shared);

    let publisher = {
        let (shared, topic, addr, pid) = (Arc::clone(&shared), topic.to_owned(), ctx.addr, ctx.pid);
        let p = p.clone();
        spawn_group("source-pub", move || async move {
            let r = async {
                let published = match go {
                    Some(listener) => {
                        wasm_side(listener, addr, pid, &topic, &p, &shared, subs).await?
                    }
                    None => native_side(addr, pid, &topic, &p, &shared, subs).await?,
                };
                anyhow::Ok(published)
            }
            .await;
            if r.is_err() {
                shared.abort.store(true, Ordering::Relaxed);
            }
            r
        })
    };

    let (pub_res, recv_res) = tokio::join!(publisher, receivers);
    let published = pub_res?;
    let stats = recv_res?;
    let cpu = published.cpu.elapsed(ctx.pid)?;
    let RecvTotals {
        delivered,
        last,
        closed,
    } = RecvTotals::of(&stats);
    let start = published.start;
    let mut r = qos0_result(
        ctx.broker,
        count * subs as u64,
        delivered,
        last.unwrap_or(start).saturating_duration_since(start),
        cpu,
        closed,
        published.end.is_none(),
    );
    add_metrics(&mut r, &published, count, delivered, cpu);
    if let Some((n, errors, guest_ns)) = published.report {
        let guest_secs = guest_ns as f64 / 1e9;
        r.notes.push(format!(
            "the source reported {n} published, {errors} failed, in {guest_secs:.3} s by its own \
             clock ({:.0} msg/s)",
            n as f64 / guest_secs.max(1e-9)
        ));
        if n != count || errors > 0 {
            r.status = crate::report::Status::Failed(format!(
                "the source published {n} of {count} messages ({errors} publish errors)"
            ));
        }
    } else if wasm {
        r.notes.push("the source sent no `done` line".into());
    }
    Ok(r)
}

/// Adds publish msg/s after delivered msg/s and total CPU after the
/// load generator's.
fn add_metrics(
    r: &mut BrokerResult,
    published: &Published,
    count: u64,
    delivered: u64,
    cpu: CpuSpent,
) {
    let at = |r: &BrokerResult, name: &str| {
        r.metrics
            .iter()
            .position(|m| m.name == name)
            .map_or(r.metrics.len(), |i| i + 1)
    };
    let publish_rate = published.end.map_or(f64::NAN, |end| {
        count as f64 / end.duration_since(published.start).as_secs_f64().max(1e-9)
    });
    let i = at(r, "delivered msg/s");
    r.metrics.insert(
        i,
        Metric::new("publish msg/s", publish_rate, 0, Better::Higher),
    );
    let i = at(r, "loadgen CPU us/msg");
    r.metrics.insert(
        i,
        Metric::new(
            "total CPU us/msg",
            (cpu.broker_us + cpu.bench_us) as f64 / delivered.max(1) as f64,
            3,
            Better::Lower,
        ),
    );
}

/// The wasm variant's publishing side: warm the subscribers up with a
/// native client, accept the source's connection, send `go`, read `done`.
async fn wasm_side(
    listener: std::net::TcpListener,
    addr: SocketAddr,
    pid: u32,
    topic: &str,
    p: &Params,
    shared: &Shared,
    subs: usize,
) -> Result<Published> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let mut warm = Conn::connect(addr, None, "src-warm", None, p.keep_alive, BIG_READ_BUF).await?;
    warm_up(&mut warm, topic, p.payload_format, shared, subs).await?;
    warm.disconnect().await;
    let (mut go, _) = timeout(ACCEPT_TIMEOUT, listener.accept())
        .await
        .context("the source did not connect to the go port within 30 s")??;
    go.set_nodelay(true)?;
    let cpu = CpuMark::take(pid)?;
    let start = Instant::now();
    go.write_all(b"go\n").await?;
    let line = timeout(p.max_time, read_line(&mut go)).await;
    let end = Instant::now();
    shared.mark_done();
    let report = match line {
        Ok(line) => Some(parse_done(&line?)?),
        Err(_) => None,
    };
    shared
        .wait_finished(Duration::from_secs(60) + p.settle * 2)
        .await;
    // Closing the connection lets the source go idle.
    drop(go);
    Ok(Published {
        cpu,
        start,
        end: report.map(|_| end),
        report,
    })
}

/// The native variant's publishing side: warm up, then flood.
async fn native_side(
    addr: SocketAddr,
    pid: u32,
    topic: &str,
    p: &Params,
    shared: &Shared,
    subs: usize,
) -> Result<Published> {
    let mut conn = Conn::connect(addr, None, "src-pub", None, p.keep_alive, BIG_READ_BUF).await?;
    warm_up(&mut conn, topic, p.payload_format, shared, subs).await?;
    let cpu = CpuMark::take(pid)?;
    let start = Instant::now();
    let r = timeout(
        p.max_time,
        flood(
            &mut conn,
            topic,
            (p.payload_format, p.payload),
            0,
            0,
            p.source_messages,
        ),
    )
    .await;
    let end = Instant::now();
    shared.mark_done();
    let end = match r {
        Ok(r) => {
            r?;
            Some(end)
        }
        Err(_) => None,
    };
    shared
        .wait_finished(Duration::from_secs(60) + p.settle * 2)
        .await;
    conn.disconnect().await;
    Ok(Published {
        cpu,
        start,
        end,
        report: None,
    })
}

/// Reads one line (without its newline) from the go connection.
async fn read_line(stream: &mut TcpStream) -> Result<String> {
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    while !line.contains(&b'\n') {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the source closed the go connection");
        }
        line.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&line);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// `done <published> <errors> <guest-ns>`.
fn parse_done(line: &str) -> Result<(u64, u64, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [done, published, errors, ns] = fields[..] else {
        bail!("unexpected line from the source: {line:?}");
    };
    if done != "done" {
        bail!("unexpected line from the source: {line:?}");
    }
    let number = |s: &str| {
        s.parse::<u64>()
            .with_context(|| format!("in the source's line {line:?}"))
    };
    Ok((number(published)?, number(errors)?, number(ns)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::PayloadFormat;

    fn params() -> Params {
        Params {
            messages: 1,
            qos1_messages: 1,
            subscribers: 1,
            publishers: 1,
            payload: 100,
            payload_format: PayloadFormat::Json,
            duration: Duration::from_secs(1),
            rate: 1,
            connections: 1,
            qos1_window: 1,
            qos1_lead: 1,
            keep_alive: 60,
            settle: Duration::from_secs(1),
            max_time: Duration::from_secs(1),
            source_messages: 1000,
            source_subscribers: vec![1, 10],
            source_queue: 1000,
            source_batch: 64,
        }
    }

    #[test]
    fn the_source_entry_grants_exactly_the_go_port() {
        let go: SocketAddr = "127.0.0.1:4711".parse().unwrap();
        let toml = source_toml(
            Path::new("/w/source-flood.wasm"),
            "bench/s1",
            &params(),
            64,
            Some(go),
        );
        assert!(toml.contains("prefix = \"bench/s1\""), "{toml}");
        assert!(toml.contains("topic = \"bench/s1/flood\""), "{toml}");
        assert!(toml.contains("go = \"127.0.0.1:4711\""), "{toml}");
        assert!(toml.contains("tcp = [\"127.0.0.1:4711\"]"), "{toml}");
        assert!(toml.contains("count = \"1000\""), "{toml}");
        assert!(toml.contains("format = \"json\""), "{toml}");
        assert!(toml.contains("batch = \"64\""), "{toml}");
        assert!(toml.contains("path = \"/w/source-flood.wasm\""), "{toml}");
    }

    #[test]
    fn done_lines() {
        assert_eq!(parse_done("done 10 0 12345").unwrap(), (10, 0, 12345));
        assert!(parse_done("done 10 0").is_err());
        assert!(parse_done("ready 1 2 3").is_err());
        assert!(parse_done("done x 0 1").is_err());
    }

    #[test]
    fn titles_name_the_subscriber_counts() {
        let p = params();
        assert!(title(&p, None).contains("-> 1 or 10 subscribers"));
        assert!(title(&p, Some(10)).contains("1000 messages -> 10 subscribers"));
        assert!(title(&p, Some(1)).contains("1000 messages -> 1 subscriber,"));
        assert!(description(&p, Some(1)).contains("max_queued_qos0 = 1000"));
    }
}
