//! What the client talks over: any `Read + Write` whose reads can be
//! bounded in time. A plain `TcpStream` is one; a TLS stream wrapping one
//! is another (implement [`Transport`] by forwarding to the socket).
//!
//! A read that runs out of time must fail with
//! [`io::ErrorKind::WouldBlock`] or [`io::ErrorKind::TimedOut`] (what
//! `std` sockets do); the client then reports a timeout, or ends an IDLE.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A byte stream to an IMAP server.
pub trait Transport: Read + Write {
    /// Bounds how long the next reads may block; `None` is forever.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
}

/// Whether an I/O error means "the read timed out".
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
