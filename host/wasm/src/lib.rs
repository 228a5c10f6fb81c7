//! Firehose's WASM runtime: loads policy and source components
//! (wasm32-wasip2, WIT package `firehose:bus@0.1.x`), checks them, compiles
//! them once, and runs them under limits.
//!
//! A map of the rooms:
//!
//! - [`engine`]: the one `wasmtime::Engine` every component shares, and the
//!   thread that ticks its epoch (the clock behind every call deadline).
//! - [`cache`]: compile once, keep the compiled artifact on disk, keyed by
//!   the wasm's content hash and the engine's compatibility hash.
//! - [`limits`]: per-component limits (memory, CPU deadline, tables,
//!   instances, pool size) with safe defaults.
//! - [`wasi_ctx`]: the WASI context a component gets: nothing granted; its
//!   stdout and stderr become log lines with its name.
//! - [`host_imports`]: what the host provides to policies: `config` (the
//!   component's own table from the broker config) and `log` (into
//!   `tracing`).
//! - [`check`]: what a `.wasm` file is: not wasm, a core module, or a
//!   component of one of our worlds, and which imports it asks for.
//! - [`acl`] and [`transform`]: the two kinds of policy, with host-side
//!   types ([`types`]) so the broker never sees generated bindings;
//!   `load` is how either is read, checked, compiled and linked.
//! - [`source`]: sources, the long-running publishers: one store per run
//!   with a memory cap and an epoch deadline that yields, network only as
//!   granted (`source::grants`, `source::net`), and the `publish` import
//!   that enforces the source's topic prefix and hands messages to a
//!   [`SourceSink`]; a webhook source also serves HTTP requests through
//!   its `wasi:http/incoming-handler` export (`source::webhook`), one
//!   fresh instance per request.
//!
//! Instances live in a small pool (`pool`): each call takes an instance,
//! runs under its deadline, and puts it back only if the call succeeded. A
//! trap, a missed deadline or running out of memory discards the instance
//! and a fresh one serves the next call.
//!
//! What this crate must not do: decide anything itself. It runs the
//! policy and reports what it said (or that it failed); failing closed or
//! applying `on_error` is the broker's job.

pub mod acl;
mod bindings;
pub mod cache;
pub mod check;
pub mod engine;
pub mod error;
pub mod host_imports;
pub mod limits;
mod load;
mod pool;
pub mod source;
pub mod transform;
pub mod types;
pub mod wasi_ctx;

pub use acl::AclPolicy;
pub use cache::{CacheOutcome, ComponentCache};
pub use check::{CheckError, ComponentInfo, WIT_VERSION, World, check_component};
pub use engine::WasmEngine;
pub use error::{LoadError, PolicyError};
pub use limits::Limits;
pub use load::PolicySpec;
pub use pool::PoolStats;
pub use source::{
    PublishCounts, RunError, SinkError, Source, SourceSink, SourceSpec, TcpGrant, TopicPrefix,
    WebhookError, WebhookRequest, WebhookResponse,
};
pub use transform::TransformPolicy;
pub use types::{CacheHints, Client, Decision, Message, Outcome, Qos};
pub use wasi_ctx::StdioMode;
