//! The brokers under test: where their binaries are, the config each is
//! given (same limits for all, as far as each broker can express them), and
//! a guard that starts one on a free 127.0.0.1 port and stops it by PID (on
//! drop too, so errors, panics and Ctrl-C never leave a broker behind).
//!
//! `firehose+policies` is the same firehose binary with the same limits plus
//! the default ACL component (public-read, with one publishing user) and one
//! transform chain (redact) on the bench's topics: the cost of policies.

use std::fmt;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::client::{Conn, Credentials, SMALL_READ_BUF};

/// Which broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerKind {
    Firehose,
    /// firehose with the ACL component and a transform chain ([`PolicySetup`]).
    FirehosePolicies,
    Mosquitto,
    Rumqttd,
}

impl BrokerKind {
    pub const ALL: [BrokerKind; 4] = [
        BrokerKind::Firehose,
        BrokerKind::FirehosePolicies,
        BrokerKind::Mosquitto,
        BrokerKind::Rumqttd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Firehose => "firehose",
            BrokerKind::FirehosePolicies => "firehose+policies",
            BrokerKind::Mosquitto => "mosquitto",
            BrokerKind::Rumqttd => "rumqttd",
        }
    }

    /// Whether this kind runs the firehose binary.
    pub fn is_firehose(self) -> bool {
        matches!(self, BrokerKind::Firehose | BrokerKind::FirehosePolicies)
    }

    pub fn parse(s: &str) -> Result<BrokerKind> {
        BrokerKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .with_context(|| {
                format!(
                    "unknown broker {s:?} (expected firehose, firehose+policies, mosquitto or \
                     rumqttd)"
                )
            })
    }
}

/// What `firehose+policies` runs with on top of `firehose`'s config.
#[derive(Clone, Debug)]
pub struct PolicySetup {
    /// The ACL component (public-read).
    pub acl: PathBuf,
    /// The one component of the transform chain (redact).
    pub transform: PathBuf,
    /// The filter the transform chain applies to (covers every bench topic).
    pub transform_topics: String,
    /// The user public-read lets publish (to `#`); bench publishers log in
    /// with it.
    pub login: Credentials,
    /// `login.password` hashed by `firehose hash-password`.
    pub password_hash: String,
}

impl PolicySetup {
    /// The shipped components in `wasm_dir` (where `guests/build` puts
    /// them), and a password hashed by `firehose` itself.
    pub fn new(firehose: &Path, wasm_dir: &Path) -> Result<PolicySetup> {
        let acl = wasm_dir.join("public-read.wasm");
        let transform = wasm_dir.join("redact.wasm");
        for c in [&acl, &transform] {
            if !c.exists() {
                bail!(
                    "{} does not exist: build the policy components with `guests/build` \
                     (firehose+policies needs public-read.wasm and redact.wasm)",
                    c.display()
                );
            }
        }
        let login = Credentials {
            username: "bench".into(),
            password: format!("bench-{}", std::process::id()),
        };
        let password_hash = hash_password(firehose, &login.password)?;
        Ok(PolicySetup {
            acl,
            transform,
            transform_topics: "bench/#".into(),
            login,
            password_hash,
        })
    }

    /// The config sections added to firehose's (also shown in the report).
    pub fn toml(&self) -> String {
        format!(
            r##"[[user]]
name = {user:?}
password_hash = {hash:?}

[acl]
path = {acl:?}

[acl.config]
publishers = {{ {user} = ["#"] }}

[[transform]]
name = "bench"
topics = [{topics:?}]

[[transform.component]]
path = {transform:?}
config = {{ fields = ["email"] }}
"##,
            user = self.login.username,
            hash = self.password_hash,
            acl = self.acl.display().to_string(),
            topics = self.transform_topics,
            transform = self.transform.display().to_string(),
        )
    }
}

