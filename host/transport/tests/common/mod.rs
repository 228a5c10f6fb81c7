//! Helpers shared by the integration tests: private temporary directories,
//! listeners on free loopback ports, echo servers and rustls clients.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use firehose_transport::{
    Connection, HttpHandler, Listener, ListenerKind, ListenerSpec, NotFound, TlsConfigHandle,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "firehose-transport-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Binds a listener of `kind` on a free loopback port.
pub async fn bind(
    kind: ListenerKind,
    tls: Option<Arc<TlsConfigHandle>>,
    http: Option<Arc<dyn HttpHandler>>,
) -> Listener {
    let spec = ListenerSpec {
        name: format!("test-{kind}"),
        kind,
        address: "127.0.0.1:0".parse().unwrap(),
    };
    Listener::bind(spec, tls, http.unwrap_or_else(|| Arc::new(NotFound)))
        .await
        .unwrap()
}

/// Serves every connection by echoing what it reads, until the test ends.
pub fn spawn_echo(listener: Listener) -> SocketAddr {
    let addr = listener.local_addr();
    tokio::spawn(async move {
        loop {
            let incoming = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(Some(mut connection)) = incoming.handshake().await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                loop {
                    match connection.stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            connection.stream.write_all(&buf[..n]).await.unwrap();
                            connection.stream.flush().await.unwrap();
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Accepts one connection, hands its handshake result to the test.
pub fn accept_one(
    listener: Listener,
) -> oneshot::Receiver<Result<Option<Connection>, firehose_transport::TransportError>> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let incoming = listener.accept().await.unwrap();
        let _ = tx.send(incoming.handshake().await);
        // Keep the listener open until the test is done with the connection.
        std::future::pending::<()>().await;
    });
    rx
}

/// A rustls client trusting only the certificates in `roots` (PEM files).
pub fn client_config(roots: &[&Path], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for path in roots {
        let pem = std::fs::read(path).unwrap();
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            store.add(cert.unwrap()).unwrap();
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Connects over TLS to `addr`, verifying the certificate for `name`.
pub async fn tls_connect(
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// Writes `data` and reads the same number of bytes back.
pub async fn round_trip<S>(stream: &mut S, data: &[u8]) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(data).await.unwrap();
    stream.flush().await.unwrap();
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).await.unwrap();
    back
}

/// The DER of the certificate the server presented.
pub fn presented_cert(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}
