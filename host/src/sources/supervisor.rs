//! One source's life: a tokio task that runs it, and runs it again after
//! it fails, with exponential backoff.
//!
//! - Each run is a fresh store (see `firehose_wasm::Source::run`).
//! - A run that ends by itself (trap, exit, out of memory, `run`
//!   returning, even `ok`) is logged with the source's name and counted
//!   as a failure; the next run starts after the backoff delay: 1 s,
//!   doubling up to 5 min ([`Backoff`]). A run that lasted longer than
//!   `reset_after` (1 min) resets the delay.
//! - After [`KEEPS_FAILING`] failed runs in a row the source is reported
//!   at ERROR ("keeps failing"), and again every [`KEEPS_FAILING`] more:
//!   it is retried at the capped delay, never hot-looped.
//! - Stopping (shutdown, removal or change on reload): the stop flag makes
//!   the guest's `publish` answer `shutting-down`; a source that returns
//!   within the grace period ends cleanly, one that does not (blocked in a
//!   sleep or a read, or spinning) is dropped with its store.
//!
//! Counters (`runs`, `failures`, `restarts`, and the source's own
//! `published` and `rejected`) ride on every log line about a run's end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firehose_wasm::{Source, SourceSink};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// After this many failed runs in a row a source is reported as failing.
pub const KEEPS_FAILING: u64 = 5;

/// The restart delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub initial: Duration,
    /// The cap the doubling stops at.
    pub max: Duration,
    /// A run at least this long resets the delay to `initial`.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(60),
        }
    }
}

/// Run counters of one supervised source.
#[derive(Debug, Default)]
pub struct RunCounters {
    /// Runs started.
    pub runs: AtomicU64,
    /// Runs that ended by themselves (not asked to stop).
    pub failures: AtomicU64,
    /// Restarts scheduled after a failure.
    pub restarts: AtomicU64,
}

/// A running source and the means to stop it.
pub struct Supervisor {
    source: Source,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    counters: Arc<RunCounters>,
}

impl Supervisor {
    /// Starts running `source` on a task of its own.
    pub fn start(source: Source, sink: Arc<dyn SourceSink>, backoff: Backoff) -> Supervisor {
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(RunCounters::default());
        let task = tokio::spawn(supervise(
            source.clone(),
            sink,
            stopped,
            counters.clone(),
            backoff,
        ));
        Supervisor {
            source,
            stop,
            task,
            counters,
        }
    }

    /// Its run counters.
    pub fn counters(&self) -> &RunCounters {
        &self.counters
    }

