//! What the guest components that reach servers share: the gerrit and
//! launchpad sources (this workspace) and the test sources
//! `source-probe` and `source-flood` (policies/testing, which depend on
//! this crate by path).
//!
//! - [`tcp`]: a blocking TCP client over `wasi:sockets` (the `wasip2`
//!   crate) with a connect timeout and `std::io::Read`/`Write`; the client
//!   itself compiles only for wasm32, its errors ([`ConnectError`]) and
//!   line helpers everywhere.
//! - [`backoff`]: the capped exponential delay between reconnects.
//! - [`endpoint`]: `host:port` as configs name a server.
//! - [`config`]: config value helpers (whole numbers within a range,
//!   unknown keys).
//!
//! Everything but the client is plain Rust, tested natively with
//! `cargo test --manifest-path guests/Cargo.toml --workspace`.

pub mod backoff;
pub mod config;
pub mod endpoint;
pub mod tcp;

pub use backoff::Backoff;
pub use endpoint::split_host_port;
pub use tcp::ConnectError;
#[cfg(target_arch = "wasm32")]
pub use tcp::{TcpConnection, connect};