/// Runs `firehose hash-password` (one line on stdin, an argon2id PHC string
/// on stdout).
fn hash_password(firehose: &Path, password: &str) -> Result<String> {
    use std::io::Write as _;
    let mut child = Command::new(firehose)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {} hash-password", firehose.display()))?;
    child
        .stdin
        .take()
        .context("hash-password stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !hash.starts_with("$argon2") {
        bail!(
            "{} hash-password failed ({}): {}{}",
            firehose.display(),
            out.status,
            hash,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(hash)
}

impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Limits given to every broker.
#[derive(Clone, Debug)]
pub struct Limits {
    /// QoS 1/2 messages in flight toward one client.
    pub max_inflight: u32,
    /// QoS 1/2 messages queued per client beyond the inflight window.
    pub max_queued: u32,
    /// QoS 0 messages waiting to be written to one client before dropping.
    pub max_queued_qos0: u32,
    pub max_packet_size: u32,
    /// Connections the broker must accept (rumqttd needs it up front).
    pub max_connections: usize,
}

impl Limits {
    /// How each broker's config expresses these limits (for the report).
    pub fn describe(&self) -> Vec<(BrokerKind, String)> {
        let firehose = format!(
            "`[limits]` max_inflight = {i}, receive_maximum = {i}, max_queued_messages = {q}, \
             max_queued_qos0 = {q0}, max_packet_size = {p}, max_keep_alive = 65535; \
             `[anonymous]` publish = subscribe = [\"#\"]; RUST_LOG=warn",
            i = self.max_inflight,
            q = self.max_queued,
            q0 = self.max_queued_qos0,
            p = self.max_packet_size
        );
        vec![
            (BrokerKind::Firehose, firehose.clone()),
            (
                BrokerKind::FirehosePolicies,
                format!(
                    "as firehose, plus `[acl]` public-read.wasm with `[acl.config] publishers = \
                     {{ bench = [\"#\"] }}` and a `[[user]] name = \"bench\"` (argon2id hash from \
                     `firehose hash-password`), which the publishers log in as (subscribers \
                     stay anonymous); one `[[transform]]` chain on `bench/#` with one \
                     component, redact.wasm, `config = {{ fields = [\"email\"] }}`. Base: {firehose}"
                ),
            ),
            (
                BrokerKind::Mosquitto,
                format!(
                    "max_inflight_messages {i}, max_queued_messages {q} (Mosquitto 2.0 applies it to \
                     unsent QoS 0 packets of an online client too), max_packet_size {p}, \
                     max_keepalive 65535, set_tcp_nodelay true, persistence false, sys_interval 0, \
                     allow_anonymous true, log_type error+warning",
                    i = self.max_inflight,
                    q = self.max_queued,
                    p = self.max_packet_size
                ),
            ),
            (
                BrokerKind::Rumqttd,
                format!(
                    "one `[v4.1]` (MQTT 3.1.1) listener; max_payload_size = {p}, \
                     max_inflight_count = 100 (incoming packets batched per read), \
                     next_connection_delay_ms = 0, connection_timeout_ms = 10000; `[router]` \
                     max_connections = {c}, max_outgoing_packet_count = 200, \
                     max_segment_size = 104857600, max_segment_count = 10 (its demo values). \
                     Its outgoing QoS 1 inflight window is a built-in 100 and QoS 0 is read \
                     from a per-topic commit log rather than queued per client, so the \
                     inflight/queue limits above cannot be set; log level warn",
                    p = self.max_packet_size,
                    c = self.max_connections
                ),
            ),
        ]
    }
}

/// Paths of the broker binaries.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub firehose: PathBuf,
    pub mosquitto: PathBuf,
    pub rumqttd: PathBuf,
}

impl Binaries {
    fn get(&self, kind: BrokerKind) -> &Path {
        match kind {
            BrokerKind::Firehose | BrokerKind::FirehosePolicies => &self.firehose,
            BrokerKind::Mosquitto => &self.mosquitto,
            BrokerKind::Rumqttd => &self.rumqttd,
        }
    }

    /// Checks the binary of `kind` exists, installing rumqttd 0.20.0 into
    /// the cache if it is the default path and missing.
    pub fn ensure(&self, kind: BrokerKind, rumqttd_is_default: bool) -> Result<()> {
        let bin = self.get(kind);
        if bin.exists() {
            return Ok(());
        }
        match kind {
            BrokerKind::Rumqttd if rumqttd_is_default => install_rumqttd(bin),
            BrokerKind::Firehose | BrokerKind::FirehosePolicies => bail!(
                "{} does not exist: build it (`cargo build --release -p firehose`), pass \
                 --firehose-bin, or leave it out with --brokers mosquitto,rumqttd",
                bin.display()
            ),
            BrokerKind::Mosquitto => bail!(
                "{} does not exist: `apt-get install -y mosquitto` or pass --mosquitto-bin",
                bin.display()
            ),
            BrokerKind::Rumqttd => bail!("{} does not exist", bin.display()),
        }
    }

    /// A one-line version string for the report.
    pub fn version(&self, kind: BrokerKind) -> String {
        let bin = self.get(kind);
        let out = match kind {
            // `mosquitto -h` prints "mosquitto version X" first (and exits 3).
            BrokerKind::Mosquitto => Command::new(bin).arg("-h").output(),
            BrokerKind::Rumqttd => Command::new(bin).arg("--version").output(),
            BrokerKind::Firehose | BrokerKind::FirehosePolicies => {
                let version = Command::new(bin)
                    .arg("--version")
                    .output()
                    .ok()
                    .and_then(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .next()
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| "firehose".into());
                let built = std::fs::metadata(bin)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| format!(", built {}", crate::report::utc_time(d.as_secs())))
                    .unwrap_or_default();
                let with = if kind == BrokerKind::FirehosePolicies {
                    " with the policies below"
                } else {
                    ""
                };
                return format!("{version}{with} ({}{built})", bin.display());
            }
        };
        out.ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("{kind} (version unknown)"))
    }
}

