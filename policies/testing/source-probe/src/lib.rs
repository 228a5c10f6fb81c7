//! A purpose-built source for the host's tests: it probes its sandbox and
//! reports each result as a retained message on `<prefix>report/<check>`
//! (payload `ok: ...` or `err: ...`), so a test can assert on what the
//! guest itself saw. Config (all strings):
//!
//! - `prefix`: the source's prefix as configured, e.g. `probe/`.
//! - `mode`: `probe` (default), `trap`, `exit`, `fail`, `spin`, `alloc`.
//! - `granted`: `host:port` of a TCP echo server the source is granted:
//!   it sends a line and reports the line read back.
//! - `denied`: `host:port` (an IPv4 address) the source is not granted:
//!   the connect is refused by the host's address check.
//! - `denied_name`: `name:port` no grant names: the name lookup is
//!   refused before any DNS query.
//! - after the checks above, `publish-batch`: `<prefix>batch/1` to `3` in
//!   one call (report `batch`), then `4`, a topic outside the prefix and
//!   `5` (report `batch-refusal`: `4` is published, `5` is not), then an
//!   empty batch (report `batch-empty`); the batch messages are retained.
//! - `interval_ms`: after probing, a heartbeat on `<prefix>heartbeat`
//!   this often (default 200) until the host says `shutting-down`.
//!
//! The other modes exercise the supervisor: `trap` panics, `exit` calls
//! `exit(3)`, `fail` returns an error, `spin` loops without ever calling
//! the host, `alloc` allocates until the memory cap stops it, `alias`
//! hands the host a message whose user properties all point at the same
//! 1 MiB (80 MiB to copy: more than its memory cap, so the call must
//! fail); each first publishes `<prefix>report/started` (not retained,
//! counted by tests).
//!
//! The wit-bindgen glue and the probes are `component.rs`; the TCP client
//! is `wasi-net`'s (guests/wasi-net), as the sources use it.

#[cfg(target_arch = "wasm32")]
mod component;
