//! Why a mail could not be turned into an event. Every variant says what
//! is wrong and where (header name, line, charset); none carries the
//! whole mail.

use thiserror::Error;

/// A mail that is broken, or a Launchpad mail that lacks what its kind
/// of notification needs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MailError {
    /// No bytes at all.
    #[error("the mail is empty")]
    Empty,
    /// A line of the header section that is neither `Name: value` nor a
    /// continuation of the previous header.
    #[error("header line {line} is not `Name: value`: {text:?}")]
    BadHeaderLine {
        /// Line number, from 1.
        line: usize,
        /// The start of the line.
        text: String,
    },
    /// A header value has 8-bit bytes that are not UTF-8.
    #[error("header {name} has bytes that are not UTF-8")]
    NonUtf8Header {
        /// Header name.
        name: String,
    },
    /// An RFC 2047 encoded word that cannot be decoded.
    #[error("header {name}: encoded word {word:?}: {reason}")]
    EncodedWord {
        /// Header name.
        name: String,
        /// The encoded word (shortened).
        word: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header the notification needs is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The subject of a bug mail has no `[Bug N]`.
    #[error("no \"[Bug N]\" in subject {subject:?}")]
    NoBugNumber {
        /// The decoded subject.
        subject: String,
    },
    /// A part of `X-Launchpad-Bug` that is not `key=value`.
    #[error("X-Launchpad-Bug part {0:?} is not key=value")]
    BadBugField(String),
    /// `X-Launchpad-Bug` names neither a product nor a distribution.
    #[error("X-Launchpad-Bug names no product= or distribution=: {0:?}")]
    NoProject(String),
    /// A value that cannot be a level of an MQTT topic name.
    #[error("{field} {value:?} cannot be a topic level: {reason}")]
    Topic {
        /// Where the value comes from.
        field: &'static str,
        /// The value.
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A `Content-Transfer-Encoding` this source does not decode.
    #[error("unknown Content-Transfer-Encoding {0:?}")]
    UnknownTransferEncoding(String),
    /// A base64 body that is not valid base64.
    #[error("the base64 body is not valid base64")]
    BadBase64,
    /// A charset `encoding_rs` does not know.
    #[error("unknown charset {0:?}")]
    UnknownCharset(String),
    /// Text whose bytes are not valid in its declared charset.
    #[error("the body is not valid {0}")]
    BadText(String),
    /// A multipart mail that is malformed.
    #[error("bad multipart body: {0}")]
    BadMultipart(&'static str),
    /// No `text/plain` part to take the body from.
    #[error("no text/plain part (the mail is {0})")]
    NoTextPart(String),
}
