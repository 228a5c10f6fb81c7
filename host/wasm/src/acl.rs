//! ACL policies: components of the world `acl-policy`, asked whether a
//! client may connect, subscribe and publish.
//!
//! A failed call (trap, deadline, out of memory) returns `Err`: the
//! broker must deny (fail closed). The policy's `cache-hints`, read from
//! its first instance at load, tell the broker which answers it may keep.

use std::sync::Arc;

use wasmtime::Store;

use crate::bindings::acl as wit;
use crate::cache::{CacheOutcome, ComponentCache};
use crate::check::{ComponentInfo, World};
use crate::engine::WasmEngine;
use crate::error::{LoadError, PolicyError};
use crate::host_imports::HostState;
use crate::load::{self, PolicySpec};
use crate::pool::{Bindings, Pool, PoolStats};
use crate::types::{CacheHints, Client, Decision, Message};

/// A loaded ACL policy. Cheap to clone; clones share the instances.
#[derive(Clone)]
pub struct AclPolicy {
    pool: Arc<Pool<AclInstance>>,
    info: Arc<ComponentInfo>,
    cache: CacheOutcome,
    hints: CacheHints,
}

impl std::fmt::Debug for AclPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclPolicy")
            .field("name", &self.name())
            .field("hints", &self.hints)
            .finish_non_exhaustive()
    }
}

impl AclPolicy {
    /// Loads, checks and compiles (or takes from `cache`) the component of
    /// `spec`, and creates its first instance.
    pub async fn load(
        engine: &WasmEngine,
        cache: &ComponentCache,
        spec: PolicySpec,
    ) -> Result<Self, LoadError> {
        let loaded = load::load::<AclInstance, _>(
            engine,
            cache,
            spec,
            World::AclPolicy,
            wit::AclPolicyPre::new,
            |instance| instance.hints,
        )
        .await?;
        Ok(AclPolicy {
            pool: loaded.pool,
            info: Arc::new(loaded.info),
            cache: loaded.cache,
            hints: loaded.first,
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

    /// Which answers the broker may remember.
    pub fn cache_hints(&self) -> CacheHints {
        self.hints
    }

    /// Counters of instances and calls.
    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// May `client` connect?
    pub async fn check_connect(&self, client: &Client) -> Result<Decision, PolicyError> {
        let client = client.into();
        let mut lease = self.pool.lease().await?;
        let (store, instance) = lease.start();
        let result = instance
            .bindings
            .firehose_bus_acl()
            .call_check_connect(store, &client)
            .await;
        lease.finish("check-connect", result).map(Decision::from)
    }

    /// May `client` subscribe to `filter`?
    pub async fn check_subscribe(
        &self,
        client: &Client,
        filter: &str,
    ) -> Result<Decision, PolicyError> {
        let client = client.into();
        let mut lease = self.pool.lease().await?;
        let (store, instance) = lease.start();
        let result = instance
            .bindings
            .firehose_bus_acl()
            .call_check_subscribe(store, &client, filter)
            .await;
        lease.finish("check-subscribe", result).map(Decision::from)
    }

    /// May `client` publish `message`?
    pub async fn check_publish(
        &self,
        client: &Client,
        message: &Message,
    ) -> Result<Decision, PolicyError> {
        let (client, message) = (client.into(), message.into());
        let mut lease = self.pool.lease().await?;
        let (store, instance) = lease.start();
        let result = instance
            .bindings
            .firehose_bus_acl()
            .call_check_publish(store, &client, &message)
            .await;
        lease.finish("check-publish", result).map(Decision::from)
    }

    /// Creates a fresh instance and drops it: the cost that reusing
    /// instances saves on every call (for measurements).
    pub async fn instantiate_once(&self) -> Result<(), PolicyError> {
        self.pool.instantiate().await.map(drop)
    }
}

/// One instance of an ACL policy and its cache hints.
pub(crate) struct AclInstance {
    bindings: wit::AclPolicy,
    hints: CacheHints,
}

impl Bindings for AclInstance {
    type Pre = wit::AclPolicyPre<HostState>;

    async fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        let bindings = pre.instantiate_async(&mut *store).await?;
        let hints = bindings
            .firehose_bus_acl()
            .call_cache_hints(&mut *store)
            .await?;
        Ok(AclInstance {
            bindings,
            hints: hints.into(),
        })
    }
}
