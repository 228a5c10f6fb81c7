//! MQTT over websocket: the upgrade handshake and the byte stream over frames.
//!
//! `accept_or_serve` reads the HTTP request head on a `ws`/`wss` connection.
//! A websocket upgrade (any path, as Mosquitto does) is answered `101` here,
//! negotiating the `mqtt` or `mqttv3.1` subprotocol; any other request goes to
//! the [`HttpHandler`] (see [`crate::http`]).
//!
//! [`WsStream`] then turns the websocket into the plain byte stream the MQTT
//! codec reads: binary frames are concatenated (MQTT packets may span frames,
//! or share one), each write becomes one binary frame. Text frames are an
//! error; a close frame is end of stream. Pings are answered as part of
//! reading, so pongs go out even when the broker only reads.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::error::TransportError;
use crate::http::{self, HttpHandler, HttpResponse, RequestHead};

/// The subprotocols we speak, in order of preference.
pub const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// The largest websocket frame or message accepted. The broker enforces
/// MQTT's own maximum packet size on top of this.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// The receive buffer each websocket allocates up front; small, because the
/// broker holds many idle connections.
const READ_BUFFER_SIZE: usize = 4 * 1024;

/// Reads the request head on a websocket listener. Returns the websocket and
/// the path it was opened on, or `None` when the request was plain HTTP and
/// `handler` answered it.
pub(crate) async fn accept_or_serve<S>(
    mut stream: S,
    peer: SocketAddr,
    secure: bool,
    handler: &dyn HttpHandler,
) -> Result<Option<(WsStream<S>, String)>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = http::read_head(&mut stream, peer).await?;
    let wants_websocket = head
        .tokens("Upgrade")
        .any(|t| t.eq_ignore_ascii_case("websocket"));
    if !wants_websocket {
        http::serve(&mut stream, head, peer, secure, handler).await?;
        return Ok(None);
    }
    let accept = match negotiate(&head) {
        Ok(accept) => accept,
        Err(response) => return Err(http::refuse(&mut stream, peer, response).await),
    };
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept.key
    );
    if let Some(protocol) = accept.protocol {
        response.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    response.push_str("\r\n");
    let io_error = |source| TransportError::Io { peer, source };
    stream
        .write_all(response.as_bytes())
        .await
        .map_err(io_error)?;
    stream.flush().await.map_err(io_error)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(0)
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
        .max_message_size(Some(MAX_MESSAGE_SIZE));
    let ws =
        WebSocketStream::from_partially_read(stream, head.leftover, Role::Server, Some(config))
            .await;
    Ok(Some((
        WsStream {
            inner: ws,
            pending: Bytes::new(),
        },
        head.path,
    )))
}

/// The answer to a valid upgrade request.
#[derive(Debug, PartialEq, Eq)]
struct Accept {
    key: String,
    protocol: Option<&'static str>,
}

