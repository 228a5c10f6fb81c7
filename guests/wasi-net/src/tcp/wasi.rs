//! A blocking TCP connection over `wasi:sockets` (the `wasip2` crate),
//! with `std::io::Read`/`Write`, a connect timeout and read timeouts.
//!
//! Why not `std::net::TcpStream`: on wasm32-wasip2 it goes through
//! wasi-libc's sockets, which Debian's `wasi-libc` (a wasip1 build) does
//! not have, so a guest using it does not link with the Debian toolchain
//! of `guests/build` (see docs/sources.md). The WASI calls are few:
//! resolve the name (unless it is an IP literal), create a socket,
//! connect, and use the socket's two streams; waits are `wasi:io/poll`
//! on the stream and a monotonic-clock timer.
//!
//! The host grants TCP per `host:port`: a connect or name lookup it does
//! not grant fails here with `access-denied`, which the error names.
//!
//! Compiled only for wasm32.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use wasip2::clocks::monotonic_clock;
use wasip2::io::poll::{Pollable, poll};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::ip_name_lookup::resolve_addresses;
use wasip2::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    Network,
};
use wasip2::sockets::tcp::TcpSocket;
use wasip2::sockets::tcp_create_socket::create_tcp_socket;

use super::{ConnectError, code_reason};
use crate::endpoint::split_host_port;

/// Most bytes one write hands to the stream (`blocking-write-and-flush`
/// takes at most 4096).
const WRITE_CHUNK: usize = 4096;

/// A connected TCP socket. Field order is drop order: the streams are
/// children of the socket and go first.
pub struct TcpConnection {
    input: InputStream,
    output: OutputStream,
    _socket: TcpSocket,
    read_timeout: Option<Duration>,
}

/// Connects to `addr` (`host:port`), trying each address the name
/// resolves to; the name lookup and each connect may take at most
/// `timeout` (`None`: as long as they take). Errors say which step failed
/// and the WASI error code (`access-denied` for what the host did not
/// grant).
pub fn connect(addr: &str, timeout: Option<Duration>) -> Result<TcpConnection, ConnectError> {
    let (host, port) = split_host_port(addr).map_err(ConnectError::Address)?;
    let network = instance_network();
    let addresses = if let Ok(v4) = host.parse::<Ipv4Addr>() {
        let [a, b, c, d] = v4.octets();
        vec![IpAddress::Ipv4((a, b, c, d))]
    } else if let Ok(v6) = host.parse::<Ipv6Addr>() {
        let [a, b, c, d, e, f, g, h] = v6.segments();
        vec![IpAddress::Ipv6((a, b, c, d, e, f, g, h))]
    } else {
        resolve(&network, host, timeout)?
    };
    let mut last = ConnectError::Resolve {
        host: host.to_owned(),
        reason: "no address".to_owned(),
    };
    for ip in addresses {
        match connect_one(&network, addr, ip, port, timeout) {
            Ok(connection) => return Ok(connection),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn connect_one(
    network: &Network,
    addr: &str,
    ip: IpAddress,
    port: u16,
    timeout: Option<Duration>,
) -> Result<TcpConnection, ConnectError> {
    let (family, remote) = match ip {
        IpAddress::Ipv4(address) => (
            IpAddressFamily::Ipv4,
            IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address }),
        ),
        IpAddress::Ipv6(address) => (
            IpAddressFamily::Ipv6,
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port,
                flow_info: 0,
                address,
                scope_id: 0,
            }),
        ),
    };
    let socket = create_tcp_socket(family).map_err(|e| ConnectError::Socket {
        addr: addr.to_owned(),
        reason: code(e),
    })?;
    // Keep-alive lets a dead peer (a dropped forwarder, a vanished NAT
    // entry) end a connection that would otherwise wait forever. Not
    // every host allows tuning it; a refusal is harmless.
    let _ = socket.set_keep_alive_enabled(true);
    let _ = socket.set_keep_alive_idle_time(60_000_000_000);
    let failed = |e| ConnectError::Connect {
        addr: addr.to_owned(),
        reason: code(e),
    };
    socket.start_connect(network, remote).map_err(failed)?;
    let ready = socket.subscribe();
    loop {
        match socket.finish_connect() {
            Ok((input, output)) => {
                drop(ready);
                return Ok(TcpConnection {
                    input,
                    output,
                    _socket: socket,
                    read_timeout: None,
                });
            }
            Err(ErrorCode::WouldBlock) => {
                if !wait(&ready, timeout) {
                    return Err(ConnectError::TimedOut {
                        addr: addr.to_owned(),
                        // `wait` returns false only with a timeout.
                        timeout: timeout.unwrap_or_default(),
                    });
                }
            }
            Err(e) => return Err(failed(e)),
        }
    }
}

fn resolve(
    network: &Network,
    host: &str,
    timeout: Option<Duration>,
) -> Result<Vec<IpAddress>, ConnectError> {
    let failed = |reason: String| ConnectError::Resolve {
        host: host.to_owned(),
        reason,
    };
    let stream = resolve_addresses(network, host).map_err(|e| failed(code(e)))?;
    let ready = stream.subscribe();
    let mut addresses = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(ip)) => addresses.push(ip),
            Ok(None) if addresses.is_empty() => return Err(failed("no address".to_owned())),
            Ok(None) => return Ok(addresses),
            Err(ErrorCode::WouldBlock) => {
                if !wait(&ready, timeout) {
                    return Err(failed("no answer in time".to_owned()));
                }
            }
            Err(e) => return Err(failed(code(e))),
        }
    }
}

/// Waits until `pollable` is ready (`true`) or `timeout` passed (`false`).
fn wait(pollable: &Pollable, timeout: Option<Duration>) -> bool {
    let Some(timeout) = timeout else {
        pollable.block();
        return true;
    };
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let timer = monotonic_clock::subscribe_duration(nanos);
    poll(&[pollable, &timer]).contains(&0)
}

/// `name (first line of the description)` of a WASI error code.
fn code(e: ErrorCode) -> String {
    code_reason(e.name(), e.message())
}

impl TcpConnection {
    /// Bounds how long each read may wait for data; `None` is forever. A
    /// read that runs out of time fails with [`io::ErrorKind::TimedOut`].
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }
}

impl io::Read for TcpConnection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let ready = self.input.subscribe();
        loop {
            match self.input.read(buf.len() as u64) {
                Ok(bytes) if !bytes.is_empty() => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    return Ok(bytes.len());
                }
                Ok(_) => {
                    if !wait(&ready, self.read_timeout) {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no data from the server in time",
                        ));
                    }
                }
                Err(StreamError::Closed) => return Ok(0),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(io::Error::other(e.to_debug_string()));
                }
            }
        }
    }
}

impl io::Write for TcpConnection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let chunk = &buf[..buf.len().min(WRITE_CHUNK)];
        match self.output.blocking_write_and_flush(chunk) {
            Ok(()) => Ok(chunk.len()),
            Err(StreamError::Closed) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the connection is closed",
            )),
            Err(StreamError::LastOperationFailed(e)) => Err(io::Error::other(e.to_debug_string())),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Every write is flushed already.
        Ok(())
    }
}
