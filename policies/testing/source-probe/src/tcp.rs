//! A blocking TCP client over `wasi:sockets` with the `wasip2` crate
//! (shared with `source-flood`, which includes this file).
//!
//! Rust's `std::net::TcpStream` on wasm32-wasip2 goes through wasi-libc's
//! sockets, which Debian's `wasi-libc` (a wasip1 build) does not have: a
//! guest using it does not link with the Debian toolchain. The WASI calls
//! are few, so the probe makes them directly: resolve (unless the host is
//! an IPv4 literal), create a socket, connect, and use its two streams.

use wasip2::io::streams::{InputStream, OutputStream, StreamError};
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::ip_name_lookup::resolve_addresses;
use wasip2::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use wasip2::sockets::tcp::TcpSocket;
use wasip2::sockets::tcp_create_socket::create_tcp_socket;

/// A connected socket. Field order is drop order: the streams are
/// children of the socket and go first.
pub struct Connection {
    input: InputStream,
    output: OutputStream,
    _socket: TcpSocket,
}

/// Connects to `host:port`; errors say which step failed and the WASI
/// error code (`access-denied` for what the host did not grant).
pub fn connect(addr: &str) -> Result<Connection, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr}: expected host:port"))?;
    let port: u16 = port.parse().map_err(|_| format!("{addr}: bad port"))?;
    let network = instance_network();
    let ip = match host.parse::<std::net::Ipv4Addr>() {
        Ok(v4) => {
            let [a, b, c, d] = v4.octets();
            IpAddress::Ipv4((a, b, c, d))
        }
        Err(_) => resolve(&network, host)?,
    };
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
    let socket = create_tcp_socket(family).map_err(|e| code("create socket", e))?;
    socket
        .start_connect(&network, remote)
        .map_err(|e| code(&format!("connect {addr}"), e))?;
    let ready = socket.subscribe();
    loop {
        match socket.finish_connect() {
            Ok((input, output)) => {
                drop(ready);
                return Ok(Connection {
                    input,
                    output,
                    _socket: socket,
                });
            }
            Err(ErrorCode::WouldBlock) => ready.block(),
            Err(e) => return Err(code(&format!("connect {addr}"), e)),
        }
    }
}

fn resolve(network: &wasip2::sockets::network::Network, host: &str) -> Result<IpAddress, String> {
    let stream =
        resolve_addresses(network, host).map_err(|e| code(&format!("resolve {host}"), e))?;
    loop {
        match stream.resolve_next_address() {
            Ok(Some(ip)) => return Ok(ip),
            Ok(None) => return Err(format!("resolve {host}: no address")),
            Err(ErrorCode::WouldBlock) => stream.subscribe().block(),
            Err(e) => return Err(code(&format!("resolve {host}"), e)),
        }
    }
}

fn code(what: &str, e: ErrorCode) -> String {
    format!("{what}: {} ({})", e.name(), e.message())
}

impl Connection {
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), String> {
        for chunk in bytes.chunks(4096) {
            self.output
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("write: {}", stream_error(e)))?;
        }
        Ok(())
    }

    /// Reads up to the first newline (or the end of the stream).
    pub fn read_line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        while !line.contains(&b'\n') {
            match self.input.blocking_read(1024) {
                Ok(bytes) => line.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(format!("read: {}", stream_error(e))),
            }
        }
        Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
    }

    /// Reads (and discards) until the peer closes the connection.
    #[allow(dead_code)] // source-flood shares this file and uses it
    pub fn wait_closed(&mut self) -> Result<(), String> {
        loop {
            match self.input.blocking_read(1024) {
                Ok(_) => {}
                Err(StreamError::Closed) => return Ok(()),
                Err(e) => return Err(format!("read: {}", stream_error(e))),
            }
        }
    }
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "closed".into(),
        StreamError::LastOperationFailed(error) => error.to_debug_string(),
    }
}
