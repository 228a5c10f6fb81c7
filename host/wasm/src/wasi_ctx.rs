//! The WASI context of a policy component: nothing granted.
//!
//! The Rust standard library for wasm32-wasip2 imports WASI 0.2 (clocks,
//! random, environment, stdio, filesystem, sockets), so the linker provides
//! those interfaces, but the context behind them holds nothing: no
//! preopened directories (every filesystem call fails), an empty
//! environment and no arguments, stdin closed, no TCP, no UDP, no name
//! lookup, and every socket address refused. Clocks and random numbers
//! are the only things a policy gets from WASI.
//!
//! Stdout and stderr are not the host's: what a guest writes there (a
//! panic message, a stray `println!`) is discarded unless the operator
//! grants `stdio = "log"` ([`StdioMode::Log`]); then it becomes a `tracing`
//! event with the component's name, one per line, truncated to
//! [`MAX_LINE`] bytes.
//!
//! This module must not grant anything; grants for sources (network,
//! files) belong in their own modules, each parsed and checked at load.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// The longest stdout or stderr line kept in the log, in bytes; the rest
/// of a longer line is dropped.
pub const MAX_LINE: usize = 1024;

/// Where a component's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StdioMode {
    /// Nowhere: the default, as `wit/log.wit` promises (a component
    /// reports through the `log` import).
    #[default]
    Discard,
    /// Into the host's log: stdout at INFO, stderr at WARN, with the
    /// component's name. Granted per component with `stdio = "log"`.
    Log,
}

/// Builds the context for one instance of `component`.
pub(crate) fn policy_ctx(component: &Arc<str>, stdio: StdioMode) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    if stdio == StdioMode::Log {
        builder
            .stdout(GuestOutput::new(component.clone(), Stream::Stdout))
            .stderr(GuestOutput::new(component.clone(), Stream::Stderr));
    }
    builder.build()
}

/// Sends a context's stdout and stderr into the log, as [`policy_ctx`]
/// does with [`StdioMode::Log`]; used for sources granted `stdio = "log"`.
pub(crate) fn log_stdio(builder: &mut WasiCtxBuilder, component: &Arc<str>) {
    builder
        .stdout(GuestOutput::new(component.clone(), Stream::Stdout))
        .stderr(GuestOutput::new(component.clone(), Stream::Stderr));
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// A guest's stdout or stderr, written line by line into `tracing`.
#[derive(Clone)]
struct GuestOutput {
    component: Arc<str>,
    stream: Stream,
}

impl GuestOutput {
    fn new(component: Arc<str>, stream: Stream) -> Self {
        GuestOutput { component, stream }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger {
            output: self.clone(),
            line: Vec::new(),
            overflow: false,
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter(LineLogger {
            output: self.clone(),
            line: Vec::new(),
            overflow: false,
        }))
    }
}

/// Splits written bytes into lines and logs each complete one.
struct LineLogger {
    output: GuestOutput,
    line: Vec<u8>,
    /// The current line went past [`MAX_LINE`]; the rest is dropped.
    overflow: bool,
}

impl LineLogger {
    fn push(&mut self, bytes: &[u8]) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let (text, ends_line) = match chunk.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (chunk, false),
            };
            let room = MAX_LINE.saturating_sub(self.line.len());
            if text.len() > room {
                self.overflow = true;
            }
            self.line.extend_from_slice(&text[..text.len().min(room)]);
            if ends_line {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        if self.line.is_empty() && !self.overflow {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        let component = &*self.output.component;
        let truncated = self.overflow;
        match self.output.stream {
            Stream::Stdout => {
                tracing::info!(target: "firehose_wasm::guest", component, stream = "stdout", truncated, "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(target: "firehose_wasm::guest", component, stream = "stderr", truncated, "{text}")
            }
        }
        self.line.clear();
        self.overflow = false;
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

/// The same as a tokio `AsyncWrite`, for WASI 0.3 style streams.
struct LineWriter(LineLogger);

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.0.emit();
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logger() -> LineLogger {
        LineLogger {
            output: GuestOutput::new("t".into(), Stream::Stdout),
            line: Vec::new(),
            overflow: false,
        }
    }

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let mut l = logger();
        l.push(b"hel");
        assert_eq!(l.line, b"hel");
        l.push(b"lo\nwor");
        assert_eq!(l.line, b"wor");
    }

    #[test]
    fn long_lines_are_truncated_to_max_line() {
        let mut l = logger();
        l.push(&vec![b'x'; MAX_LINE * 3]);
        assert_eq!(l.line.len(), MAX_LINE);
        assert!(l.overflow);
        l.push(b"\n");
        assert!(l.line.is_empty() && !l.overflow);
    }
}
