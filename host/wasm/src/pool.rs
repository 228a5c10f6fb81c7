//! The instances of one component, and the life of a call.
//!
//! A pool holds up to `limits.instances` instances, each a `Store` of its
//! own with its memory cap, created lazily from the component's
//! `InstancePre` (imports resolved and exports looked up once, at load).
//! A call leases an instance: it takes the first free slot (or waits for
//! one), takes the instance out of it, sets the epoch deadline, and calls.
//! The instance goes back into its slot only when the call succeeded. A
//! trap, a missed deadline or running out of memory drops it (logged with
//! the component's name), and so does a call whose future is dropped
//! half-way (an instance interrupted mid-call is in an unknown state). An
//! empty slot creates a fresh instance for its next call.
//!
//! This module must not interpret what a component answered.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};
use wasmtime::{Store, Trap};

use crate::engine::WasmEngine;
use crate::error::PolicyError;
use crate::host_imports::HostState;
use crate::limits::Limits;
use crate::wasi_ctx::StdioMode;

/// The least time instantiation (with the world's per-instance setup)
/// gets; it is otherwise ten times the call deadline, because it includes
/// host-side work (creating the store, initializing memory) that a call
/// does not.
const MIN_INSTANTIATE_DEADLINE: Duration = Duration::from_millis(50);

/// Generated bindings of one world, as the pool creates them.
pub(crate) trait Bindings: Send + Sized + 'static {
    /// The world's `*Pre` (an `InstancePre` plus export indices).
    type Pre: Send + Sync + 'static;

    /// Instantiates, then runs the world's per-instance setup (an ACL
    /// policy's `cache-hints`), under the store's deadline.
    fn instantiate(
        pre: &Self::Pre,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send;
}

/// Counters of a pool, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Instances created (the first at load, then one after each discard).
    pub instantiated: u64,
    /// Instances dropped after a failed or abandoned call.
    pub discarded: u64,
    /// Calls that returned an answer.
    pub calls: u64,
    /// Calls that failed (trap, deadline, out of memory, instantiation).
    pub failures: u64,
}

/// Who a pool's instances are and what they may use.
pub(crate) struct Settings {
    pub name: Arc<str>,
    pub config: Arc<BTreeMap<String, String>>,
    pub limits: Limits,
    pub stdio: StdioMode,
}

pub(crate) struct Instance<B> {
    store: Store<HostState>,
    bindings: B,
}

pub(crate) struct Pool<B: Bindings> {
    engine: WasmEngine,
    pre: B::Pre,
    settings: Settings,
    deadline_ticks: u64,
    instantiate_ticks: u64,
    slots: Box<[Mutex<Option<Instance<B>>>]>,
    next: AtomicUsize,
    instantiated: AtomicU64,
    discarded: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
}

