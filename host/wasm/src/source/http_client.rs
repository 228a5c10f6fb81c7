//! Sends a source's granted outgoing HTTP requests.
//!
//! [`super::webhook::GatedOutgoingHttp`] hands a request here once one of
//! the source's `grants.http` patterns admits it. The host connects to the
//! request's authority (resolving the name itself), speaks TLS for
//! `https` with the server name verified against the Mozilla roots plus
//! the source's own CA certificates (`grants.http_ca`), and HTTP/1.1
//! through hyper. Redirects are not followed: a guest that wants to follow
//! one sends a new request, which its grants are checked against again.
//!
//! Timeouts the guest leaves unset get the defaults here, not
//! wasmtime-wasi-http's ten minutes: a source must not hang for that long
//! on a server that accepted a connection and went quiet.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions};

/// How long connecting (TCP, then TLS and the HTTP handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the response head may take once the request is sent.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the response body may pause between frames.
pub const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a PEM file of CA certificates (`grants.http_ca`); the error says
/// what is wrong with it.
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", path.display()));
    }
    let mut roots = RootCertStore::empty();
    let (_, bad) = roots.add_parsable_certificates(certs.iter().cloned());
    if bad > 0 {
        return Err(format!(
            "{}: {bad} certificate(s) could not be used as a CA",
            path.display()
        ));
    }
    Ok(certs)
}

/// The TLS settings of one source's outgoing requests.
pub(crate) fn tls_config(extra_roots: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // Parsed and checked at config load; one that fails here is skipped.
    let _ = roots.add_parsable_certificates(extra_roots.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The response body, with the between-bytes timeout applied.
pub(crate) struct ResponseBody {
    incoming: hyper::body::Incoming,
    pause: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.limit;
                self.pause.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.pause.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The connection's I/O, which must be polled until the body is read.
pub(crate) type ConnectionIo = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// Sends `request` (already admitted by a grant) and returns the response
/// head with its body, and the connection's I/O future.
pub(crate) async fn send<B>(
    mut request: http::Request<B>,
    options: Option<RequestOptions>,
    tls: Arc<ClientConfig>,
) -> Result<(http::Response<ResponseBody>, ConnectionIo), Error>
where
    B: Body<Data = Bytes, Error = Error> + Send + 'static,
{
    let options = options.unwrap_or_default();
    let connect_timeout = options.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
    let first_byte_timeout = options.first_byte_timeout.unwrap_or(FIRST_BYTE_TIMEOUT);
    let between_bytes = options
        .between_bytes_timeout
        .unwrap_or(BETWEEN_BYTES_TIMEOUT)
        .max(Duration::from_millis(1));

    let uri = request.uri();
    let https = uri.scheme() == Some(&Scheme::HTTPS);
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    // An IPv6 literal keeps its brackets in `host()`.
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();

    let connect = async {
        let tcp = TcpStream::connect((bare_host.as_str(), port))
            .await
            .map_err(Error::Connect)?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = if https {
            let name = ServerName::try_from(bare_host.clone())?;
            let tls = TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(Error::Tls)?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Error::from)
    };
    let (mut sender, connection) = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;

    // The request line carries the path only (the authority went into the
    // connection and the Host header, which the guest set or we set here).
    if !request.headers().contains_key(http::header::HOST) {
        let value = match request.uri().port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            request.headers_mut().insert(http::header::HOST, value);
        }
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let mut connection: ConnectionIo =
        Box::pin(async move { connection.await.map_err(Error::from) });
    let response = {
        let send = tokio::time::timeout(first_byte_timeout, sender.send_request(request));
        tokio::pin!(send);
        // Drive the connection while waiting for the head.
        tokio::select! {
            sent = &mut send => sent.map_err(|_| Error::ConnectionReadTimeout)??,
            done = &mut connection => {
                done?;
                // Finished: what is returned must not poll it again.
                connection = Box::pin(async { Ok(()) });
                (&mut send).await.map_err(|_| Error::ConnectionReadTimeout)??
            }
        }
    };
    let response = response.map(|incoming| ResponseBody {
        incoming,
        pause: Box::pin(tokio::time::sleep(between_bytes)),
        limit: between_bytes,
    });
    Ok((response, connection))
}
