//! Sources: components of the world `source`, long-running publishers.
//!
//! A [`Source`] is loaded once (read, checked, compiled or taken from the
//! cache, linked) and then [run](Source::run) as often as the broker's
//! supervisor wants: each run is a fresh store and instance, with:
//!
//! - its memory cap (`StoreLimits`; growing past it traps);
//! - an epoch deadline that *yields*: every [`YIELD_TICKS`] epoch ticks
//!   (about 10 ms of uninterrupted guest code) the guest's future returns
//!   `Pending` for a moment, so a busy source never holds a tokio worker;
//!   blocking WASI calls (sleep, socket reads) suspend it as usual;
//! - the WASI context of [`net`]: nothing but clocks and random, plus the
//!   TCP its [`grants`] name;
//! - the `publish` import of [`publish`] (`publish` and, since 0.1.1,
//!   `publish-batch`), which checks each message and hands it to the
//!   broker through a [`SourceSink`].
//!
//! A run ends when `run` returns, traps, exits or runs out of memory; the
//! result says which ([`RunError`]). Restarting, backoff and stopping are
//! the supervisor's job (in the broker): this module runs one run and
//! reports, and must not decide what happens next.
//!
//! A source may export `run`, `wasi:http/incoming-handler@0.2.x` (a
//! *webhook source*, see [`webhook`]), or both; [`Source::handle_http`]
//! serves one HTTP request in a fresh store and instance of its own.

mod budget;
pub mod grants;
mod http_client;
mod net;
pub mod publish;
mod state;
pub mod webhook;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Semaphore, watch};
use wasmtime::component::{HasSelf, InstancePre, Linker};
use wasmtime::{Store, Trap};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::bindings::source as wit;
use crate::cache::{CacheOutcome, ComponentCache};
use crate::check::{ComponentInfo, World};
use crate::engine::WasmEngine;
use crate::error::LoadError;
use crate::limits::Limits;
use crate::load;
use crate::types::Message;
use crate::wasi_ctx::StdioMode;

pub use grants::{GrantError, HttpGrant, TcpGrant};
pub use http_client::read_ca_file;
pub use publish::TopicPrefix;
pub(crate) use state::SourceState;
pub use webhook::{WebhookError, WebhookRequest, WebhookResponse};

/// Epoch ticks a source runs before it yields to the async runtime.
pub const YIELD_TICKS: u64 = 10;

/// The default memory cap of a source, in MiB.
pub const DEFAULT_MEMORY_MIB: u32 = 64;

/// Where a source's accepted messages go: the broker, or a test's
/// collector. `publish` resolves once the message is taken; a sink that
/// awaits (backpressure) makes the guest's `publish` wait.
pub trait SourceSink: Send + Sync + 'static {
    fn publish<'a>(
        &'a self,
        source: &'a str,
        message: Message,
    ) -> Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

    /// Takes `message` now if that needs no waiting, else gives it back
    /// for [`SourceSink::publish`]. The default always gives it back.
    fn try_publish(&self, source: &str, message: Message) -> Result<(), Message> {
        let _ = source;
        Err(message)
    }

    /// Takes `messages` in order, awaiting like [`SourceSink::publish`],
    /// and counts in `taken` each message once it is taken, so that a
    /// caller that stops waiting knows how many were. A sink that routes
    /// the lot together (the broker's) wakes each subscriber once for
    /// it. The default takes them one by one with `publish`.
    fn publish_batch<'a>(
        &'a self,
        source: &'a str,
        messages: Vec<Message>,
        taken: &'a mut usize,
    ) -> Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>> {
        Box::pin(async move {
            for message in messages {
                self.publish(source, message).await?;
                *taken += 1;
            }
            Ok(())
        })
    }
}

/// Why a sink did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    #[error("the broker is shutting down")]
    ShuttingDown,
}

/// One `[[source]]` entry of the broker config, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// The entry's name: in every log line and error about it.
    pub name: String,
    /// The `.wasm` file.
    pub path: PathBuf,
    /// Its config table, flattened to strings (see `wit/config.wit`).
    pub config: BTreeMap<String, String>,
    /// The subtree it may publish in.
    pub prefix: TopicPrefix,
    /// The `host:port` patterns it may connect to.
    pub tcp: Vec<TcpGrant>,
    /// The URL patterns it may send HTTP requests to.
    pub http: Vec<HttpGrant>,
    /// CA certificates its `https` requests trust besides the Mozilla roots.
    pub http_ca: Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>,
    /// Where its stdout and stderr go (discarded unless granted).
    pub stdio: StdioMode,
    /// Its memory cap.
    pub memory_mib: u32,
    /// The largest message it may publish (topic, payload and
    /// properties), in bytes.
    pub max_message_bytes: u32,
    /// How long one webhook request may take (see [`webhook`]).
    pub webhook_deadline: std::time::Duration,
}