    /// The stop flag, for what else runs the source's code (its webhook
    /// requests): `true` once it is asked to stop.
    pub fn stop_receiver(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Tells the source to stop (its `publish` answers `shutting-down`
    /// from now on) without waiting.
    pub fn signal_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Stops the source: signals it, waits until `deadline` for its run
    /// to return, then drops it.
    pub async fn stop(mut self, deadline: Instant) {
        self.signal_stop();
        let name = self.source.name().to_owned();
        let deadline = tokio::time::Instant::from_std(deadline);
        if tokio::time::timeout_at(deadline, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
            let _ = (&mut self.task).await;
            warn!(
                source = %name,
                "source did not return within the grace period after it was asked to stop; dropped"
            );
        }
    }
}

async fn supervise(
    source: Source,
    sink: Arc<dyn SourceSink>,
    mut stopped: watch::Receiver<bool>,
    counters: Arc<RunCounters>,
    backoff: Backoff,
) {
    let name = source.name().to_owned();
    if !source.has_run() {
        // A webhook source without `run`: nothing to run or restart; its
        // requests are served by the hooks while this task waits.
        info!(source = %name, "source has no run export; it serves only its webhook");
        let _ = stopped.wait_for(|stop| *stop).await;
        let counts = source.counts();
        info!(
            source = %name,
            published = counts.published,
            rejected = counts.rejected,
            "source stopped"
        );
        return;
    }
    let mut delay = backoff.initial;
    let mut in_a_row = 0u64;
    loop {
        let run = counters.runs.fetch_add(1, Ordering::Relaxed) + 1;
        info!(source = %name, run, "source starting");
        let started = Instant::now();
        let result = source.run(sink.clone(), stopped.clone()).await;
        let ran = started.elapsed();
        let counts = source.counts();
        if *stopped.borrow() {
            match &result {
                Ok(()) => info!(
                    source = %name,
                    published = counts.published,
                    rejected = counts.rejected,
                    "source stopped"
                ),
                Err(error) => info!(
                    source = %name,
                    %error,
                    published = counts.published,
                    rejected = counts.rejected,
                    "source stopped (its run ended with an error while stopping)"
                ),
            }
            return;
        }
        let failures = counters.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if ran >= backoff.reset_after {
            delay = backoff.initial;
            in_a_row = 0;
        }
        in_a_row += 1;
        let why = match &result {
            Ok(()) => "its run returned ok without being asked to stop".to_owned(),
            Err(error) => error.to_string(),
        };
        warn!(
            source = %name,
            run,
            ran_ms = ran.as_millis() as u64,
            failures,
            published = counts.published,
            rejected = counts.rejected,
            restart_in_ms = delay.as_millis() as u64,
            "source run ended: {why}; restarting after backoff"
        );
        if in_a_row.is_multiple_of(KEEPS_FAILING) {
            error!(
                source = %name,
                failures_in_a_row = in_a_row,
                restart_in_ms = delay.as_millis() as u64,
                "source keeps failing: {in_a_row} runs in a row ended by themselves \
                 (last: {why}); it is retried with capped backoff"
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped.wait_for(|stop| *stop) => {
                info!(source = %name, "source stopped while waiting to restart");
                return;
            }
        }
        counters.restarts.fetch_add(1, Ordering::Relaxed);
        delay = (delay * 2).min(backoff.max);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::path::PathBuf;
    use std::pin::Pin;
    use std::sync::OnceLock;

    use firehose_wasm::{ComponentCache, Message, SinkError, SourceSpec, TopicPrefix, WasmEngine};

    use super::*;

    /// Counts what the source publishes.
    #[derive(Default)]
    struct Count(AtomicU64);

    impl SourceSink for Count {
        fn publish<'a>(
            &'a self,
            _source: &'a str,
            _message: Message,
        ) -> Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(async { Ok(()) })
        }
    }

    fn runtime() -> &'static (WasmEngine, ComponentCache, tempfile::TempDir) {
        static RUNTIME: OnceLock<(WasmEngine, ComponentCache, tempfile::TempDir)> = OnceLock::new();
        RUNTIME.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            (
                WasmEngine::new().unwrap(),
                ComponentCache::new(dir.path()),
                dir,
            )
        })
    }

    /// The probe from policies/testing, built by `guests/build`.
    async fn probe(mode: &str) -> Source {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm/source-probe.wasm");
        assert!(
            path.is_file(),
            "{} is missing: run guests/build",
            path.display()
        );
        let spec = SourceSpec::new(
            format!("probe-{mode}"),
            path,
            TopicPrefix::parse("p").unwrap(),
        )
        .with_config("prefix", "p/")
        .with_config("mode", mode)
        .with_config("interval_ms", "10");
        let (engine, cache, _) = runtime();
        Source::load(engine, cache, spec).await.unwrap()
    }

    async fn wait_until(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Log output, captured.
    #[derive(Clone, Default)]
    struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// Single-threaded, so that the log subscriber set for this thread
    /// sees the supervisor's task.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_source_restarts_with_doubling_capped_backoff_and_never_hot_loops() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _log = tracing::subscriber::set_default(subscriber);
        let backoff = Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(80),
            reset_after: Duration::from_secs(60),
        };
        let sink = Arc::new(Count::default());
        let started = Instant::now();
        let sup = Supervisor::start(probe("fail").await, sink.clone(), backoff);
        wait_until("seven runs", || {
            sup.counters().runs.load(Ordering::Relaxed) >= 7
        })
        .await;
        let elapsed = started.elapsed();
        // Six waits before the seventh run: 20 + 40 + 80 * 4 ms, at least.
        assert!(elapsed >= Duration::from_millis(380), "{elapsed:?}");
        let c = sup.counters();
        assert!(c.failures.load(Ordering::Relaxed) >= 6);
        assert!(c.restarts.load(Ordering::Relaxed) >= 6);
        // Each run published its `started` report before it failed.
        assert!(sink.0.load(Ordering::Relaxed) >= 6);
        sup.stop(Instant::now() + Duration::from_secs(1)).await;
        let log = capture.text();
        assert!(
            log.contains("source run ended: source probe-fail: run returned an error"),
            "{log}"
        );
        let reports: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("source keeps failing"))
            .collect();
        assert_eq!(
            reports.len(),
            1,
            "once at 5 in a row (not yet at 10): {log}"
        );
        assert!(reports[0].contains("5 runs in a row"), "{}", reports[0]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_asked_to_stop_returns_and_is_not_counted_as_failed() {
        let sink = Arc::new(Count::default());
        let sup = Supervisor::start(probe("probe").await, sink.clone(), Backoff::default());
        wait_until("heartbeats", || sink.0.load(Ordering::Relaxed) >= 10).await;
        let counters = sup.counters.clone();
        let begin = Instant::now();
        sup.stop(Instant::now() + Duration::from_secs(5)).await;
        assert!(
            begin.elapsed() < Duration::from_secs(2),
            "it returned at once"
        );
        assert_eq!(counters.runs.load(Ordering::Relaxed), 1);
        assert_eq!(counters.failures.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_that_ignores_the_stop_is_dropped_at_the_grace_deadline() {
        let sink = Arc::new(Count::default());
        let sup = Supervisor::start(probe("spin").await, sink.clone(), Backoff::default());
        wait_until("the spin started", || sink.0.load(Ordering::Relaxed) >= 1).await;
        let begin = Instant::now();
        sup.stop(Instant::now() + Duration::from_millis(200)).await;
        let took = begin.elapsed();
        assert!(
            took >= Duration::from_millis(190) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