/// Checks an upgrade request; the error is the response that refuses it.
fn negotiate(head: &RequestHead) -> Result<Accept, HttpResponse> {
    if head.method != "GET" {
        return Err(HttpResponse::text(
            400,
            "a websocket upgrade must be a GET\n",
        ));
    }
    if !head
        .tokens("Connection")
        .any(|t| t.eq_ignore_ascii_case("upgrade"))
    {
        return Err(HttpResponse::text(
            400,
            "a websocket upgrade needs Connection: upgrade\n",
        ));
    }
    if head.header("Sec-WebSocket-Version").map(str::trim) != Some("13") {
        return Err(
            HttpResponse::text(426, "only websocket version 13 is supported\n")
                .with_header("Sec-WebSocket-Version", "13"),
        );
    }
    let Some(key) = head
        .header("Sec-WebSocket-Key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
    else {
        return Err(HttpResponse::text(
            400,
            "a websocket upgrade needs Sec-WebSocket-Key\n",
        ));
    };
    let protocol = SUBPROTOCOLS.into_iter().find(|supported| {
        head.tokens("Sec-WebSocket-Protocol")
            .any(|offered| offered.eq_ignore_ascii_case(supported))
    });
    if protocol.is_none() && head.tokens("Sec-WebSocket-Protocol").next().is_some() {
        let offered: Vec<&str> = head.tokens("Sec-WebSocket-Protocol").collect();
        return Err(HttpResponse::text(
            400,
            format!(
                "unsupported websocket subprotocol {}; supported: {}\n",
                offered.join(", "),
                SUBPROTOCOLS.join(", ")
            ),
        ));
    }
    Ok(Accept {
        key: derive_accept_key(key.as_bytes()),
        protocol,
    })
}

/// A websocket carrying MQTT bytes, read and written as a byte stream.
pub struct WsStream<S> {
    inner: WebSocketStream<S>,
    /// The unread rest of the last binary frame.
    pending: Bytes,
}

impl<S> std::fmt::Debug for WsStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsStream")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            // Polling again after a ping is what writes and flushes the pong
            // tungstenite queued; after a close it ends the stream.
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text websocket frame: MQTT must be sent in binary frames",
                    )));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_))) => {}
                Some(Ok(Message::Frame(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut inner = Pin::new(&mut self.inner);
        ready!(inner.as_mut().poll_ready(cx)).map_err(to_io)?;
        inner
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(to_io)
    }

    /// Sends a close frame, then shuts down the underlying stream.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_close(cx)).map_err(to_io)?;
        Pin::new(self.inner.get_mut()).poll_shutdown(cx)
    }
}

fn to_io(error: WsError) -> io::Error {
    match error {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, error)
        }
        WsError::Protocol(_) | WsError::Capacity(_) | WsError::Utf8(_) => {
            io::Error::new(io::ErrorKind::InvalidData, error)
        }
        other => io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request(extra: &[(&str, &str)]) -> RequestHead {
        let mut headers = vec![
            ("Host".to_owned(), "localhost".to_owned()),
            ("Upgrade".to_owned(), "websocket".to_owned()),
            ("Connection".to_owned(), "keep-alive, Upgrade".to_owned()),
            ("Sec-WebSocket-Version".to_owned(), "13".to_owned()),
            (
                "Sec-WebSocket-Key".to_owned(),
                "dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
            ),
        ];
        headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        RequestHead {
            method: "GET".to_owned(),
            path: "/mqtt".to_owned(),
            headers,
            leftover: Vec::new(),
        }
    }

    #[test]
    fn accept_key_follows_rfc_6455_example() {
        let accept = negotiate(&upgrade_request(&[])).unwrap();
        assert_eq!(accept.key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(accept.protocol, None);
    }

    #[test]
    fn mqtt_is_preferred_over_mqttv31_whatever_the_order() {
        let head = upgrade_request(&[("Sec-WebSocket-Protocol", "mqttv3.1, mqtt")]);
        assert_eq!(negotiate(&head).unwrap().protocol, Some("mqtt"));
        let head = upgrade_request(&[
            ("Sec-WebSocket-Protocol", "chat"),
            ("Sec-WebSocket-Protocol", "mqttv3.1"),
        ]);
        assert_eq!(negotiate(&head).unwrap().protocol, Some("mqttv3.1"));
    }

    #[test]
    fn unknown_subprotocol_is_refused_naming_the_supported_ones() {
        let head = upgrade_request(&[("Sec-WebSocket-Protocol", "chat, stomp")]);
        let refusal = negotiate(&head).unwrap_err();
        assert_eq!(refusal.status, 400);
        let body = String::from_utf8(refusal.body).unwrap();
        assert!(
            body.contains("chat, stomp") && body.contains("mqtt, mqttv3.1"),
            "{body}"
        );
    }

    #[test]
    fn wrong_version_gets_426_with_the_supported_version() {
        let mut head = upgrade_request(&[]);
        head.headers.retain(|(n, _)| n != "Sec-WebSocket-Version");
        head.headers
            .push(("Sec-WebSocket-Version".into(), "8".into()));
        let refusal = negotiate(&head).unwrap_err();
        assert_eq!(refusal.status, 426);
        assert!(
            refusal
                .headers
                .contains(&("Sec-WebSocket-Version".into(), "13".into()))
        );
    }
}
