//! `firehose-bench`: starts firehose, firehose with policies (an ACL
//! component and a transform chain), Mosquitto and rumqttd on free
//! 127.0.0.1 ports and measures them side by side (fan-out, fan-in, QoS 1,
//! latency, idle connections), then prints a markdown report with
//! firehose / peer ratios and firehose+policies / firehose ratios (and
//! writes it to `--out`). The `source` scenario measures firehose alone:
//! a WASM source's flood against a native MQTT publisher's.
//!
//! Each scenario runs against each broker in turn, every time on a freshly
//! started broker, which is stopped by PID afterwards (also on error and on
//! Ctrl-C). Client groups run on their own current_thread runtimes.

mod brokers;
mod client;
mod procfs;
mod report;
mod scenarios;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;

use brokers::{Binaries, BrokerKind, Limits, PolicySetup, RunningBroker};
use report::{BrokerResult, ScenarioResult};
use scenarios::{Ctx, Params, PayloadFormat, Scenario};

/// Side-by-side MQTT benchmark: firehose (without and with policies) vs
/// Mosquitto vs rumqttd.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Brokers to measure, comma separated: firehose, firehose+policies
    /// (public-read ACL component + a redact transform chain on the bench
    /// topics), mosquitto, rumqttd.
    #[arg(long, default_value = "firehose,firehose+policies,mosquitto,rumqttd")]
    brokers: String,
    /// Scenarios to run, comma separated: fanout,fanin,qos1,latency,idle,
    /// source (firehose only: a WASM source vs a native publisher; needs
    /// source-flood.wasm in --wasm-dir).
    #[arg(long, default_value = "fanout,fanin,qos1,latency,idle,source")]
    scenarios: String,
    /// Deliveries per QoS 0 throughput scenario (fan-out publishes
    /// messages/subscribers; each fan-in publisher sends messages/publishers).
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// QoS 1 messages in the 1 -> 1 scenario.
    #[arg(long, default_value_t = 300_000)]
    qos1_messages: u64,
    /// Subscribers in the fan-out and latency scenarios.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Publishers in the fan-in scenario.
    #[arg(long, default_value_t = 100)]
    publishers: usize,
    /// Payload bytes (at least 79 for json, 80 for json-email, 20 for
    /// binary).
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Payload format, the same for every broker: json (a small JSON object
    /// without an `email` field: redact parses nothing out and passes it),
    /// json-email (its padding is an `email` field: redact removes it and
    /// replaces the message) or binary.
    #[arg(long, default_value = "json")]
    payload_format: String,
    /// Seconds of the latency scenario.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Publish rate of the latency scenario, msg/s.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Idle connections.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// QoS 1: PUBACKs the publisher may have outstanding.
    #[arg(long, default_value_t = 32)]
    qos1_window: usize,
    /// QoS 1: how far the publisher may run ahead of the subscriber.
    #[arg(long, default_value_t = 500)]
    qos1_lead: u64,
    /// Rounds: each scenario runs this many times against each broker, the
    /// broker order reversed every other round. With 2 or more, the report
    /// ends with the median and range of firehose+policies / firehose.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Source scenario: messages the source (and the native publisher)
    /// publish per run.
    #[arg(long, default_value_t = 1_000_000)]
    source_messages: u64,
    /// Source scenario: subscriber counts, comma separated; each is
    /// measured with both variants.
    #[arg(long, default_value = "1,10")]
    source_subscribers: String,
    /// Source scenario: firehose's max_queued_qos0 per subscriber
    /// [default: --source-messages, so nothing needs to drop].
    #[arg(long)]
    source_queue: Option<usize>,
    /// Source scenario: messages per `publish-batch` call in the variant
    /// that batches (1 skips that variant).
    #[arg(long, default_value_t = 64)]
    source_batch: usize,
    /// Keep alive (s) of every client; rumqttd refuses 0.
    #[arg(long, default_value_t = 600)]
    keep_alive: u16,
    /// Seconds receivers wait for stragglers after the last publish.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Cap (s) on the publishing phase of a throughput scenario.
    #[arg(long, default_value_t = 60.0)]
    max_secs: f64,
    /// Broker limit: QoS 1/2 in flight per client.
    #[arg(long, default_value_t = 32)]
    max_inflight: u32,
    /// Broker limit: QoS 1/2 queued per client beyond the inflight window
    /// (also Mosquitto's and firehose's QoS 0 queue).
    #[arg(long, default_value_t = 1000)]
    max_queued: u32,
    /// firehose binary [default: <workspace>/target/release/firehose].
    #[arg(long)]
    firehose_bin: Option<PathBuf>,
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto_bin: PathBuf,
    /// rumqttd binary [default: ~/.cache/firehose-bench/rumqttd/bin/rumqttd,
    /// installed with cargo install if missing].
    #[arg(long)]
    rumqttd_bin: Option<PathBuf>,
    /// Where public-read.wasm and redact.wasm (firehose+policies) and
    /// source-flood.wasm (the source scenario) are [default:
    /// <workspace>/target/wasm, filled by guests/build].
    #[arg(long)]
    wasm_dir: Option<PathBuf>,
    /// Write the markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the generated configs and broker logs (in the temp dir).
    #[arg(long)]
    keep_logs: bool,
}

