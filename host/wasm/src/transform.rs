//! Transform policies: components of the world `transform-policy`, which
//! pass, drop or replace each message of the topics they are configured
//! for.
//!
//! A failed call (trap, deadline, out of memory) returns `Err`: the
//! broker applies the chain's `on_error`. Replacement messages come back
//! as they are; checking their topics and sizes is the broker's job.

use std::sync::Arc;

use wasmtime::Store;

use crate::bindings::transform as wit;
use crate::cache::{CacheOutcome, ComponentCache};
use crate::check::{ComponentInfo, World};
use crate::engine::WasmEngine;
use crate::error::{LoadError, PolicyError};
use crate::host_imports::HostState;
use crate::load::{self, PolicySpec};
use crate::pool::{Bindings, Pool, PoolStats};
use crate::types::{Message, Outcome};

/// A loaded transform policy. Cheap to clone; clones share the instances.
#[derive(Clone)]
pub struct TransformPolicy {
    pool: Arc<Pool<TransformInstance>>,
    info: Arc<ComponentInfo>,
    cache: CacheOutcome,
}

impl std::fmt::Debug for TransformPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformPolicy")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

impl TransformPolicy {
    /// Loads, checks and compiles (or takes from `cache`) the component of
    /// `spec`, and creates its first instance.
    pub async fn load(
        engine: &WasmEngine,
        cache: &ComponentCache,
        spec: PolicySpec,
    ) -> Result<Self, LoadError> {
        let loaded = load::load::<TransformInstance, _>(
            engine,
            cache,
            spec,
            World::TransformPolicy,
            wit::TransformPolicyPre::new,
            |_| (),
        )
        .await?;
        Ok(TransformPolicy {
            pool: loaded.pool,
            info: Arc::new(loaded.info),
            cache: loaded.cache,
        })
    }

    /// The name from the broker config.
    pub fn name(&self) -> &str {
        self.pool.name()
    }

    /// What the component is (world, version, imports).
    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    /// Whether the compiled component came from the disk cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// Counters of instances and calls.
    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// What to do with `message`.
    pub async fn apply(&self, message: &Message) -> Result<Outcome, PolicyError> {
        self.apply_owned(message.clone()).await
    }

    /// [`TransformPolicy::apply`] for a message the caller no longer
    /// needs: it is moved into the call instead of copied.
    pub async fn apply_owned(&self, message: Message) -> Result<Outcome, PolicyError> {
        let message = message.into();
        let mut lease = self.pool.lease().await?;
        let (store, instance) = lease.start();
        let result = instance
            .0
            .firehose_bus_transform()
            .call_apply(store, &message)
            .await;
        lease.finish("apply", result).map(Outcome::from)
    }
}

/// One instance of a transform policy.
pub(crate) struct TransformInstance(wit::TransformPolicy);

impl Bindings for TransformInstance {
    type Pre = wit::TransformPolicyPre<HostState>;

    async fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        Ok(TransformInstance(pre.instantiate_async(store).await?))
    }
}
