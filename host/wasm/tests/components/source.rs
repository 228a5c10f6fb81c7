//! Sources (world `source`) run with the purpose-built `source-probe`
//! from policies/testing: what the guest sees of its sandbox, what the
//! publish import refuses, how runs end, that a busy guest yields, and
//! that `publish` waits for the sink.

use std::sync::Arc;
use std::time::Duration;

use firehose_wasm::source::PublishCounts;
use firehose_wasm::{
    Message, RunError, SinkError, Source, SourceSink, SourceSpec, TcpGrant, TopicPrefix, World,
    check_component,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::common::{cache, component, engine, init_tracing};

/// Far beyond what any run here needs.
const WAIT: Duration = Duration::from_secs(20);

/// A sink that hands every message to the test; with a gate, each
/// publish first waits for a permit.
pub(crate) struct Collect {
    pub(crate) tx: mpsc::UnboundedSender<Message>,
    pub(crate) gate: Option<Arc<Semaphore>>,
}

impl SourceSink for Collect {
    fn publish<'a>(
        &'a self,
        _source: &'a str,
        message: Message,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(gate) = &self.gate {
                gate.acquire().await.expect("gate open").forget();
            }
            let _ = self.tx.send(message);
            Ok(())
        })
    }
}

fn probe_spec(name: &str, mode: &str) -> SourceSpec {
    SourceSpec::new(
        name,
        component("source-probe"),
        TopicPrefix::parse("probe").unwrap(),
    )
    .with_config("prefix", "probe/")
    .with_config("mode", mode)
}

pub(crate) async fn load(spec: SourceSpec) -> Source {
    Source::load(engine(), cache(), spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// An echo server on 127.0.0.1: answers one line with `echo: <line>`.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut line = String::new();
                if BufReader::new(read).read_line(&mut line).await.is_ok() {
                    let _ = write
                        .write_all(format!("echo: {}\n", line.trim_end()).as_bytes())
                        .await;
                }
            });
        }
    });
    port
}

/// A port nothing listens on (bound, then closed).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Collects the probe's reports until `probe/report/done`, each as
/// (check, payload); other messages before it as (topic, payload).
async fn reports(rx: &mut mpsc::UnboundedReceiver<Message>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        let m = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("the probe reports in time")
            .expect("the sink is open");
        if let Some(check) = m.topic.strip_prefix("probe/report/") {
            let text = String::from_utf8(m.payload).unwrap();
            println!("{check}: {text}");
            out.push((check.to_owned(), text));
            if check == "done" {
                return out;
            }
        } else {
            let text = String::from_utf8(m.payload).unwrap();
            out.push((m.topic, text));
        }
    }
}

fn report<'a>(reports: &'a [(String, String)], check: &str) -> &'a str {
    reports
        .iter()
        .find(|(c, _)| c == check)
        .map(|(_, t)| t.as_str())
        .unwrap_or_else(|| panic!("no report {check}: {reports:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_reaches_only_what_it_is_granted_and_sees_no_files_env_or_stdin() {
    init_tracing();
    let granted = echo_server().await;
    let denied = closed_port().await;
    let mut spec = probe_spec("probe", "probe")
        .with_config("granted", format!("127.0.0.1:{granted}"))
        .with_config("denied", format!("127.0.0.1:{denied}"))
        .with_config("denied_name", "not-granted.example.org:80")
        .with_config("interval_ms", "20");
    spec.tcp = vec![TcpGrant::parse(&format!("127.0.0.1:{granted}")).unwrap()];
    let source = load(spec).await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let sink = Arc::new(Collect { tx, gate: None });
    let run = tokio::spawn({
        let source = source.clone();
        async move { source.run(sink, stop).await }
    });
    let reports = reports(&mut rx).await;

    assert_eq!(
        report(&reports, "connect-granted"),
        "ok: echo: hello from the probe"
    );
    let denied_text = report(&reports, "connect-denied");
    assert!(
        denied_text.starts_with("err: connect 127.0.0.1:") && denied_text.contains("access-denied"),
        "{denied_text}"
    );
    let lookup = report(&reports, "lookup-denied");
    assert!(
        lookup.starts_with("err: resolve not-granted.example.org: access-denied"),
        "{lookup}"
    );
    assert!(report(&reports, "file").starts_with("err: /etc/passwd"));
    assert!(report(&reports, "dir").starts_with("err: ."));
    assert_eq!(report(&reports, "env"), "ok: 0 variables [], 0 arguments");
    assert_eq!(report(&reports, "stdin"), "ok: read 0 bytes");
    assert_eq!(
        report(&reports, "outside-prefix"),
        r#"err: PublishError::OutsidePrefix("probe/")"#
    );
    assert_eq!(
        report(&reports, "bare-prefix"),
        r#"err: PublishError::OutsidePrefix("probe/")"#
    );
    assert!(report(&reports, "invalid-topic").starts_with("err: PublishError::InvalidTopic("));
    // publish-batch: the first batch whole, the second up to its refusal,
    // in order; an empty batch succeeds.
    assert_eq!(report(&reports, "batch"), "ok: published");
    assert_eq!(
        report(&reports, "batch-refusal"),
        r#"err: published 1, then PublishError::OutsidePrefix("probe/")"#
    );
    assert_eq!(report(&reports, "batch-empty"), "ok: published");
    let batched: Vec<&str> = reports
        .iter()
        .filter(|(topic, _)| topic.starts_with("probe/batch/"))
        .map(|(_, payload)| payload.as_str())
        .collect();
    assert_eq!(batched, ["1", "2", "3", "4"]);

    // After the reports, heartbeats; then a stop makes `run` return ok.
    let beat = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(beat.topic, "probe/heartbeat");
    stop_tx.send(true).unwrap();
    let result = tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
    assert_eq!(result, Ok(()));
    let PublishCounts {
        published,
        rejected,
    } = source.counts();
    assert_eq!(
        rejected, 4,
        "outside prefix, bare prefix, wildcard, the batch's refusal"
    );
    assert!(
        published > reports.len() as u64,
        "reports and a heartbeat: {published}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_a_tcp_grant_cannot_even_create_a_socket() {
    init_tracing();
    let port = echo_server().await;
    let spec =
        probe_spec("probe-nogrant", "probe").with_config("granted", format!("127.0.0.1:{port}"));
    let source = load(spec).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_stop_tx, stop) = watch::channel(false);
    let run = tokio::spawn({
        let source = source.clone();
        async move { source.run(Arc::new(Collect { tx, gate: None }), stop).await }
    });
    let reports = reports(&mut rx).await;
    let text = report(&reports, "connect-granted");
    assert!(
        text.starts_with("err: create socket: access-denied"),
        "{text}"
    );
    run.abort();
}

async fn run_to_end(mode: &str, memory_mib: u32) -> Result<(), RunError> {
    init_tracing();
    let mut spec = probe_spec(&format!("probe-{mode}"), mode);
    spec.memory_mib = memory_mib;
    let source = load(spec).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_stop_tx, stop) = watch::channel(false);
    let result = tokio::time::timeout(WAIT, source.run(Arc::new(Collect { tx, gate: None }), stop))
        .await
        .expect("the run ends");
    let started = rx.try_recv().expect("it published before it failed");
    assert_eq!(started.topic, "probe/report/started");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn how_a_run_ends_is_reported_trap_exit_error_and_out_of_memory() {
    let e = run_to_end("trap", 64).await.unwrap_err();
    assert!(matches!(e, RunError::Trap { .. }), "{e}");
    assert!(
        e.to_string().starts_with("source probe-trap: trapped"),
        "{e}"
    );

    // WASI 0.2's `exit` carries only ok or err: `exit(3)` arrives as 1.
    let e = run_to_end("exit", 64).await.unwrap_err();
    assert_eq!(
        e,
        RunError::Exited {
            name: "probe-exit".into(),
            code: 1
        }
    );

    let e = run_to_end("fail", 64).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "source probe-fail: run returned an error: the probe was told to fail"
    );

    let e = run_to_end("alloc", 16).await.unwrap_err();
    assert_eq!(
        e,
        RunError::OutOfMemory {
            name: "probe-alloc".into(),
            memory_mib: 16
        }
    );
}

