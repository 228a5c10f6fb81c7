//! The errors a listener reports: binding, TLS settings, and what went wrong
//! with one connection's handshake. Each names the listener or the peer.

use std::io;
use std::net::SocketAddr;

use crate::listener::ListenerKind;
use crate::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("listener {listener}: cannot listen on {address}: {source}")]
    Bind {
        listener: String,
        address: SocketAddr,
        source: io::Error,
    },
    #[error("listener {listener}: kind {kind} needs TLS settings")]
    TlsRequired {
        listener: String,
        kind: ListenerKind,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("TLS handshake with {peer} failed: {source}")]
    TlsHandshake { peer: SocketAddr, source: io::Error },
    /// The peer's HTTP request was refused with `status` (the response was
    /// sent).
    #[error("refused HTTP request from {peer} with {status}: {reason}")]
    Refused {
        peer: SocketAddr,
        status: u16,
        reason: String,
    },
    #[error("connection from {peer}: {source}")]
    Io { peer: SocketAddr, source: io::Error },
}