fn split<T>(s: &str, parse: fn(&str) -> Result<T>) -> Result<Vec<T>> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(parse)
        .collect()
}

/// Removes the work dir (configs, logs, data) unless asked to keep it.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("configs and logs kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    r = run(cli) => r,
                    _ = tokio::signal::ctrl_c() => bail!("interrupted; brokers stopped"),
                    _ = term.recv() => bail!("terminated; brokers stopped"),
                }
            })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firehose-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let brokers = split(&cli.brokers, BrokerKind::parse)?;
    let mut scenarios = split(&cli.scenarios, Scenario::parse)?;
    let source_subscribers = split(&cli.source_subscribers, |s| {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("--source-subscribers: {s:?} is not a positive number"))
    })?;
    let mut skipped = Vec::new();
    if scenarios.contains(&Scenario::Source) && !brokers.contains(&BrokerKind::Firehose) {
        let note = "the source scenario was skipped: it measures firehose only (a WASM source \
                    against a native publisher) and `firehose` is not in --brokers";
        eprintln!("firehose-bench: {note}");
        skipped.push(note.to_owned());
        scenarios.retain(|&s| s != Scenario::Source);
    }
    let payload_format = PayloadFormat::parse(&cli.payload_format)?;
    if cli.payload < payload_format.min_len() {
        bail!(
            "--payload must be at least {} bytes for --payload-format {}",
            payload_format.min_len(),
            payload_format.name()
        );
    }
    if cli.subscribers == 0
        || cli.publishers == 0
        || cli.rate == 0
        || cli.qos1_window == 0
        || cli.qos1_lead == 0
    {
        bail!(
            "--subscribers, --publishers, --rate, --qos1-window and --qos1-lead must be positive"
        );
    }
    let params = Params {
        messages: cli.messages,
        qos1_messages: cli.qos1_messages,
        subscribers: cli.subscribers,
        publishers: cli.publishers,
        payload: cli.payload,
        payload_format,
        duration: Duration::from_secs_f64(cli.duration),
        rate: cli.rate,
        connections: cli.connections,
        qos1_window: cli.qos1_window.min(65_000),
        qos1_lead: cli.qos1_lead,
        keep_alive: cli.keep_alive,
        settle: Duration::from_secs_f64(cli.settle),
        max_time: Duration::from_secs_f64(cli.max_secs),
        source_messages: cli.source_messages.max(1),
        source_queue: cli
            .source_queue
            .unwrap_or(cli.source_messages as usize)
            .max(1),
        source_subscribers,
        source_batch: cli.source_batch.max(1),
    };

    let fd_limit = procfs::raise_fd_limit()?;
    if scenarios.contains(&Scenario::Idle) && (cli.connections as u64) + 500 > fd_limit {
        bail!(
            "--connections {} needs about {} file descriptors but RLIMIT_NOFILE's hard limit is {fd_limit}",
            cli.connections,
            cli.connections + 500
        );
    }
    let limits = Limits {
        max_inflight: cli.max_inflight,
        max_queued: cli.max_queued,
        max_queued_qos0: cli.max_queued,
        max_packet_size: 1_048_576,
        max_connections: cli.connections + 1_000,
    };
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = workspace.canonicalize().unwrap_or(workspace);
    let rumqttd_default = cli.rumqttd_bin.is_none();
    let mut bins = Binaries {
        firehose: cli
            .firehose_bin
            .clone()
            .unwrap_or_else(|| workspace.join("target/release/firehose")),
        mosquitto: cli.mosquitto_bin.clone(),
        rumqttd: cli
            .rumqttd_bin
            .clone()
            .unwrap_or_else(|| brokers::rumqttd_cache_root().join("bin/rumqttd")),
    };
    for &b in &brokers {
        bins.ensure(b, rumqttd_default)?;
    }

    let work = WorkDir {
        path: std::env::temp_dir().join(format!("firehose-bench-{}", std::process::id())),
        keep: cli.keep_logs,
    };
    std::fs::create_dir_all(&work.path)?;
    let versions: Vec<String> = brokers.iter().map(|&b| bins.version(b)).collect();
    if brokers.iter().any(|b| b.is_firehose()) {
        // Run a private copy: the workspace binary may be rebuilt mid-run.
        let copy = work.path.join("firehose");
        std::fs::copy(&bins.firehose, &copy)
            .with_context(|| format!("copying {}", bins.firehose.display()))?;
        bins.firehose = copy;
    }
    let wasm_dir = cli
        .wasm_dir
        .clone()
        .unwrap_or_else(|| workspace.join("target/wasm"));
    let source_wasm = if scenarios.contains(&Scenario::Source) {
        let from = wasm_dir.join(scenarios::source::COMPONENT);
        if !from.exists() {
            bail!(
                "{} does not exist: build it with `guests/build` (the source scenario runs it), \
                 or leave the scenario out with --scenarios",
                from.display()
            );
        }
        // A private copy, as for the binary.
        let copies = work.path.join("wasm");
        std::fs::create_dir_all(&copies)?;
        let copy = copies.join(scenarios::source::COMPONENT);
        std::fs::copy(&from, &copy).with_context(|| format!("copying {}", from.display()))?;
        Some(copy)
    } else {
        None
    };
    let policies = if brokers.contains(&BrokerKind::FirehosePolicies) {
        // Private copies of the components too, for the same reason.
        let copies = work.path.join("wasm");
        std::fs::create_dir_all(&copies)?;
        for c in ["public-read.wasm", "redact.wasm"] {
            let from = wasm_dir.join(c);
            if from.exists() {
                std::fs::copy(&from, copies.join(c))
                    .with_context(|| format!("copying {}", from.display()))?;
            }
        }
        Some(PolicySetup::new(&bins.firehose, &copies).with_context(|| {
            format!(
                "setting up firehose+policies (components from {})",
                wasm_dir.display()
            )
        })?)
    } else {
        None
    };
    let started = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    eprintln!("firehose-bench: {command_line}");

    let mut results = Vec::new();
    let mut run_no = 0;
    let rounds = cli.rounds.max(1);
    let setup = Setup {
        bins: &bins,
        limits: &limits,
        policies: policies.as_ref(),
        params: &params,
    };
    for &scenario in &scenarios {
        if let (Scenario::Source, Some(wasm)) = (scenario, &source_wasm) {
            let others: Vec<&str> = brokers
                .iter()
                .filter(|&&b| b != BrokerKind::Firehose)
                .map(|b| b.name())
                .collect();
            if !others.is_empty() {
                eprintln!(
                    "firehose-bench: the source scenario runs firehose only (not {})",
                    others.join(", ")
                );
            }
            for round in 1..=rounds {
                let r = scenarios::source::run_round(
                    &setup,
                    wasm,
                    &work.path,
                    &mut run_no,
                    (round, rounds),
                )
                .await;
                results.extend(r);
            }
            continue;
        }
        for round in 1..=rounds {
            let mut title = scenario.title(&params);
            if rounds > 1 {
                let _ = write!(title, " (round {round} of {rounds})");
            }
            eprintln!("\n== {title}");
            let mut order = brokers.clone();
            if round % 2 == 0 {
                order.reverse();
            }
            let mut per_broker = Vec::new();
            for &kind in &order {
                run_no += 1;
                let dir = work
                    .path
                    .join(format!("{run_no:02}-{}-{kind}", scenario.name()));
                let r = run_one(scenario, kind, &setup, &dir, run_no).await;
                let r = r.unwrap_or_else(|e| BrokerResult::error(kind, &e));
                eprintln!("  {}", r.summary());
                per_broker.push(r);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            // Tables list the brokers in --brokers order whatever the run order.
            per_broker.sort_by_key(|r| brokers.iter().position(|&b| b == r.broker));
            if order != brokers {
                let names: Vec<&str> = order.iter().map(|b| b.name()).collect();
                title.push_str(&format!(", run in the order {}", names.join(", ")));
            }
            results.push(ScenarioResult {
                scenario: scenario.title(&params),
                title,
                description: scenario.description(&params),
                results: per_broker,
            });
        }
    }

    let finished = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let md = render(
        &cli,
        &command_line,
        &brokers,
        &versions,
        &limits,
        policies.as_ref(),
        &params,
        &results,
        (started, finished),
        fd_limit,
        &skipped,
    );
    println!("{md}");
    if let Some(out) = &cli.out {
        std::fs::write(out, &md).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("report written to {}", out.display());
    }
    Ok(())
}

