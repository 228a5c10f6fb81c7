//! What the host provides to a policy component, and the state of one
//! instance's store.
//!
//! - `firehose:bus/config`: the component's own table from the broker
//!   config, read-only, as strings (the broker flattens TOML values: see
//!   `wit/config.wit`).
//! - `firehose:bus/log`: one `tracing` event per call, target
//!   `firehose_wasm::guest`, with the field `component = <name>`. A line is
//!   cut at [`MAX_LOG_LINE`] bytes, and a component gets at most
//!   [`MAX_LOG_LINES_PER_CALL`] lines per call: the rest is
//!   dropped and counted in one warning, so a chatty policy cannot flood the
//!   log from the publish path.
//! - WASI 0.2, with the empty context of [`crate::wasi_ctx`].
//!
//! This module must not give a component anything beyond its own config.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::StoreLimits;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::acl::firehose::bus::{config, log};
use crate::limits::Limits;
use crate::wasi_ctx::{self, StdioMode};

/// The longest log line kept, in bytes.
pub const MAX_LOG_LINE: usize = 4096;

/// How many `log` lines one call may write before the rest is dropped.
pub const MAX_LOG_LINES_PER_CALL: u32 = 64;

/// The data of one instance's store.
pub(crate) struct HostState {
    component: Arc<str>,
    config: Arc<BTreeMap<String, String>>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    log_lines: u32,
    log_dropped: u32,
}

impl HostState {
    pub(crate) fn new(
        component: Arc<str>,
        config: Arc<BTreeMap<String, String>>,
        limits: &Limits,
        stdio: StdioMode,
    ) -> Self {
        HostState {
            wasi: wasi_ctx::policy_ctx(&component, stdio),
            component,
            config,
            table: ResourceTable::new(),
            limits: limits.store_limits(),
            log_lines: 0,
            log_dropped: 0,
        }
    }

    /// Starts a call: resets the per-call log budget.
    pub(crate) fn begin_call(&mut self) {
        self.log_lines = 0;
        self.log_dropped = 0;
    }

    /// Ends a call: reports log lines that were dropped.
    pub(crate) fn end_call(&mut self) {
        if self.log_dropped > 0 {
            tracing::warn!(
                target: "firehose_wasm::guest",
                component = &*self.component,
                dropped = self.log_dropped,
                "component logged more than {MAX_LOG_LINES_PER_CALL} lines in one call; the rest were dropped"
            );
            self.log_dropped = 0;
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn keys(&mut self) -> Vec<String> {
        self.config.keys().cloned().collect()
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        if self.log_lines >= MAX_LOG_LINES_PER_CALL {
            self.log_dropped += 1;
            return;
        }
        self.log_lines += 1;
        emit_guest_log(&self.component, level, &message);
    }
}

/// Writes one line a component logged into `tracing` (target
/// `firehose_wasm::guest`, field `component`), cut at [`MAX_LOG_LINE`]
/// bytes. Shared by policies and sources.
pub(crate) fn emit_guest_log(component: &str, level: log::Level, message: &str) {
    let message = truncate(message, MAX_LOG_LINE);
    match level {
        log::Level::Trace => {
            tracing::trace!(target: "firehose_wasm::guest", component, "{message}")
        }
        log::Level::Debug => {
            tracing::debug!(target: "firehose_wasm::guest", component, "{message}")
        }
        log::Level::Info => {
            tracing::info!(target: "firehose_wasm::guest", component, "{message}")
        }
        log::Level::Warn => {
            tracing::warn!(target: "firehose_wasm::guest", component, "{message}")
        }
        log::Level::Error => {
            tracing::error!(target: "firehose_wasm::guest", component, "{message}")
        }
    }
}

impl crate::bindings::acl::firehose::bus::types::Host for HostState {}

/// `s` cut to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A linker with everything a policy may import: WASI 0.2 (empty
/// context), `config` and `log`.
pub(crate) fn policy_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // Both policy worlds import the same interfaces (types, config, log).
    crate::bindings::acl::AclPolicy::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
