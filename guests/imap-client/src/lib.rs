//! `imap-client`: a small, synchronous IMAP4rev1 (RFC 3501) client over
//! any byte transport, with what the launchpad source needs and no more:
//! CAPABILITY, STARTTLS (the caller does the TLS handshake), LOGIN,
//! SELECT, UID SEARCH UNSEEN, UID FETCH BODY.PEEK[], UID STORE +FLAGS,
//! EXPUNGE, NOOP, IDLE (RFC 2177) with a caller-chosen time bound, and
//! LOGOUT. It uses no WASI API: it runs natively in tests (over scripted
//! byte exchanges) and inside a component (over a `wasi:sockets` stream).
//!
//! The rooms:
//! - [`transport`]: the [`Transport`] trait (read, write, read timeout).
//! - [`reader`]: framing: one response line with its `{n}` literals,
//!   resumable across reads that time out.
//! - [`response`]: parsing a framed line into a [`Response`].
//! - [`command`]: encoding arguments as atoms, quoted strings or literals.
//! - [`client`]: the [`Client`] and its commands; [`idle`]: IDLE.
//! - [`error`]: what can fail ([`Error`]); no error ever carries the password.
//!
//! A source's loop, roughly:
//!
//! ```no_run
//! # use std::time::Duration;
//! # use imap_client::{Client, Flag, IdleOutcome};
//! # fn tls(t: std::net::TcpStream) -> std::io::Result<std::net::TcpStream> { Ok(t) }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tcp = std::net::TcpStream::connect("127.0.0.1:143")?;
//! let (plain, resume) = Client::connect(tcp)?.starttls()?;
//! let mut imap = resume.resume(tls(plain)?);
//! imap.capability()?;
//! imap.login("lpmqtt", "secret")?;
//! imap.select("INBOX")?;
//! loop {
//!     for uid in imap.uid_search_unseen()? {
//!         if let Some(mail) = imap.uid_fetch_body(uid)? {
//!             // ... publish `mail` ...
//!             imap.uid_store_flags(uid, &[Flag::Seen])?;
//!         }
//!     }
//!     if imap.has_capability("IDLE") {
//!         imap.idle(Duration::from_secs(29 * 60))?;
//!     } else {
//!         std::thread::sleep(Duration::from_secs(60));
//!         imap.noop()?;
//!     }
//! }
//! # }
//! ```

pub mod client;
pub mod command;
pub mod error;
pub mod idle;
pub mod reader;
pub mod response;
pub mod transport;

pub use client::{Client, Config, Flag, Mailbox, Resume};
pub use error::Error;
pub use idle::IdleOutcome;
pub use response::Response;
pub use transport::Transport;