impl SourceSpec {
    /// A spec with no grants, stdio discarded, the default memory cap and
    /// a 1 MiB message limit.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>, prefix: TopicPrefix) -> Self {
        SourceSpec {
            name: name.into(),
            path: path.into(),
            config: BTreeMap::new(),
            prefix,
            tcp: Vec::new(),
            http: Vec::new(),
            http_ca: Vec::new(),
            stdio: StdioMode::Discard,
            memory_mib: DEFAULT_MEMORY_MIB,
            max_message_bytes: 1 << 20,
            webhook_deadline: webhook::DEFAULT_WEBHOOK_DEADLINE,
        }
    }

    /// Adds a config entry.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    fn limits(&self) -> Limits {
        Limits {
            memory_mib: self.memory_mib,
            ..Limits::POLICY
        }
    }
}

/// How a run ended, other than being asked to stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("source {name}: run returned an error: {message}")]
    Failed { name: String, message: String },
    #[error("source {name}: trapped: {message}")]
    Trap { name: String, message: String },
    #[error("source {name}: ran out of memory (cap {memory_mib} MiB)")]
    OutOfMemory { name: String, memory_mib: u32 },
    #[error("source {name}: exited with status {code}")]
    Exited { name: String, code: i32 },
    #[error("source {name}: cannot create an instance: {message}")]
    Instantiate { name: String, message: String },
    #[error("source {name}: exports no run (a webhook source serves only HTTP requests)")]
    NoRun { name: String },
}

/// Publish counters of a source, over all its runs.
#[derive(Debug, Default)]
pub struct SourceStats {
    published: AtomicU64,
    rejected: AtomicU64,
}

/// A snapshot of [`SourceStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishCounts {
    /// Messages the sink took.
    pub published: u64,
    /// Messages refused by the host's checks (prefix, topic, size).
    pub rejected: u64,
}