impl<B: Bindings> Pool<B> {
    pub fn new(engine: WasmEngine, pre: B::Pre, settings: Settings) -> Self {
        let slots = (0..settings.limits.instances.max(1))
            .map(|_| Mutex::new(None))
            .collect();
        Pool {
            deadline_ticks: WasmEngine::deadline_ticks(settings.limits.deadline()),
            instantiate_ticks: WasmEngine::deadline_ticks(
                (settings.limits.deadline() * 10).max(MIN_INSTANTIATE_DEADLINE),
            ),
            engine,
            pre,
            settings,
            slots,
            next: AtomicUsize::new(0),
            instantiated: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            instantiated: self.instantiated.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Creates an instance now and keeps it in the first slot; returns
    /// what `inspect` reads from its bindings. Used at load, so that a
    /// component that cannot even start is refused before it is needed.
    pub async fn warm_up<R>(&self, inspect: impl FnOnce(&B) -> R) -> Result<R, PolicyError> {
        let instance = self.instantiate().await?;
        let result = inspect(&instance.bindings);
        *self.slots[0].lock().await = Some(instance);
        Ok(result)
    }

    /// A fresh instance in a fresh store.
    pub async fn instantiate(&self) -> Result<Instance<B>, PolicyError> {
        let s = &self.settings;
        let state = HostState::new(s.name.clone(), s.config.clone(), &s.limits, s.stdio);
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|state| &mut state.limits);
        store.set_hostcall_fuel(s.limits.hostcall_fuel());
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.instantiate_ticks);
        store.data_mut().begin_call();
        let result = B::instantiate(&self.pre, &mut store).await;
        store.data_mut().end_call();
        self.instantiated.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(bindings) => Ok(Instance { store, bindings }),
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let error = match self.classify("instantiate", e) {
                    PolicyError::Trap { message, .. } => PolicyError::Instantiate {
                        component: self.name().to_string(),
                        message,
                    },
                    other => other,
                };
                tracing::warn!(component = self.name(), "{error}");
                Err(error)
            }
        }
    }

    /// Leases an instance for one call: a free slot's, a fresh one if
    /// that slot is empty, or (all busy) waits for a slot.
    pub async fn lease(&self) -> Result<Lease<'_, B>, PolicyError> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let free = (0..n).find_map(|i| self.slots[(start + i) % n].try_lock().ok());
        let mut guard = match free {
            Some(guard) => guard,
            None => self.slots[start].lock().await,
        };
        let instance = match guard.take() {
            Some(instance) => instance,
            None => self.instantiate().await?,
        };
        Ok(Lease {
            pool: self,
            guard,
            instance: Some(instance),
        })
    }

    fn classify(&self, call: &'static str, error: wasmtime::Error) -> PolicyError {
        let component = self.name().to_string();
        if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return PolicyError::Deadline {
                component,
                call,
                deadline_ms: self.settings.limits.deadline_ms,
            };
        }
        if error.chain().any(|cause| {
            cause
                .to_string()
                .contains("forcing trap when growing memory")
        }) {
            return PolicyError::OutOfMemory {
                component,
                call,
                memory_mib: self.settings.limits.memory_mib,
            };
        }
        // The trap's own message, without the multi-line wasm backtrace
        // that wasmtime attaches as context.
        let message = match error.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => error.root_cause().to_string(),
        };
        PolicyError::Trap {
            component,
            call,
            message,
        }
    }
}

/// One instance, taken out of its slot for the length of one call.
pub(crate) struct Lease<'a, B: Bindings> {
    pool: &'a Pool<B>,
    guard: MutexGuard<'a, Option<Instance<B>>>,
    instance: Option<Instance<B>>,
}

impl<B: Bindings> Lease<'_, B> {
    /// The store (deadline set, log budget reset) and bindings to call.
    pub fn start(&mut self) -> (&mut Store<HostState>, &B) {
        let instance = self.instance.as_mut().expect("a lease holds its instance");
        instance.store.set_epoch_deadline(self.pool.deadline_ticks);
        instance.store.data_mut().begin_call();
        (&mut instance.store, &instance.bindings)
    }

    /// Ends the call: the instance goes back on success and is dropped on
    /// failure.
    pub fn finish<R>(
        mut self,
        call: &'static str,
        result: wasmtime::Result<R>,
    ) -> Result<R, PolicyError> {
        let mut instance = self.instance.take().expect("a lease holds its instance");
        instance.store.data_mut().end_call();
        match result {
            Ok(value) => {
                *self.guard = Some(instance);
                self.pool.calls.fetch_add(1, Ordering::Relaxed);
                Ok(value)
            }
            Err(e) => {
                drop(instance);
                self.pool.failures.fetch_add(1, Ordering::Relaxed);
                self.pool.discarded.fetch_add(1, Ordering::Relaxed);
                let error = self.pool.classify(call, e);
                tracing::warn!(
                    component = self.pool.name(),
                    "{error}; instance discarded, a fresh one serves the next call"
                );
                Err(error)
            }
        }
    }
}

impl<B: Bindings> Drop for Lease<'_, B> {
    fn drop(&mut self) {
        if self.instance.take().is_some() {
            self.pool.discarded.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                component = self.pool.name(),
                "call abandoned before it finished; instance discarded"
            );
        }
    }
}