/// Default install root for rumqttd: $XDG_CACHE_HOME or ~/.cache, then
/// firehose-bench/rumqttd.
pub fn rumqttd_cache_root() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("firehose-bench").join("rumqttd")
}

fn install_rumqttd(bin: &Path) -> Result<()> {
    let root = bin
        .parent()
        .and_then(Path::parent)
        .context("rumqttd path has no install root")?;
    eprintln!(
        "rumqttd not found at {}: installing rumqttd 0.20.0 once with \
         `cargo install --root {} rumqttd --version 0.20.0 --locked` (takes minutes)...",
        bin.display(),
        root.display()
    );
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["install", "--root"])
        .arg(root)
        .args(["rumqttd", "--version", "0.20.0", "--locked"])
        .status()
        .context("running cargo install")?;
    if !status.success() || !bin.exists() {
        bail!("cargo install rumqttd failed ({status})");
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

fn write_config(
    kind: BrokerKind,
    dir: &Path,
    port: u16,
    limits: &Limits,
    policies: Option<&PolicySetup>,
    extra: &str,
) -> Result<PathBuf> {
    let (name, mut text) = match kind {
        BrokerKind::Firehose | BrokerKind::FirehosePolicies => (
            "firehose.toml",
            format!(
                r##"data_dir = {data:?}

[[listener]]
name = "mqtt"
kind = "mqtt"
address = "127.0.0.1:{port}"

[limits]
connect_timeout_secs = 10
max_packet_size = {p}
receive_maximum = {i}
max_inflight = {i}
max_queued_messages = {q}
max_queued_qos0 = {q0}
max_keep_alive = 65535

[anonymous]
connect = true
subscribe = ["#"]
publish = ["#"]
"##,
                data = dir.join("data").display().to_string(),
                p = limits.max_packet_size,
                i = limits.max_inflight,
                q = limits.max_queued,
                q0 = limits.max_queued_qos0,
            ),
        ),
        BrokerKind::Mosquitto => {
            // Started as root, Mosquitto drops to user `mosquitto` unless told otherwise.
            // SAFETY: geteuid has no preconditions.
            let user = if unsafe { libc::geteuid() } == 0 {
                "user root\n"
            } else {
                ""
            };
            (
                "mosquitto.conf",
                format!(
                    "listener {port} 127.0.0.1\n\
                     allow_anonymous true\n\
                     {user}\
                     persistence false\n\
                     sys_interval 0\n\
                     max_inflight_messages {i}\n\
                     max_queued_messages {q}\n\
                     max_packet_size {p}\n\
                     max_keepalive 65535\n\
                     set_tcp_nodelay true\n\
                     log_dest stderr\n\
                     log_type error\n\
                     log_type warning\n\
                     connection_messages false\n",
                    i = limits.max_inflight,
                    q = limits.max_queued,
                    p = limits.max_packet_size,
                ),
            )
        }
        BrokerKind::Rumqttd => (
            "rumqttd.toml",
            format!(
                r#"id = 0

[router]
id = 0
max_connections = {c}
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 10000
    max_payload_size = {p}
    max_inflight_count = 100
    dynamic_filters = true
"#,
                c = limits.max_connections,
                p = limits.max_packet_size,
            ),
        ),
    };
    if kind == BrokerKind::FirehosePolicies {
        let policies = policies.context("firehose+policies needs its policy setup")?;
        text.push('\n');
        text.push_str(&policies.toml());
    }
    if !extra.is_empty() {
        text.push('\n');
        text.push_str(extra);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A running broker; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct RunningBroker {
    pub kind: BrokerKind,
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl RunningBroker {
    /// Starts `kind` with a generated config in `dir` and waits until it
    /// answers an MQTT CONNECT. `policies` is required for
    /// `firehose+policies` and ignored otherwise; `extra` is appended to
    /// the config as it is (the source scenario's `[[source]]`).
    pub async fn start(
        kind: BrokerKind,
        bins: &Binaries,
        limits: &Limits,
        policies: Option<&PolicySetup>,
        extra: &str,
        dir: &Path,
    ) -> Result<RunningBroker> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let config = write_config(kind, dir, port, limits, policies, extra)?;
        let log = dir.join(format!("{kind}.log"));
        let out = File::create(&log)?;
        let mut cmd = Command::new(bins.get(kind));
        match kind {
            BrokerKind::Firehose | BrokerKind::FirehosePolicies => {
                cmd.arg("serve")
                    .arg("--config")
                    .arg(&config)
                    .env("RUST_LOG", "warn");
            }
            BrokerKind::Mosquitto => {
                cmd.arg("-c").arg(&config);
            }
            BrokerKind::Rumqttd => {
                cmd.arg("-q").arg("-c").arg(&config);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .current_dir(dir)
            // Own process group: a terminal Ctrl-C reaches the bench, which stops the broker.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to
        // SIGTERM the broker if the bench dies without stopping it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bins.get(kind).display()))?;
        let mut broker = RunningBroker {
            kind,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            log,
        };
        broker.wait_ready().await?;
        Ok(broker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.check_alive()?;
            if let Ok(Ok(conn)) = tokio::time::timeout(
                Duration::from_secs(2),
                Conn::connect(self.addr, None, "bench-probe", None, 600, SMALL_READ_BUF),
            )
            .await
            {
                conn.disconnect().await;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not accept an MQTT connection on {} within 20 s; log:\n{}",
                    self.kind,
                    self.addr,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Errors (with the log's tail) if the broker process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); log:\n{}", self.kind, self.log_tail());
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the broker: SIGTERM, up to 3 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: signalling our own child by its PID, which we have not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
