//! Sources: the `[[source]]` components the broker runs, each in a task
//! of its own under a [`supervisor::Supervisor`], publishing through
//! [`sink::BrokerSink`].
//!
//! - At start every source is loaded (checked, compiled, linked) before
//!   the broker serves: a source that cannot be loaded stops the start,
//!   naming its `[[source]]` entry and file.
//! - On reload (SIGHUP) the new entries are compared with the running
//!   ones by name: a new name is loaded and started, a missing one is
//!   stopped, one whose entry or `.wasm` file changed is loaded anew and,
//!   only if that worked, replaces the old one. A source that fails to
//!   load on reload is logged and left as it was (absent, or the old
//!   version). Subscribers and other sources are untouched.
//! - On shutdown every source is told to stop at once, then given
//!   [`STOP_GRACE`] to return.
//! - A webhook source (one that exports `wasi:http/incoming-handler`) is
//!   mounted at `/hooks/<name>` ([`crate::hooks`]) while it runs: mounted
//!   when it starts, replaced when it is replaced, unmounted before it is
//!   stopped. One without `run` serves only its webhook.

pub mod sink;
pub mod supervisor;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use firehose_wasm::{ComponentCache, Source, SourceSink, WasmEngine};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::{Config, SourceConfig};
use crate::hooks::{Hook, Hooks};
use sink::BrokerSink;
use supervisor::{Backoff, Supervisor};

/// How long sources get to return after they were asked to stop.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// The running sources.
pub struct Sources {
    running: Mutex<BTreeMap<String, Running>>,
    broker: Arc<Broker>,
    engine: WasmEngine,
    cache: ComponentCache,
    max_message_bytes: u32,
    hooks: Arc<Hooks>,
}

struct Running {
    config: SourceConfig,
    file: Option<FileStamp>,
    supervisor: Supervisor,
}

/// What identifies a version of a `.wasm` file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(config: &SourceConfig) -> Option<FileStamp> {
    let meta = std::fs::metadata(&config.path).ok()?;
    Some(FileStamp {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

impl Sources {
    /// Loads and starts every source of `config`, mounting the webhook
    /// sources in `hooks`; fails on the first one that cannot be loaded.
    pub async fn start(
        config: &Config,
        broker: &Arc<Broker>,
        engine: &WasmEngine,
        cache: &ComponentCache,
        hooks: Arc<Hooks>,
    ) -> anyhow::Result<Sources> {
        let sources = Sources {
            running: Mutex::new(BTreeMap::new()),
            broker: broker.clone(),
            engine: engine.clone(),
            cache: cache.clone(),
            max_message_bytes: config.limits.max_packet_size,
            hooks,
        };
        // Load every source before starting any: a start that fails
        // leaves nothing running.
        let mut loaded = Vec::with_capacity(config.sources.len());
        for (i, entry) in config.sources.iter().enumerate() {
            let source = sources
                .load(entry)
                .await
                .with_context(|| format!("config key source[{i}] ({})", entry.name))?;
            loaded.push((entry, source));
        }
        {
            let mut running = sources.running.lock().await;
            for (entry, source) in loaded {
                running.insert(entry.name.clone(), sources.launch(entry, source));
            }
        }
        Ok(sources)
    }

    async fn load(&self, entry: &SourceConfig) -> anyhow::Result<Source> {
        let spec = entry
            .spec(self.max_message_bytes)
            .map_err(|message| anyhow::anyhow!(message))?;
        let source = Source::load(&self.engine, &self.cache, spec).await?;
        if entry.webhook.secret.is_some() && !source.is_webhook() {
            anyhow::bail!(
                "[source.webhook] is set but {} exports no wasi:http/incoming-handler",
                entry.path.display()
            );
        }
        Ok(source)
    }

    /// Starts `source` and, when it is a webhook source, mounts it
    /// (replacing the hook of an older version of the same name).
    fn launch(&self, entry: &SourceConfig, source: Source) -> Running {
        let sink: Arc<dyn SourceSink> = Arc::new(BrokerSink::new(self.broker.clone(), &entry.name));
        let supervisor = Supervisor::start(source.clone(), sink.clone(), Backoff::default());
        if source.is_webhook() {
            let hook = Hook::new(
                source,
                entry.webhook.secret.clone(),
                sink,
                supervisor.stop_receiver(),
            );
            self.hooks.mount(&entry.name, hook);
        } else {
            self.hooks.unmount(&entry.name);
        }
        Running {
            config: entry.clone(),
            file: stamp(entry),
            supervisor,
        }
    }

    /// Applies the `[[source]]` entries of a re-read config.
    pub async fn reload(&self, config: &Config) {
        let mut running = self.running.lock().await;
        let wanted: BTreeMap<&str, &SourceConfig> = config
            .sources
            .iter()
            .map(|s| (s.name.as_str(), s))
            .collect();
        let deadline = Instant::now() + STOP_GRACE;

        let removed: Vec<String> = running
            .keys()
            .filter(|name| !wanted.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(old) = running.remove(&name) {
                self.hooks.unmount(&name);
                old.supervisor.stop(deadline).await;
                info!(source = %name, "reload: source removed");
            }
        }

        let (mut added, mut replaced, mut kept, mut failed) = (0, 0, 0, 0);
        for (name, entry) in wanted {
            let unchanged = running
                .get(name)
                .is_some_and(|r| r.config == *entry && r.file == stamp(entry));
            if unchanged {
                kept += 1;
                continue;
            }
            let source = match self.load(entry).await {
                Ok(source) => source,
                Err(error) => {
                    failed += 1;
                    let kept_old = if running.contains_key(name) {
                        "; the running version stays"
                    } else {
                        "; it is not started"
                    };
                    warn!(
                        source = %name,
                        error = format!("{error:#}"),
                        "reload: source not loaded{kept_old}"
                    );
                    continue;
                }
            };
            if let Some(old) = running.remove(name) {
                old.supervisor.stop(Instant::now() + STOP_GRACE).await;
                replaced += 1;
                info!(source = %name, "reload: source changed; restarted with the new entry");
            } else {
                added += 1;
                info!(source = %name, "reload: source added");
            }
            running.insert(name.to_owned(), self.launch(entry, source));
        }
        info!(
            added,
            replaced,
            kept,
            failed,
            running = running.len(),
            "reload: sources reloaded"
        );
    }

    /// Stops every source: all are told at once, then each gets until
    /// the common grace deadline to return.
    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        if running.is_empty() {
            return;
        }
        for (name, r) in running.iter() {
            self.hooks.unmount(name);
            r.supervisor.signal_stop();
        }
        let deadline = Instant::now() + STOP_GRACE;
        for (_, r) in std::mem::take(&mut *running) {
            r.supervisor.stop(deadline).await;
        }
        info!("sources stopped");
    }
}