/// What every run of a scenario against a broker shares.
struct Setup<'a> {
    bins: &'a Binaries,
    limits: &'a Limits,
    /// Set when firehose+policies is measured.
    policies: Option<&'a PolicySetup>,
    params: &'a Params,
}

async fn run_one(
    scenario: Scenario,
    kind: BrokerKind,
    setup: &Setup<'_>,
    dir: &std::path::Path,
    run_no: usize,
) -> Result<BrokerResult> {
    let mut broker =
        RunningBroker::start(kind, setup.bins, setup.limits, setup.policies, "", dir).await?;
    // Only the broker with the ACL component requires publishers to log in.
    let publisher_login = match kind {
        BrokerKind::FirehosePolicies => setup.policies.map(|p| p.login.clone()),
        _ => None,
    };
    let ctx = Ctx {
        broker: kind,
        addr: broker.addr,
        pid: broker.pid(),
        params: setup.params.clone(),
        tag: format!("{}{run_no}", scenario.name()),
        publisher_login,
    };
    let load_before = load_average();
    let r = scenarios::run(scenario, &ctx).await;
    // A broker that died mid-run is the headline, whatever the clients saw.
    broker.check_alive()?;
    broker.stop();
    let mut r = r?;
    // How busy the shared machine was when this run started.
    r.metrics.push(report::Metric::new(
        "load avg (1 min)",
        load_before,
        2,
        report::Better::Info,
    ));
    Ok(r)
}

