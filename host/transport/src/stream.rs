//! [`MqttStream`]: the byte stream of one accepted connection, whatever the
//! listener kind, as a tokio `AsyncRead + AsyncWrite`.
//!
//! Plain TCP is held inline so that an idle MQTT connection costs no heap
//! beyond the socket; the large TLS and websocket states are boxed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::ws::WsStream;

/// One connection's bytes: MQTT over TCP, TLS, websocket or websocket/TLS.
#[derive(Debug)]
pub enum MqttStream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Ws(Box<WsStream<TcpStream>>),
    Wss(Box<WsStream<TlsStream<TcpStream>>>),
}

/// Runs `$body` with `$s` bound to the pinned inner stream.
macro_rules! delegate {
    ($self:ident, $s:ident => $body:expr) => {
        match $self.get_mut() {
            MqttStream::Tcp(inner) => {
                let $s = Pin::new(inner);
                $body
            }
            MqttStream::Tls(inner) => {
                let $s = Pin::new(&mut **inner);
                $body
            }
            MqttStream::Ws(inner) => {
                let $s = Pin::new(&mut **inner);
                $body
            }
            MqttStream::Wss(inner) => {
                let $s = Pin::new(&mut **inner);
                $body
            }
        }
    };
}

impl MqttStream {
    /// Resolves when a read may make progress without a buffer held in
    /// the meantime. For plain TCP this waits for the socket to become
    /// readable, so an idle connection needs no read buffer at all; TLS and
    /// websocket streams keep their own buffers and report ready at once.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            MqttStream::Tcp(inner) => inner.poll_read_ready(cx),
            MqttStream::Tls(_) | MqttStream::Ws(_) | MqttStream::Wss(_) => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for MqttStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for MqttStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MqttStream::Tcp(inner) => inner.is_write_vectored(),
            MqttStream::Tls(inner) => inner.is_write_vectored(),
            MqttStream::Ws(_) | MqttStream::Wss(_) => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
