//! Firehose: an MQTT 3.1 / 3.1.1 / 5.0 event bus that the public may read
//! and only granted publishers may write.
//!
//! A map of the rooms:
//! - [`config`]: the TOML configuration, validated at load; the embedded
//!   default that `firehose serve` runs without `--config`.
//! - [`broker`]: the shared broker state and the tasks that serve it: one
//!   accept loop per listener, one task per connection (handshake, CONNECT,
//!   inbound packets, outbound deliveries, wills).
//! - [`session`]: per-client-id state kept across connections: queues,
//!   inflight messages, subscriptions, expiry.
//! - [`router`]: the subscription tree and retained messages; routes each
//!   accepted message into every matching session's queue.
//! - [`auth`]: the single [`auth::Authorizer`] interface every connect,
//!   subscribe and publish decision goes through, and the built-in one.
//! - [`message`]: the routed message.
//! - [`metrics`]: counters of what was refused or dropped.
//! - [`shutdown`]: the stop signal handed to every task.
//! - [`sources`]: the `[[source]]` components, each run and restarted
//!   with backoff by its own supervisor task, publishing into the broker.
//! - [`viewer`]: the live event viewer, a small page the websocket
//!   listeners serve at `/` that subscribes back over MQTT.js.
//! - [`hooks`]: webhooks, `/hooks/<name>` on the websocket listeners,
//!   served by the webhook sources' HTTP handlers.
//! - [`cli`]: the `firehose` command line.
//!
//! The wire format lives in the `firehose-mqtt` crate, the sockets (TCP,
//! TLS, websocket) in `firehose-transport`.

pub mod auth;
pub mod broker;
pub mod cli;
pub mod config;
pub mod hooks;
pub mod message;
pub mod metrics;
pub mod policy;
pub mod router;
pub mod session;
pub mod shutdown;
pub mod sources;
pub mod viewer;
