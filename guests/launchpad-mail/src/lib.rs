//! `launchpad-mail`: the logic of the launchpad source, as plain Rust
//! without any WASI API, so it runs natively in tests and inside the
//! component.
//!
//! One RFC 5322 mail (as fetched over IMAP) becomes one MQTT message
//! compatible with lpmqtt's: bug mail goes to
//! `launchpad/<project>/bug/<number>` with a JSON object of the
//! `X-Launchpad-Bug*` headers and the body; other Launchpad mail to
//! `launchpad/<project>/<notification-type>`; mail Launchpad did not
//! generate is left alone ([`Outcome::NotLaunchpad`]). See [`notification`]
//! for the exact JSON.
//!
//! Unlike lpmqtt it reads mail correctly: folded headers are unfolded,
//! RFC 2047 encoded words decoded, the body decoded from its transfer
//! encoding and charset (the first `text/plain` part of a multipart).
//! Broken mail is a [`MailError`] naming what is wrong, never a panic.
//!
//! The rooms, from bytes up:
//! - [`message`]: header section and body, unfolded headers.
//! - [`transfer`]: quoted-printable and base64.
//! - [`charset`]: bytes in a named charset to text (`encoding_rs`).
//! - [`encoded_word`]: RFC 2047 `=?utf-8?q?...?=` in header values.
//! - [`mime`]: `Content-Type` parameters, the text body of a (multipart) mail.
//! - [`notification`]: the Launchpad rules: topic and JSON.
//! - [`error`]: what can be wrong with a mail ([`MailError`]).
//!
//! MIME decoding is hand-written rather than taken from `mail-parser`:
//! its current release needs rustc 1.98 (newer than the 1.95/1.96
//! toolchains the project builds with), it decodes leniently where this
//! source wants a clear error for odd encodings, and the subset a
//! Launchpad notification needs is small (one text part, two transfer
//! encodings, header encoded words).

pub mod charset;
pub mod encoded_word;
pub mod error;
pub mod message;
pub mod mime;
pub mod notification;
pub mod transfer;

pub use error::MailError;
pub use notification::{Event, Outcome, TOPIC_ROOT, parse};