/// The 1-minute load average of the machine.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|l| l.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or_else(String::new, |kb| {
            format!(", {:.1} GiB RAM", kb as f64 / 1048576.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}){mem}, Linux {}", kernel.trim())
}

#[allow(clippy::too_many_arguments)]
fn render(
    cli: &Cli,
    command_line: &str,
    brokers: &[BrokerKind],
    versions: &[String],
    limits: &Limits,
    policies: Option<&PolicySetup>,
    params: &Params,
    results: &[ScenarioResult],
    (started, finished): (u64, u64),
    fd_limit: u64,
    skipped: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Benchmark results, {}\n", report::utc_time(started));
    let _ = writeln!(out, "Command:\n\n```\n{command_line}\n```\n");
    let _ = writeln!(
        out,
        "- Machine: {}. The load generator runs on the same cores as the broker under test \
         (it is not isolated), each client group on its own thread with a current_thread tokio \
         runtime.",
        machine()
    );
    let _ = writeln!(
        out,
        "- Run took {} s; RLIMIT_NOFILE {fd_limit}.",
        finished - started
    );
    let _ = writeln!(
        out,
        "- Brokers (each scenario on a freshly started broker, one at a time, 127.0.0.1 only):"
    );
    for v in versions {
        let _ = writeln!(out, "  - {v}");
    }
    let _ = writeln!(out, "- Limits given to each broker:");
    for (b, text) in limits.describe() {
        if brokers.contains(&b) {
            let _ = writeln!(out, "  - {b}: {text}");
        }
    }
    if let Some(p) = policies.filter(|_| brokers.contains(&BrokerKind::FirehosePolicies)) {
        let config = p
            .toml()
            .replace(&p.password_hash, "<firehose hash-password output>");
        let _ = writeln!(
            out,
            "- firehose+policies config, appended to firehose's:\n\n```toml\n{}```\n",
            config
        );
    }
    let _ = writeln!(
        out,
        "- Payloads: {} ({}), identical for every broker.",
        params.payload_format.name(),
        match params.payload_format {
            PayloadFormat::Json =>
                "a small JSON object without an `email` field, e.g. \
                 `{\"seq\":\"000000000000001f\",\"sent\":\"000000000000002e\",\"pub\":\"00000000\",\"data\":\"xxx...\"}`: \
                 redact passes it unchanged",
            PayloadFormat::JsonEmail =>
                "the JSON object with its padding in an `email` field: \
                 redact removes it and replaces the message",
            PayloadFormat::Binary =>
                "binary sequence number, timestamp and publisher, then padding",
        }
    );
    let _ = writeln!(
        out,
        "- Clients: MQTT 3.1.1, clean session, keep alive {} s, TCP_NODELAY; publishers to \
         firehose+policies log in as its `bench` user, every other client is anonymous. \
         \"broker CPU us/msg\" = broker utime+stime (/proc/<pid>/stat) over the run / delivered \
         messages. Ratios are firehose / peer (and firehose+policies / firehose, the cost of \
         policies): above 1 is better for \"higher\" rows, below 1 for \"lower\" rows.\n",
        cli.keep_alive
    );
    for note in skipped {
        let _ = writeln!(out, "- Note: {note}.");
    }
    if !skipped.is_empty() {
        out.push('\n');
    }
    for (i, s) in results.iter().enumerate() {
        out.push_str(&s.markdown(i + 1));
        out.push('\n');
    }
    if cli.rounds > 1 {
        out.push_str(&report::policy_cost_summary(results));
        for wasm in [scenarios::source::WASM, scenarios::source::WASM_BATCH] {
            let source = report::variant_summary(results, wasm, scenarios::source::NATIVE);
            if !source.is_empty() {
                let _ = write!(out, "\n{source}");
            }
        }
    }
    out
}
