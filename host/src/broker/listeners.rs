//! Binding the configured listeners and accepting on them.
//!
//! The accept loop only accepts: every handshake runs on the new
//! connection's own task, under the connect timeout, so a flood of silent
//! sockets costs a task each and holds nothing up.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use firehose_transport::{
    HttpHandler, Listener, ListenerKind as TransportKind, ListenerSpec, TlsConfigHandle, TlsSource,
};
use tracing::{info, warn};

use super::{Broker, connection};
use crate::config::{Config, ListenerKind};
use crate::hooks::{Hooks, HttpFront};
use crate::shutdown::Shutdown;

/// A listener, bound and shared with its accept loop.
pub type BoundListener = Arc<Listener>;

/// Binds every listener of `config`, loading (or generating) the TLS
/// certificate first if any listener needs it; returns the listeners and
/// the TLS configuration they share (for reloads). The websocket
/// listeners' plain HTTP side serves `hooks` and the viewer.
pub async fn bind_all(
    config: &Config,
    hooks: Arc<Hooks>,
) -> anyhow::Result<(Vec<BoundListener>, Option<Arc<TlsConfigHandle>>)> {
    let tls = if config.listeners.iter().any(|l| l.kind.uses_tls()) {
        Some(Arc::new(load_tls(config)?))
    } else {
        None
    };
    let http: Arc<dyn HttpHandler> = Arc::new(HttpFront::new(hooks));
    let mut bound = Vec::with_capacity(config.listeners.len());
    for (i, listener) in config.listeners.iter().enumerate() {
        let spec = ListenerSpec {
            name: listener.name.clone(),
            kind: match listener.kind {
                ListenerKind::Mqtt => TransportKind::Mqtt,
                ListenerKind::Mqtts => TransportKind::Mqtts,
                ListenerKind::Ws => TransportKind::Ws,
                ListenerKind::Wss => TransportKind::Wss,
            },
            address: listener.address,
        };
        let tls = listener.kind.uses_tls().then(|| tls.clone()).flatten();
        let bound_listener = Listener::bind(spec, tls, http.clone())
            .await
            .with_context(|| format!("config key listener[{i}] ({})", listener.name))?;
        info!(
            listener = %listener.name,
            kind = %bound_listener.kind(),
            address = %bound_listener.local_addr(),
            "listening"
        );
        bound.push(Arc::new(bound_listener));
    }
    Ok((bound, tls))
}

fn load_tls(config: &Config) -> anyhow::Result<TlsConfigHandle> {
    let source = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => TlsSource::Generated {
            dir: config.data_dir().join("tls"),
            names: config.tls.names.clone(),
        },
    };
    let handle = TlsConfigHandle::load(source).context("TLS certificate (config key [tls])")?;
    match handle.ca_path() {
        Some(ca) => info!(
            ca = %ca.display(),
            "TLS listeners use a generated certificate; clients verify it with --cafile {}",
            ca.display()
        ),
        None => info!("TLS listeners use the configured certificate"),
    }
    Ok(handle)
}

/// Accepts connections on `listener` until shutdown, one task each.
pub async fn accept_loop(listener: BoundListener, broker: Arc<Broker>, mut shutdown: Shutdown) {
    let name: Arc<str> = listener.name().into();
    loop {
        let incoming = tokio::select! {
            incoming = listener.accept() => incoming,
            () = shutdown.triggered() => return,
        };
        match incoming {
            Ok(incoming) => {
                broker.metrics.connections_accepted.incr();
                tokio::spawn(connection::serve(incoming, name.clone(), broker.clone()));
            }
            Err(error) => {
                // Out of file descriptors and the like: pause, keep serving.
                warn!(listener = %name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
