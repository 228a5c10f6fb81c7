//! The listeners that carry MQTT bytes for the Firehose broker: over TCP
//! (`mqtt`), TLS (`mqtts`), websocket (`ws`) and websocket over TLS (`wss`).
//! This crate knows nothing about MQTT; it hands the broker a byte stream.
//!
//! A map of the rooms:
//! - [`listener`] binds a [`ListenerSpec`] into a [`Listener`] that accepts
//!   TCP connections cheaply; [`Incoming::handshake`], run on the
//!   connection's own task under the broker's connect timeout, does the TLS
//!   handshake and/or websocket upgrade and yields a [`Connection`].
//! - [`stream`] holds [`MqttStream`], the connection's bytes as one tokio
//!   `AsyncRead + AsyncWrite` type whatever the kind.
//! - [`tls`] holds [`TlsConfigHandle`], the reloadable rustls configuration,
//!   from operator files or a CA and leaf generated on first start.
//! - [`ws`] does the websocket upgrade (subprotocols `mqtt`, `mqttv3.1`) and
//!   provides [`WsStream`], binary frames read and written as bytes.
//! - [`http`] reads request heads; plain HTTP requests on websocket ports go
//!   to the broker's [`HttpHandler`].
//! - [`error`] holds [`TransportError`].

pub mod error;
pub mod http;
pub mod listener;
pub mod stream;
pub mod tls;
pub mod ws;

pub use error::TransportError;
pub use http::{HttpFuture, HttpHandler, HttpRequest, HttpResponse, NotFound};
pub use listener::{Connection, Incoming, Listener, ListenerKind, ListenerSpec};
pub use stream::MqttStream;
pub use tls::{TlsConfigHandle, TlsError, TlsSource};
pub use ws::WsStream;
