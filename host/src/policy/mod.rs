//! The policy set in force: the authorizer (built-in grants or an `[acl]`
//! component) and the `[[transform]]` chains, loaded together and swapped
//! together.
//!
//! A set is loaded whole or not at all: every component is read, checked,
//! compiled (or taken from the disk cache) and instantiated once before
//! the set is returned, so a bad entry stops a start and, on SIGHUP,
//! leaves the old set in force ([`crate::broker::Running::reload`]).
//! Each set carries a generation number; connections drop the publish
//! decisions they remembered when it changes.

mod chains;
pub mod trial;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use firehose_wasm::{AclPolicy, ComponentCache, PolicySpec, TransformPolicy, WasmEngine};
use tracing::info;

use crate::auth::{Authorizer, ConfigAuthorizer, PolicyAuthorizer};
use crate::config::{ComponentConfig, Config};

pub use chains::{Chain, ChainStats, TransformChains};

/// What loads components: the one engine (and its epoch ticker) and the
/// compile cache, shared by every policy set of a broker's lifetime.
#[derive(Clone)]
pub struct PolicyRuntime {
    pub engine: WasmEngine,
    pub cache: ComponentCache,
}

impl PolicyRuntime {
    /// An engine and the compile cache in `config`'s data directory.
    pub fn new(config: &Config) -> anyhow::Result<PolicyRuntime> {
        Ok(PolicyRuntime {
            engine: WasmEngine::new().context("cannot start the WASM engine")?,
            cache: ComponentCache::new(&config.data_dir()),
        })
    }
}

/// The authorizer and transform chains in force.
pub struct PolicySet {
    pub authorizer: Arc<dyn Authorizer>,
    pub transforms: TransformChains,
    /// Distinguishes this set from the ones before it.
    pub generation: u64,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

impl PolicySet {
    /// A set of built-in grants only, no transforms (tests and tools).
    pub fn builtin(authorizer: Arc<dyn Authorizer>) -> PolicySet {
        PolicySet {
            authorizer,
            transforms: TransformChains::default(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Loads every policy component `config` names. Errors name the config
    /// key and the file.
    pub async fn load(config: &Config, runtime: &PolicyRuntime) -> anyhow::Result<PolicySet> {
        let passwords = Arc::new(ConfigAuthorizer::new(config));
        let authorizer: Arc<dyn Authorizer> = match &config.acl {
            None => passwords,
            Some(acl) => {
                let spec = spec("acl", acl).context("config key [acl]")?;
                let policy = AclPolicy::load(&runtime.engine, &runtime.cache, spec)
                    .await
                    .context("config key [acl]")?;
                info!(
                    component = policy.name(),
                    path = %acl.path.display(),
                    world = %policy.info().world,
                    cache = ?policy.cache_outcome(),
                    "ACL policy loaded; it decides every connect, subscribe and publish"
                );
                Arc::new(PolicyAuthorizer::new(policy, passwords))
            }
        };
        let mut chains = Vec::with_capacity(config.transforms.len());
        for (i, chain) in config.transforms.iter().enumerate() {
            let mut steps = Vec::with_capacity(chain.components.len());
            for (j, component) in chain.components.iter().enumerate() {
                let name = format!("{}[{j}]", chain.name);
                let key = || format!("config key transform[{i}].component[{j}] ({})", chain.name);
                let spec = spec(&name, component).with_context(key)?;
                let policy = TransformPolicy::load(&runtime.engine, &runtime.cache, spec)
                    .await
                    .with_context(key)?;
                steps.push(policy);
            }
            info!(
                chain = %chain.name,
                topics = ?chain.topics,
                on_error = ?chain.on_error,
                components = steps.len(),
                "transform chain loaded"
            );
            chains.push(Chain::new(
                &chain.name,
                chain.topics.clone(),
                chain.on_error,
                steps,
            ));
        }
        Ok(PolicySet {
            authorizer,
            transforms: TransformChains::new(chains),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }
}

/// The runtime's description of one configured component; an error if
/// its file is missing, with the hint that matters for the bundled ones.
fn spec(name: &str, component: &ComponentConfig) -> anyhow::Result<PolicySpec> {
    if !component.path.exists() {
        anyhow::bail!(
            "component {name}: {} does not exist (the bundled components are built by \
             `guests/build` into target/wasm; the embedded default config looks there, \
             or in $FIREHOSE_WASM_DIR)",
            component.path.display()
        );
    }
    Ok(PolicySpec {
        name: name.into(),
        path: component.path.clone(),
        config: component.flattened(),
        limits: component.limits.clone(),
        stdio: component.stdio,
    })
}
