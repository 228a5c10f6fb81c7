//! The data of a source's store: its name and config, its WASI context
//! and resource table, its memory limits, its network gate, its
//! `wasi:http` context and what the publish import needs. One store per
//! run (a restart gets a fresh one) and one per webhook request.
//!
//! Also the two plain imports a source shares with policies:
//! `firehose:bus/config` (its own table) and `firehose:bus/log` (into
//! `tracing`, target `firehose_wasm::guest`, field `component = <name>`,
//! at most [`LOG_LINES_PER_SEC`] lines a second, each cut at
//! [`crate::host_imports::MAX_LOG_LINE`] bytes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::sockets::WasiSocketsCtxView;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::budget::LogBudget;
use super::net::NetPolicy;
use super::publish::Publisher;
use super::webhook::GatedOutgoingHttp;
use crate::bindings::acl::firehose::bus::{config, log};
use crate::bindings::source::firehose::bus::publish::PublishError;
use crate::host_imports::{emit_guest_log, truncate};

/// How many `log` lines a source may write per second; the rest are
/// dropped and counted.
pub const LOG_LINES_PER_SEC: u32 = 100;

/// How many refused publishes are logged per second per source.
const REJECT_LOG_PER_SEC: u32 = 5;

pub(crate) struct SourceState {
    pub(crate) name: Arc<str>,
    config: Arc<BTreeMap<String, String>>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    net: Arc<NetPolicy>,
    pub(crate) publisher: Publisher,
    log_budget: LogBudget,
    reject_budget: LogBudget,
    /// `wasi:http` (the types of the incoming handler, and the outgoing
    /// handler; [`GatedOutgoingHttp`] sends only granted requests).
    http: WasiHttpCtx,
    http_hooks: GatedOutgoingHttp,
}

impl SourceState {
    pub(crate) fn new(
        name: Arc<str>,
        config: Arc<BTreeMap<String, String>>,
        wasi: WasiCtx,
        limits: StoreLimits,
        net: Arc<NetPolicy>,
        publisher: Publisher,
    ) -> Self {
        let name_for_hooks = name.clone();
        let net_for_hooks = net.clone();
        SourceState {
            name,
            config,
            wasi,
            table: ResourceTable::new(),
            limits,
            net,
            publisher,
            log_budget: LogBudget::new(LOG_LINES_PER_SEC),
            reject_budget: LogBudget::new(REJECT_LOG_PER_SEC),
            http: WasiHttpCtx::new(),
            http_hooks: GatedOutgoingHttp::new(name_for_hooks, net_for_hooks),
        }
    }

    /// wasmtime-wasi's sockets view and the grants that gate it.
    pub(crate) fn sockets_and_net(&mut self) -> (WasiSocketsCtxView<'_>, &NetPolicy) {
        (
            WasiSocketsCtxView {
                ctx: self.wasi.sockets(),
                table: &mut self.table,
            },
            &self.net,
        )
    }

    /// Counts a refused publish in the source's `rejected` counter and
    /// logs it, within the per-second budget.
    pub(crate) fn note_rejected(&mut self, topic: &str, error: &PublishError) {
        self.publisher
            .stats
            .rejected
            .fetch_add(1, Ordering::Relaxed);
        let Some(suppressed) = self.reject_budget.take() else {
            return;
        };
        let why = match error {
            PublishError::OutsidePrefix(prefix) => format!("outside the source's prefix {prefix}"),
            PublishError::InvalidTopic(why) => format!("invalid topic: {why}"),
            PublishError::TooLarge(limit) => format!("larger than {limit} bytes"),
            PublishError::ShuttingDown => "the source is stopping".to_owned(),
        };
        tracing::warn!(
            target: "firehose_wasm::source",
            source = &*self.name,
            topic = truncate(topic, 256),
            suppressed,
            "publish refused: {why}"
        );
    }
}

impl WasiView for SourceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for SourceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl config::Host for SourceState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn keys(&mut self) -> Vec<String> {
        self.config.keys().cloned().collect()
    }
}

impl log::Host for SourceState {
    fn log(&mut self, level: log::Level, message: String) {
        let Some(suppressed) = self.log_budget.take() else {
            return;
        };
        if suppressed > 0 {
            tracing::warn!(
                target: "firehose_wasm::guest",
                component = &*self.name,
                suppressed,
                "source logged more than {LOG_LINES_PER_SEC} lines a second; {suppressed} were dropped"
            );
        }
        emit_guest_log(&self.name, level, &message);
    }
}

impl crate::bindings::acl::firehose::bus::types::Host for SourceState {}
