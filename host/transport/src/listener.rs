//! Listening sockets and the two steps of taking a connection.
//!
//! [`Listener::accept`] is the cheap part (the TCP accept) and runs on the
//! broker's accept loop. [`Incoming::handshake`] is the slow part (TLS
//! handshake, websocket upgrade or a plain HTTP answer) and runs on the
//! connection's own task, under the broker's connect timeout, so that a slow
//! or silent peer never holds up the accept loop.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::error::TransportError;
use crate::http::HttpHandler;
use crate::stream::MqttStream;
use crate::tls::TlsConfigHandle;
use crate::ws;

/// Pending connections the kernel queues before `accept` (capped by
/// `net.core.somaxconn`): reconnect storms of thousands of clients are
/// expected.
const BACKLOG: u32 = 4096;

/// What a listener carries MQTT over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// MQTT over TCP.
    Mqtt,
    /// MQTT over TLS.
    Mqtts,
    /// MQTT over websocket.
    Ws,
    /// MQTT over websocket over TLS.
    Wss,
}

impl ListenerKind {
    /// Whether the kind needs TLS settings (the broker loads them only then).
    pub fn uses_tls(self) -> bool {
        matches!(self, ListenerKind::Mqtts | ListenerKind::Wss)
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenerKind::Mqtt => "mqtt",
            ListenerKind::Mqtts => "mqtts",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
        })
    }
}

/// A listener as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Unique; appears in logs and errors.
    pub name: String,
    pub kind: ListenerKind,
    pub address: SocketAddr,
}

/// A bound, listening socket of one kind.
pub struct Listener {
    name: String,
    kind: ListenerKind,
    socket: TcpListener,
    local_addr: SocketAddr,
    /// What each accepted connection's handshake does.
    upgrade: Upgrade,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds `spec.address` (port 0 picks a free port). `tls` is required
    /// for `mqtts`/`wss`; `http` answers plain HTTP requests on `ws`/`wss`
    /// (pass `Arc::new(NotFound)` when there is nothing to serve).
    pub async fn bind(
        spec: ListenerSpec,
        tls: Option<Arc<TlsConfigHandle>>,
        http: Arc<dyn HttpHandler>,
    ) -> Result<Listener, TransportError> {
        let upgrade = match (spec.kind, tls) {
            (ListenerKind::Mqtt, _) => Upgrade::None,
            (ListenerKind::Mqtts, Some(tls)) => Upgrade::Tls(tls),
            (ListenerKind::Ws, _) => Upgrade::Ws(http),
            (ListenerKind::Wss, Some(tls)) => Upgrade::Wss(tls, http),
            (kind, None) => {
                return Err(TransportError::TlsRequired {
                    listener: spec.name,
                    kind,
                });
            }
        };
        let bind_error = |source| TransportError::Bind {
            listener: spec.name.clone(),
            address: spec.address,
            source,
        };
        let socket = if spec.address.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(bind_error)?;
        // Lets a restarted broker bind while old connections sit in TIME_WAIT.
        #[cfg(unix)]
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(spec.address).map_err(bind_error)?;
        let socket = socket.listen(BACKLOG).map_err(bind_error)?;
        let local_addr = socket.local_addr().map_err(bind_error)?;
        Ok(Listener {
            name: spec.name,
            kind: spec.kind,
            socket,
            local_addr,
            upgrade,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> ListenerKind {
        self.kind
    }

    /// Accepts the next TCP connection; no bytes are exchanged yet. Errors
    /// are per-connection or transient (e.g. too many open files): log them,
    /// pause briefly, and keep accepting.
    pub async fn accept(&self) -> std::io::Result<Incoming> {
        let (stream, remote) = self.socket.accept().await?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(listener = %self.name, %remote, %error, "cannot set TCP_NODELAY");
        }
        Ok(Incoming {
            stream,
            remote,
            upgrade: self.upgrade.clone(),
        })
    }
}

/// What `handshake` has to do on a connection.
#[derive(Clone)]
enum Upgrade {
    None,
    Tls(Arc<TlsConfigHandle>),
    Ws(Arc<dyn HttpHandler>),
    Wss(Arc<TlsConfigHandle>, Arc<dyn HttpHandler>),
}

/// An accepted TCP connection, before its TLS or websocket handshake.
pub struct Incoming {
    stream: TcpStream,
    remote: SocketAddr,
    upgrade: Upgrade,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// Runs the TLS handshake and/or websocket upgrade (nothing for plain
    /// MQTT). `Ok(None)` when the peer made a plain HTTP request, which was
    /// answered: no MQTT follows. Has no timeout of its own: run it under the
    /// broker's connect timeout.
    pub async fn handshake(self) -> Result<Option<Connection>, TransportError> {
        let Incoming {
            stream,
            remote,
            upgrade,
        } = self;
        let connection = |stream, ws_path| Connection {
            stream,
            remote_addr: remote,
            tls_identity: None,
            ws_path,
        };
        Ok(match upgrade {
            Upgrade::None => Some(connection(MqttStream::Tcp(stream), None)),
            Upgrade::Tls(tls) => {
                let tls = tls_accept(stream, remote, &tls, false).await?;
                Some(connection(MqttStream::Tls(Box::new(tls)), None))
            }
            Upgrade::Ws(http) => ws::accept_or_serve(stream, remote, false, &*http)
                .await?
                .map(|(ws, path)| connection(MqttStream::Ws(Box::new(ws)), Some(path))),
            Upgrade::Wss(tls, http) => {
                let tls = tls_accept(stream, remote, &tls, true).await?;
                ws::accept_or_serve(tls, remote, true, &*http)
                    .await?
                    .map(|(ws, path)| connection(MqttStream::Wss(Box::new(ws)), Some(path)))
            }
        })
    }
}

async fn tls_accept(
    stream: TcpStream,
    peer: SocketAddr,
    tls: &TlsConfigHandle,
    http: bool,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, TransportError> {
    let config = if http {
        tls.http_config()
    } else {
        tls.mqtt_config()
    };
    TlsAcceptor::from(config)
        .accept(stream)
        .await
        .map_err(|source| TransportError::TlsHandshake { peer, source })
}

/// A connection ready to carry MQTT bytes.
#[derive(Debug)]
pub struct Connection {
    pub stream: MqttStream,
    pub remote_addr: SocketAddr,
    /// The subject of the client certificate, once client certificates are
    /// requested; always `None` for now.
    pub tls_identity: Option<String>,
    /// The path a websocket was opened on (`/mqtt` usually; any is accepted).
    pub ws_path: Option<String>,
}
