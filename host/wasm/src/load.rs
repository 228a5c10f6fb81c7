//! Loading a policy: read the file, check it, compile it (or take it from
//! the cache), link it, and start its first instance. Every error names
//! the component and the file; a component that fails any step is never
//! used.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::{Component, InstancePre};

use crate::cache::{CacheOutcome, ComponentCache};
use crate::check::{self, CheckError, ComponentInfo, World};
use crate::engine::WasmEngine;
use crate::error::LoadError;
use crate::host_imports::{self, HostState};
use crate::limits::Limits;
use crate::pool::{Bindings, Pool, Settings};
use crate::wasi_ctx::StdioMode;

/// One policy entry of the broker config.
#[derive(Debug, Clone)]
pub struct PolicySpec {
    /// The entry's name: in every log line and error about it.
    pub name: String,
    /// The `.wasm` file.
    pub path: PathBuf,
    /// Its config table, flattened to strings (see `wit/config.wit`).
    pub config: BTreeMap<String, String>,
    pub limits: Limits,
    pub stdio: StdioMode,
}

impl PolicySpec {
    /// A spec with default limits, no config and stdio discarded.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        PolicySpec {
            name: name.into(),
            path: path.into(),
            config: BTreeMap::new(),
            limits: Limits::default(),
            stdio: StdioMode::default(),
        }
    }

    /// Adds a config entry.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// A loaded policy before its world-specific wrapper.
pub(crate) struct Loaded<B: Bindings, R> {
    pub pool: Arc<Pool<B>>,
    /// What `inspect` read from the first instance.
    pub first: R,
    pub info: ComponentInfo,
    pub cache: CacheOutcome,
}

/// Loads `spec` as a component of `world`. Compiling runs on a blocking
/// thread; the first instance is created (and read by `inspect`) before
/// this returns.
pub(crate) async fn load<B: Bindings, R>(
    engine: &WasmEngine,
    cache: &ComponentCache,
    spec: PolicySpec,
    world: World,
    make_pre: fn(InstancePre<HostState>) -> wasmtime::Result<B::Pre>,
    inspect: impl FnOnce(&B) -> R,
) -> Result<Loaded<B, R>, LoadError> {
    let PolicySpec {
        name,
        path,
        config,
        limits,
        stdio,
    } = spec;
    if let Err(message) = limits.validate() {
        return Err(LoadError::Limits {
            name,
            path,
            message,
        });
    }

    let (component, cache_outcome, info) = match compile_checked(engine, cache, &path, world).await
    {
        Ok(compiled) => compiled,
        Err(failure) => return Err(failure.into_error(name, path)),
    };

    let link_error = |e: wasmtime::Error| format!("{e:#}");
    let pre = host_imports::policy_linker(engine.engine())
        .and_then(|linker| linker.instantiate_pre(&component))
        .and_then(make_pre);
    let pre = match pre {
        Ok(pre) => pre,
        Err(e) => {
            return Err(LoadError::Link {
                name,
                path,
                message: link_error(e),
            });
        }
    };

    let pool = Arc::new(Pool::new(
        engine.clone(),
        pre,
        Settings {
            name: Arc::from(name.as_str()),
            config: Arc::new(config),
            limits,
            stdio,
        },
    ));
    let first = match pool.warm_up(inspect).await {
        Ok(first) => first,
        Err(source) => return Err(LoadError::Instantiate { name, path, source }),
    };
    tracing::info!(
        component = %name,
        path = %path.display(),
        world = %info.world,
        bus_version = %info.bus_version,
        cache = ?cache_outcome,
        "component loaded"
    );
    Ok(Loaded {
        pool,
        first,
        info,
        cache: cache_outcome,
    })
}

/// Why a component file could not be compiled as the world it must be.
pub(crate) enum Failure {
    Read(std::io::Error),
    Check(CheckError),
    WrongWorld { found: World, expected: World },
}

impl Failure {
    /// The load error for the config entry `name` and its file.
    pub(crate) fn into_error(self, name: String, path: std::path::PathBuf) -> LoadError {
        match self {
            Failure::Read(source) => LoadError::Read { name, path, source },
            Failure::Check(source) => LoadError::Check { name, path, source },
            Failure::WrongWorld { found, expected } => LoadError::WrongWorld {
                name,
                path,
                found,
                expected,
            },
        }
    }
}

/// Reads, checks and compiles (or takes from `cache`) the component at
/// `path`, on a blocking thread, and makes sure it is a component of
/// `world`. Shared by policies and sources.
pub(crate) async fn compile_checked(
    engine: &WasmEngine,
    cache: &ComponentCache,
    path: &std::path::Path,
    world: World,
) -> Result<(Component, CacheOutcome, ComponentInfo), Failure> {
    let compiled = {
        let (engine, cache, path) = (engine.clone(), cache.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || compile(&engine, &cache, &path)).await
    };
    let compiled = match compiled {
        Ok(result) => result?,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => {
            return Err(Failure::Read(std::io::Error::other(
                "loading cancelled: the runtime is shutting down",
            )));
        }
    };
    if compiled.2.world != world {
        return Err(Failure::WrongWorld {
            found: compiled.2.world,
            expected: world,
        });
    }
    Ok(compiled)
}

fn compile(
    engine: &WasmEngine,
    cache: &ComponentCache,
    path: &std::path::Path,
) -> Result<(Component, CacheOutcome, ComponentInfo), Failure> {
    let bytes = std::fs::read(path).map_err(Failure::Read)?;
    check::sniff(&bytes).map_err(Failure::Check)?;
    let (component, outcome) = cache
        .load(engine, &bytes)
        .map_err(|e| Failure::Check(CheckError::Invalid(format!("{e:#}"))))?;
    let info = check::inspect(engine, &component).map_err(Failure::Check)?;
    Ok((component, outcome, info))
}
