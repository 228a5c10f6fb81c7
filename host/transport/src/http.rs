//! The small HTTP/1.1 server that websocket listeners run before the upgrade.
//!
//! A `ws`/`wss` port reads one request head (at most [`MAX_HEAD_SIZE`] bytes,
//! else 431) and either upgrades it to a websocket (see [`crate::ws`]) or hands
//! it, with its body (at most [`MAX_BODY_SIZE`] bytes, given by
//! `Content-Length`), to the broker's [`HttpHandler`], writes the response and
//! closes: one request per connection, no keep-alive, no chunked bodies. The
//! broker mounts its pages and webhooks through the handler; this module
//! knows nothing about them.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::error::TransportError;

/// The largest request head (request line and headers) accepted.
pub const MAX_HEAD_SIZE: usize = 8 * 1024;
/// The largest request body accepted.
pub const MAX_BODY_SIZE: usize = 1024 * 1024;
/// The most headers a request may carry.
const MAX_HEADERS: usize = 64;
/// How long a refused request's unread input is drained before closing.
const LINGER: Duration = Duration::from_secs(1);
/// How much of it at most.
const MAX_DRAIN: usize = 64 * 1024;

/// A plain HTTP request received on a websocket listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// The request target as sent, query string included (`/hooks/x?a=b`).
    pub path: String,
    /// Header names and values in the order received.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; empty without one).
    pub body: Vec<u8>,
    pub remote_addr: SocketAddr,
    /// Whether the request came over TLS (a `wss` listener).
    pub secure: bool,
}

impl HttpRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The answer an [`HttpHandler`] gives. The transport adds `Content-Length`
/// and `Connection: close` itself (headers of those names given here are
/// dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a `text/plain` body.
    pub fn text(status: u16, body: impl Into<String>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![(
                "Content-Type".to_owned(),
                "text/plain; charset=utf-8".to_owned(),
            )],
            body: body.into().into_bytes(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The future an [`HttpHandler`] answers with.
pub type HttpFuture<'a> = Pin<Box<dyn Future<Output = HttpResponse> + Send + 'a>>;

/// Answers the plain HTTP requests made to a websocket listener. The future
/// runs on the connection's task, under the broker's connect timeout
/// (which drops it when it expires): it may await (a webhook calls a
/// component), but must not block the thread.
pub trait HttpHandler: Send + Sync {
    fn handle(&self, req: HttpRequest) -> HttpFuture<'_>;
}

/// The default handler: 404 for every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl NotFound {
    /// The 404 answer to `req`.
    pub fn respond(req: &HttpRequest) -> HttpResponse {
        HttpResponse::text(404, format!("{} not found\n", req.path))
    }
}

impl HttpHandler for NotFound {
    fn handle(&self, req: HttpRequest) -> HttpFuture<'_> {
        Box::pin(std::future::ready(NotFound::respond(&req)))
    }
}

/// A request head as read off the wire, before it is known to be a
/// websocket upgrade or a plain request.
pub(crate) struct RequestHead {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Bytes read past the head: the start of a body or of websocket frames.
    pub leftover: Vec<u8>,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every comma-separated token of every header `name`, trimmed.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads one request head. A head that is malformed or too large is answered
/// (400 / 431) and reported as an error.
pub(crate) async fn read_head<S>(
    stream: &mut S,
    peer: SocketAddr,
) -> Result<RequestHead, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; MAX_HEAD_SIZE];
    let mut filled = 0;
    loop {
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(|source| TransportError::Io { peer, source })?;
        if n == 0 {
            return Err(TransportError::Io {
                peer,
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a complete HTTP request head",
                ),
            });
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(len)) => {
                let head = RequestHead {
                    method: req.method.unwrap_or_default().to_owned(),
                    path: req.path.unwrap_or_default().to_owned(),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                    leftover: buf[len..filled].to_vec(),
                };
                return Ok(head);
            }
            Ok(httparse::Status::Partial) if filled < MAX_HEAD_SIZE => {}
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                let reason = format!(
                    "request head larger than {MAX_HEAD_SIZE} bytes or {MAX_HEADERS} headers"
                );
                return Err(refuse(stream, peer, HttpResponse::text(431, reason)).await);
            }
            Err(e) => {
                let reason = format!("malformed HTTP request: {e}");
                return Err(refuse(stream, peer, HttpResponse::text(400, reason)).await);
            }
        }
    }
}

/// Serves a plain (non-upgrade) request with `handler`.
pub(crate) async fn serve<S>(
    stream: &mut S,
    head: RequestHead,
    peer: SocketAddr,
    secure: bool,
    handler: &dyn HttpHandler,
) -> Result<(), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if head.header("Transfer-Encoding").is_some() {
        let response = HttpResponse::text(411, "send the request body with Content-Length\n");
        return Err(refuse(stream, peer, response).await);
    }
    let length = match head
        .header("Content-Length")
        .map(|v| v.trim().parse::<usize>())
    {
        None => 0,
        Some(Ok(length)) if length <= MAX_BODY_SIZE => length,
        Some(Ok(_)) => {
            let response = HttpResponse::text(
                413,
                format!("request body larger than {MAX_BODY_SIZE} bytes\n"),
            );
            return Err(refuse(stream, peer, response).await);
        }
        Some(Err(_)) => {
            let response = HttpResponse::text(400, "invalid Content-Length\n");
            return Err(refuse(stream, peer, response).await);
        }
    };
    let mut body = head.leftover;
    body.truncate(length);
    if body.len() < length {
        let start = body.len();
        body.resize(length, 0);
        stream
            .read_exact(&mut body[start..])
            .await
            .map_err(|source| TransportError::Io { peer, source })?;
    }
    let request = HttpRequest {
        method: head.method,
        path: head.path,
        headers: head.headers,
        body,
        remote_addr: peer,
        secure,
    };
    let head_only = request.method == "HEAD";
    let response = handler.handle(request).await;
    write_response(stream, &response, head_only)
        .await
        .map_err(|source| TransportError::Io { peer, source })
}

/// Writes `response`, closes the connection and returns the error that
/// reports the refusal.
pub(crate) async fn refuse<S>(
    stream: &mut S,
    peer: SocketAddr,
    response: HttpResponse,
) -> TransportError
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The peer may already be gone; the refusal is what gets reported.
    if write_response(stream, &response, false).await.is_ok() {
        // Closing a socket with unread input sends a reset, which can destroy
        // the response before the peer reads it: read and discard a little.
        let _ = tokio::time::timeout(LINGER, drain(stream)).await;
    }
    TransportError::Refused {
        peer,
        status: response.status,
        reason: String::from_utf8_lossy(&response.body).trim().to_owned(),
    }
}

/// Reads and discards input until end of stream, an error or [`MAX_DRAIN`].
async fn drain<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut buf = [0u8; 1024];
    let mut total = 0;
    while total < MAX_DRAIN {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// Writes a complete response (without the body for HEAD) and shuts the
/// stream down.
async fn write_response<S>(
    stream: &mut S,
    response: &HttpResponse,
    head_only: bool,
) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let reason = StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    for (name, value) in &response.headers {
        let managed =
            name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("connection");
        let broken = [name, value].iter().any(|s| s.contains(['\r', '\n']));
        if managed || broken {
            continue;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    stream.shutdown().await
}