/// A guest that points 80 MiB of user properties at 1 MiB of its memory
/// cannot make the host copy more than its 64 MiB cap: the call fails
/// while lifting, the guest traps, and nothing reaches the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_make_the_host_copy_more_than_its_memory_cap() {
    let e = run_to_end("alias", 64).await.unwrap_err();
    let RunError::Trap { message, .. } = &e else {
        panic!("expected a trap, got {e}");
    };
    assert!(
        message.contains("too much data is being copied between the host and the guest"),
        "{message}"
    );
}

/// On a single-threaded runtime a guest that never yielded would starve
/// the timer: the timeout firing proves the epoch deadline yields.
#[tokio::test(flavor = "current_thread")]
async fn a_spinning_source_yields_so_its_runtime_thread_stays_free() {
    init_tracing();
    let source = load(probe_spec("probe-spin", "spin")).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_stop_tx, stop) = watch::channel(false);
    let started = std::time::Instant::now();
    let ticker = tokio::spawn(async {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let result = tokio::time::timeout(
        Duration::from_millis(500),
        source.run(Arc::new(Collect { tx, gate: None }), stop),
    )
    .await;
    assert!(result.is_err(), "the spinning run never ends by itself");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "timeout fired late: {elapsed:?}"
    );
    assert!(
        ticker.is_finished(),
        "another task ran while the guest spun"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_waits_for_the_sink_and_loses_nothing() {
    init_tracing();
    let spec = probe_spec("probe-gated", "probe").with_config("interval_ms", "1");
    let source = load(spec).await;
    let gate = Arc::new(Semaphore::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let sink = Arc::new(Collect {
        tx,
        gate: Some(gate.clone()),
    });
    let run = tokio::spawn({
        let source = source.clone();
        async move { source.run(sink, stop).await }
    });
    // Nothing may pass while the gate is shut: the guest waits in publish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err());
    assert_eq!(source.counts().published, 0);
    // Let exactly 20 through: 20 arrive, in order, and no more.
    gate.add_permits(20);
    let mut topics = Vec::new();
    for _ in 0..20 {
        let m = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        topics.push(m.topic);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err(), "nothing beyond the permits");
    assert_eq!(source.counts().published, 20);
    assert_eq!(topics[0], "probe/report/file");
    // A stop while the guest waits in publish (a heartbeat by now) makes
    // that publish say `shutting-down`, and the probe returns ok.
    stop_tx.send(true).unwrap();
    let result = tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
    assert_eq!(result, Ok(()));
    assert_eq!(source.counts().published, 20);
}

#[test]
fn component_check_reports_a_source_and_its_socket_imports() {
    let bytes = std::fs::read(component("source-probe")).unwrap();
    let info = check_component(engine(), &bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.world, World::Source);
    for import in [
        "firehose:bus/publish@",
        "wasi:sockets/tcp@",
        "wasi:sockets/ip-name-lookup@",
    ] {
        assert!(
            info.imports.iter().any(|i| i.starts_with(import)),
            "{import}: {:?}",
            info.imports
        );
    }
}