impl SourceStats {
    pub fn counts(&self) -> PublishCounts {
        PublishCounts {
            published: self.published.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// A loaded source. Cheap to clone; clones share the compiled component
/// and the counters.
#[derive(Clone)]
pub struct Source {
    inner: Arc<Inner>,
}

struct Inner {
    engine: WasmEngine,
    /// Its `run` export, when it has one.
    run: Option<wit::SourcePre<SourceState>>,
    /// Its `wasi:http/incoming-handler` export, when it has one.
    http: Option<ProxyPre<SourceState>>,
    /// Bounds the webhook requests running at once.
    http_slots: Arc<Semaphore>,
    spec: SourceSpec,
    name: Arc<str>,
    config: Arc<BTreeMap<String, String>>,
    info: ComponentInfo,
    cache: CacheOutcome,
    stats: Arc<SourceStats>,
    /// TLS settings of its `https` requests (when it has HTTP grants).
    http_tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name())
            .field("prefix", &self.inner.spec.prefix)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Reads, checks, compiles (or takes from `cache`) and links the
    /// component of `spec`. Runs none of its code.
    pub async fn load(
        engine: &WasmEngine,
        cache: &ComponentCache,
        spec: SourceSpec,
    ) -> Result<Self, LoadError> {
        let name = spec.name.clone();
        let path = spec.path.clone();
        if let Err(message) = spec.limits().validate() {
            return Err(LoadError::Limits {
                name,
                path,
                message,
            });
        }
        let (component, cache_outcome, info) =
            match load::compile_checked(engine, cache, &path, World::Source).await {
                Ok(compiled) => compiled,
                Err(failure) => return Err(failure.into_error(name, path)),
            };
        let pre = linker(engine.engine())
            .and_then(|linker| linker.instantiate_pre(&component))
            .and_then(EntryPoints::new);
        let entry = match pre {
            Ok(entry) => entry,
            Err(e) => {
                return Err(LoadError::Link {
                    name,
                    path,
                    message: format!("{e:#}"),
                });
            }
        };
        tracing::info!(
            target: "firehose_wasm::source",
            source = %name,
            path = %path.display(),
            bus_version = %info.bus_version,
            prefix = %spec.prefix,
            tcp_grants = spec.tcp.len(),
            http_grants = spec.http.len(),
            run = entry.run.is_some(),
            webhook = entry.http.is_some(),
            cache = ?cache_outcome,
            "source loaded"
        );
        Ok(Source {
            inner: Arc::new(Inner {
                engine: engine.clone(),
                run: entry.run,
                http: entry.http,
                http_slots: Arc::new(Semaphore::new(webhook::MAX_CONCURRENT_REQUESTS)),
                http_tls: (!spec.http.is_empty()).then(|| http_client::tls_config(&spec.http_ca)),
                name: Arc::from(name.as_str()),
                config: Arc::new(spec.config.clone()),
                spec,
                info,
                cache: cache_outcome,
                stats: Arc::new(SourceStats::default()),
            }),
        })
    }

    /// The name from the broker config.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The spec it was loaded from.
    pub fn spec(&self) -> &SourceSpec {
        &self.inner.spec
    }

    /// What the component is (world, version, imports).
    pub fn info(&self) -> &ComponentInfo {
        &self.inner.info
    }

    /// Whether the compiled component came from the disk cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.inner.cache
    }

    /// Publish counters over all runs and webhook requests.
    pub fn counts(&self) -> PublishCounts {
        self.inner.stats.counts()
    }

    /// Whether it exports `run` (a long-running publisher).
    pub fn has_run(&self) -> bool {
        self.inner.run.is_some()
    }

    /// Whether it exports `wasi:http/incoming-handler` (a webhook source).
    pub fn is_webhook(&self) -> bool {
        self.inner.http.is_some()
    }

    /// A fresh store for one run or one request of this source.
    fn store(&self, sink: Arc<dyn SourceSink>, stop: watch::Receiver<bool>) -> Store<SourceState> {
        let inner = &*self.inner;
        let spec = &inner.spec;
        let name = inner.name.clone();
        let net = net::NetPolicy::new(
            name.clone(),
            spec.tcp.clone(),
            spec.http.clone(),
            inner.http_tls.clone(),
        );
        let wasi = net::source_ctx(&name, &net, spec.stdio);
        let publisher = publish::Publisher {
            prefix: spec.prefix.clone(),
            max_message_bytes: spec.max_message_bytes,
            sink,
            stop,
            stats: inner.stats.clone(),
        };
        let state = SourceState::new(
            name,
            inner.config.clone(),
            wasi,
            spec.limits().store_limits(),
            net,
            publisher,
        );
        let mut store = Store::new(inner.engine.engine(), state);
        store.limiter(|state| &mut state.limits);
        store.set_hostcall_fuel(spec.limits().hostcall_fuel());
        store.set_epoch_deadline(YIELD_TICKS);
        store.epoch_deadline_async_yield_and_update(YIELD_TICKS);
        store
    }

    /// Serves one HTTP request with the component's
    /// `wasi:http/incoming-handler`, in a fresh store and instance (see
    /// [`webhook`] for the limits). What it publishes goes through the
    /// same checks, counters and `sink` as `run`'s; `stop` makes its
    /// `publish` answer `shutting-down`, as for `run`.
    pub async fn handle_http(
        &self,
        sink: Arc<dyn SourceSink>,
        stop: watch::Receiver<bool>,
        request: WebhookRequest,
    ) -> Result<WebhookResponse, WebhookError> {
        let name = self.name().to_owned();
        let Some(pre) = self.inner.http.clone() else {
            return Err(WebhookError::NotAWebhook { name });
        };
        let deadline_ms = self.inner.spec.webhook_deadline.as_millis() as u64;
        let deadline = std::time::Instant::now() + self.inner.spec.webhook_deadline;
        let _slot = match tokio::time::timeout(
            webhook::left(deadline),
            self.inner.http_slots.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) | Err(_) => return Err(WebhookError::Busy { name, deadline_ms }),
        };
        let secure = request.secure;
        let request =
            webhook::hyper_request(request).map_err(|message| WebhookError::BadRequest {
                name: name.clone(),
                message,
            })?;
        let mut store = self.store(sink, stop);
        let (req, out, response) = webhook::prepare(&mut store, request, secure).map_err(|e| {
            WebhookError::BadRequest {
                name: name.clone(),
                message: format!("{e:#}"),
            }
        })?;
        // The call runs on a task of its own while this one reads the
        // response body it streams; dropping the guard drops its store.
        let mut call = webhook::AbortOnDrop(tokio::spawn(async move {
            let proxy = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| (true, e))?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
                .map_err(|e| (false, e))
        }));
        let within = tokio::time::timeout(webhook::left(deadline), async {
            match response.await {
                Ok(Ok(response)) => webhook::read_response(&name, response).await,
                Ok(Err(code)) => Err(WebhookError::Failed {
                    name: name.clone(),
                    message: format!("{code:?}"),
                }),
                // The handler returned (or trapped) without answering.
                Err(_) => Err(self.call_failure((&mut call.0).await)),
            }
        })
        .await;
        let result = match within {
            Ok(result) => result,
            Err(_) => return Err(WebhookError::Timeout { name, deadline_ms }),
        };
        if result.is_ok() && !call.0.is_finished() {
            // Answered, but still running: it gets the rest of the
            // deadline, then its store is dropped.
            let rest = webhook::left(deadline);
            match tokio::time::timeout(rest, &mut call.0).await {
                Ok(Ok(Err((_, e)))) => tracing::warn!(
                    target: "firehose_wasm::source",
                    source = %name,
                    error = %self.classify(e),
                    "the webhook handler failed after it answered"
                ),
                Ok(_) => {}
                Err(_) => tracing::warn!(
                    target: "firehose_wasm::source",
                    source = %name,
                    deadline_ms,
                    "the webhook handler was still running at the deadline after it answered; stopped"
                ),
            }
        }
        result
    }

    /// Why a handler call ended without a response.
    fn call_failure(
        &self,
        joined: Result<Result<(), (bool, wasmtime::Error)>, tokio::task::JoinError>,
    ) -> WebhookError {
        let name = self.name().to_owned();
        match joined {
            Ok(Ok(())) => WebhookError::NoResponse { name },
            Ok(Err((instantiating, e))) => match self.classify(e) {
                RunError::OutOfMemory { memory_mib, .. } => {
                    WebhookError::OutOfMemory { name, memory_mib }
                }
                RunError::Exited { code, .. } => WebhookError::Trap {
                    name,
                    message: format!("exited with status {code}"),
                },
                RunError::Trap { message, .. } if instantiating => {
                    WebhookError::Instantiate { name, message }
                }
                other => WebhookError::Trap {
                    name,
                    message: other.to_string(),
                },
            },
            Err(e) => WebhookError::Trap {
                name,
                message: format!("the handler task ended: {e}"),
            },
        }
    }

    /// Runs the source once, in a fresh store: instantiates it and calls
    /// its `run`. Returns `Ok` when `run` returned `ok` (it should do so
    /// only after `publish` said `shutting-down`, which it does once
    /// `stop` is `true`). Drop the future to stop a source that does not
    /// return.
    pub async fn run(
        &self,
        sink: Arc<dyn SourceSink>,
        stop: watch::Receiver<bool>,
    ) -> Result<(), RunError> {
        let Some(pre) = &self.inner.run else {
            return Err(RunError::NoRun {
                name: self.name().to_owned(),
            });
        };
        let mut store = self.store(sink, stop);
        let bindings = match pre.instantiate_async(&mut store).await {
            Ok(bindings) => bindings,
            Err(e) => {
                return Err(match self.classify(e) {
                    RunError::Trap { name, message } => RunError::Instantiate { name, message },
                    other => other,
                });
            }
        };
        match bindings.firehose_bus_run().call_run(&mut store).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(RunError::Failed {
                name: self.name().to_owned(),
                message,
            }),
            Err(e) => Err(self.classify(e)),
        }
    }

    fn classify(&self, error: wasmtime::Error) -> RunError {
        let name = self.name().to_owned();
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return RunError::Exited { name, code: exit.0 };
        }
        if error.chain().any(|cause| {
            cause
                .to_string()
                .contains("forcing trap when growing memory")
        }) {
            return RunError::OutOfMemory {
                name,
                memory_mib: self.inner.spec.memory_mib,
            };
        }
        let message = match error.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => error.root_cause().to_string(),
        };
        RunError::Trap { name, message }
    }
}

/// A linker with everything a source may import: WASI 0.2 (with the
/// network gate of [`net`]), `wasi:http` (types for the incoming handler;
/// outgoing requests refused, see [`webhook`]), `config`, `log` and
/// `publish`.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<SourceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    net::add_gates(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wit::Source::add_to_linker::<SourceState, HasSelf<SourceState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// The exports of a linked source: `run`, the HTTP handler, or both.
pub(crate) struct EntryPoints {
    pub(crate) run: Option<wit::SourcePre<SourceState>>,
    pub(crate) http: Option<ProxyPre<SourceState>>,
}

impl EntryPoints {
    /// Finds the entry points of `pre`; fails when it has neither.
    pub(crate) fn new(pre: InstancePre<SourceState>) -> wasmtime::Result<Self> {
        let run = wit::SourcePre::new(pre.clone());
        let http = ProxyPre::new(pre);
        match (run, http) {
            (Err(run), Err(http)) => Err(run.context(format!(
                "a source exports firehose:bus/run or wasi:http/incoming-handler;                  as a webhook source: {http:#}"
            ))),
            (run, http) => Ok(EntryPoints {
                run: run.ok(),
                http: http.ok(),
            }),
        }
    }
}
