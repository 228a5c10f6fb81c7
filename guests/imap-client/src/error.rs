//! Everything that can go wrong talking to the server. Errors name the
//! command (never its arguments: a LOGIN error never shows the password,
//! and the server's text is scrubbed of it too).

use std::io;

use thiserror::Error;

/// An IMAP client error.
#[derive(Debug, Error)]
pub enum Error {
    /// Reading or writing the transport failed.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The server did not answer `command` in time.
    #[error("{command}: no answer from the server in time")]
    Timeout {
        /// The command.
        command: &'static str,
    },
    /// The server closed the connection (after `BYE` with this text, if any).
    #[error("the server closed the connection{}", .0.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    Closed(Option<String>),
    /// The greeting was `BYE` (or not an IMAP greeting).
    #[error("the server refused the connection: {0}")]
    Greeting(String),
    /// Tagged `NO`: the command failed.
    #[error("{command} failed: {text}")]
    No {
        /// The command.
        command: &'static str,
        /// The server's text (response code included).
        text: String,
    },
    /// Tagged `BAD`: the server did not accept the command.
    #[error("{command} refused as invalid by the server: {text}")]
    Bad {
        /// The command.
        command: &'static str,
        /// The server's text (response code included).
        text: String,
    },
    /// The server lacks a capability the call needs.
    #[error("the server does not support {0}")]
    Unsupported(&'static str),
    /// An argument that cannot be sent (its value is never shown).
    #[error("{what} cannot be sent: {reason}")]
    InvalidArgument {
        /// Which argument (`password`, `mailbox`, ...).
        what: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The server sent something that is not IMAP.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A response line longer than the configured limit.
    #[error("a response line is longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A literal larger than the configured limit.
    #[error("a literal of {size} bytes is larger than the limit of {limit}")]
    LiteralTooLarge {
        /// Its announced size.
        size: u64,
        /// The limit.
        limit: usize,
    },
}

/// Result with [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;
