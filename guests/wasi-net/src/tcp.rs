//! A blocking TCP client over `wasi:sockets`: [`connect`] (wasm32 only,
//! in `tcp/wasi.rs`) gives a [`TcpConnection`] with `std::io::Read` and
//! `Write`; its errors ([`ConnectError`]) and the line helpers for simple
//! line protocols ([`read_line`], [`read_to_close`]) are plain Rust.

use std::fmt;
use std::io::{self, Read};
use std::time::Duration;

#[cfg(target_arch = "wasm32")]
mod wasi;
#[cfg(target_arch = "wasm32")]
pub use wasi::{TcpConnection, connect};

/// Why a connect failed, by step. A `reason` is a WASI error code and the
/// first line of its description (`access-denied (Access denied.)`: what
/// the host did not grant) or says what else went wrong.
///
/// `Display` is the sources' wording (`connect <addr>: connecting:
/// <reason>`, `resolving <host>: <reason>`, ...); a caller with its own
/// wording matches on the steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The address is not `host:port`: [`split_host_port`]'s error.
    ///
    /// [`split_host_port`]: crate::endpoint::split_host_port
    Address(String),
    /// Resolving the host name failed (or gave no address in time).
    Resolve { host: String, reason: String },
    /// Creating a socket for `addr` failed.
    Socket { addr: String, reason: String },
    /// Connecting to `addr` failed.
    Connect { addr: String, reason: String },
    /// No connection to `addr` within the timeout.
    TimedOut { addr: String, timeout: Duration },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(e) => f.write_str(e),
            Self::Resolve { host, reason } => write!(f, "resolving {host}: {reason}"),
            Self::Socket { addr, reason } => {
                write!(f, "connect {addr}: creating a socket: {reason}")
            }
            Self::Connect { addr, reason } => write!(f, "connect {addr}: connecting: {reason}"),
            Self::TimedOut { addr, timeout } => write!(
                f,
                "connect {addr}: no connection within {} s",
                timeout.as_secs_f32()
            ),
        }
    }
}

impl std::error::Error for ConnectError {}

impl From<ConnectError> for String {
    fn from(e: ConnectError) -> Self {
        e.to_string()
    }
}

/// `name (first line of the description)` of a WASI error code: WASI's
/// descriptions go on with POSIX equivalents over several lines, which
/// would break a log line.
#[cfg(any(target_arch = "wasm32", test))]
fn code_reason(name: &str, description: &str) -> String {
    let first = description.lines().next().unwrap_or("").trim();
    format!("{name} ({first})")
}

/// Reads until a newline has arrived (or the stream ended) and returns
/// what came, lossily decoded, without trailing white space: one line of a
/// line protocol whose peer waits for the answer.
pub fn read_line(reader: &mut impl Read) -> io::Result<String> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 1024];
    while !line.contains(&b'\n') {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}

/// Reads and discards until the peer closes the connection.
pub fn read_to_close(reader: &mut impl Read) -> io::Result<()> {
    io::copy(reader, &mut io::sink()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_the_step() {
        let denied = code_reason(
            "access-denied",
            "Access denied.\n\nPOSIX equivalent: EACCES",
        );
        assert_eq!(denied, "access-denied (Access denied.)");
        let addr = "127.0.0.1:29418".to_owned();
        let cases = [
            (
                ConnectError::Connect {
                    addr: addr.clone(),
                    reason: denied.clone(),
                },
                "connect 127.0.0.1:29418: connecting: access-denied (Access denied.)",
            ),
            (
                ConnectError::Socket {
                    addr: addr.clone(),
                    reason: denied.clone(),
                },
                "connect 127.0.0.1:29418: creating a socket: access-denied (Access denied.)",
            ),
            (
                ConnectError::Resolve {
                    host: "gerrit.example.org".into(),
                    reason: "no answer in time".into(),
                },
                "resolving gerrit.example.org: no answer in time",
            ),
            (
                ConnectError::TimedOut {
                    addr,
                    timeout: Duration::from_secs(10),
                },
                "connect 127.0.0.1:29418: no connection within 10 s",
            ),
            (
                ConnectError::Address("\"h\": expected host:port".into()),
                "\"h\": expected host:port",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(String::from(error), text);
        }
    }

    /// Hands out its chunks one read at a time, then the end.
    struct Chunks(Vec<&'static [u8]>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let bytes = self.0.remove(0);
            buf[..bytes.len()].copy_from_slice(bytes);
            Ok(bytes.len())
        }
    }

    #[test]
    fn a_line_may_come_in_pieces_or_end_with_the_stream() {
        let mut reader = Chunks(vec![b"ec", b"ho: hi\r\n", b"next\n"]);
        assert_eq!(read_line(&mut reader).unwrap(), "echo: hi");
        assert_eq!(read_line(&mut reader).unwrap(), "next");
        assert_eq!(read_line(&mut reader).unwrap(), "");
        let mut reader = Chunks(vec![b"go"]);
        assert_eq!(read_line(&mut reader).unwrap(), "go");
    }

    #[test]
    fn read_to_close_drains_and_passes_errors_on() {
        let mut reader = Chunks(vec![b"a", b"b"]);
        read_to_close(&mut reader).unwrap();
        assert!(reader.0.is_empty());
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("reset"))
            }
        }
        assert_eq!(
            read_to_close(&mut Failing).unwrap_err().to_string(),
            "reset"
        );
    }
}
