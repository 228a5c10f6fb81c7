//! The [`Client`]: one connection, its state (capabilities, the selected
//! mailbox's message count, whether new mail was announced) and the
//! commands the launchpad source uses. IDLE lives in [`crate::idle`].
//!
//! Every command waits at most [`Config::command_timeout`] for each
//! response. Untagged responses are handled whenever they arrive: an
//! `EXISTS` that grows the mailbox sets [`Client::has_new_mail`] (cleared
//! by [`Client::uid_search_unseen`]), so mail announced while another
//! command ran is not missed before the next IDLE.
//!
//! STARTTLS hands the transport back: [`Client::starttls`] returns it
//! with a [`Resume`], the caller runs the TLS handshake over it, and
//! [`Resume::resume`] makes a client on the encrypted stream, with the
//! tag sequence kept and the capabilities forgotten (RFC 3501 6.2.1:
//! ask again with [`Client::capability`]).

use std::fmt;
use std::io::ErrorKind;
use std::time::Duration;

use crate::command::{self, Piece, Unsendable};
use crate::error::{Error, Result};
use crate::reader::Reader;
use crate::response::{self, Response, Status, Untagged, Value};
use crate::transport::{Transport, is_timeout};

/// Limits of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How long to wait for each response to a command (`None`: forever).
    pub command_timeout: Option<Duration>,
    /// Longest response line accepted, in bytes.
    pub max_line: usize,
    /// Largest literal (e.g. one mail) accepted, in bytes.
    pub max_literal: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            command_timeout: Some(Duration::from_secs(120)),
            max_line: 1024 * 1024,
            max_literal: 64 * 1024 * 1024,
        }
    }
}

/// A system flag the client sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `\Seen`
    Seen,
    /// `\Deleted`
    Deleted,
}

impl Flag {
    fn as_str(self) -> &'static str {
        match self {
            Flag::Seen => "\\Seen",
            Flag::Deleted => "\\Deleted",
        }
    }
}

/// What SELECT reported about the mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// Number of messages.
    pub exists: u32,
    /// Number of messages with `\Recent`.
    pub recent: u32,
    /// `UIDVALIDITY`, if sent.
    pub uid_validity: Option<u32>,
    /// `UIDNEXT`, if sent.
    pub uid_next: Option<u32>,
    /// Selected read-only (`[READ-ONLY]`): flags cannot be stored.
    pub read_only: bool,
}

/// The completion of a command: the untagged data it brought and the
/// tagged OK's response code.
pub(crate) struct Completion {
    pub(crate) untagged: Vec<Untagged>,
    pub(crate) code: Option<String>,
}

/// An IMAP connection.
pub struct Client<T> {
    pub(crate) transport: T,
    pub(crate) reader: Reader,
    pub(crate) config: Config,
    next_tag: u32,
    capabilities: Vec<String>,
    exists: u32,
    new_mail: bool,
    bye: Option<String>,
    /// The read timeout last given to the transport.
    read_timeout: Option<Option<Duration>>,
}

impl<T> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("next_tag", &self.next_tag)
            .field("capabilities", &self.capabilities)
            .field("exists", &self.exists)
            .field("new_mail", &self.new_mail)
            .finish_non_exhaustive()
    }
}

/// What a client needs to go on after the TLS handshake of STARTTLS.
#[derive(Debug, Clone)]
pub struct Resume {
    config: Config,
    next_tag: u32,
}

impl Resume {
    /// A client over `transport` (the TLS stream); capabilities unknown.
    pub fn resume<U: Transport>(self, transport: U) -> Client<U> {
        let mut client = Client::new(transport, self.config);
        client.next_tag = self.next_tag;
        client
    }
}

impl<T: Transport> Client<T> {
    /// Reads the server's greeting, with the default [`Config`].
    pub fn connect(transport: T) -> Result<Self> {
        Self::connect_with(transport, Config::default())
    }

    /// Reads the server's greeting (`OK` or `PREAUTH`; `BYE` is an error).
    pub fn connect_with(transport: T, config: Config) -> Result<Self> {
        let mut client = Self::new(transport, config);
        match client.read_response("greeting", config.command_timeout)? {
            Response::Untagged(Untagged::Status {
                status: Status::Ok | Status::PreAuth,
                code,
                ..
            }) => {
                if let Some(caps) = code.as_deref().and_then(response::code_capabilities) {
                    client.capabilities = caps;
                }
                Ok(client)
            }
            Response::Untagged(Untagged::Status {
                status: Status::Bye,
                text,
                ..
            }) => Err(Error::Greeting(text)),
            other => Err(Error::Protocol(format!("not an IMAP greeting: {other:?}"))),
        }
    }

    fn new(transport: T, config: Config) -> Self {
        Self {
            transport,
            reader: Reader::new(config.max_line, config.max_literal),
            config,
            next_tag: 1,
            capabilities: Vec::new(),
            exists: 0,
            new_mail: false,
            bye: None,
            read_timeout: None,
        }
    }

    /// The capabilities last announced (greeting, CAPABILITY, LOGIN).
    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }

    /// Whether `name` (e.g. `IDLE`, `STARTTLS`) was announced.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(name))
    }

    /// Whether the server announced new mail (an `EXISTS` growing the
    /// mailbox) since the last [`Client::uid_search_unseen`].
    pub fn has_new_mail(&self) -> bool {
        self.new_mail
    }

    /// Asks for the capabilities.
    pub fn capability(&mut self) -> Result<&[String]> {
        self.run("CAPABILITY", vec![Piece::Text(b"CAPABILITY".to_vec())])?;
        Ok(&self.capabilities)
    }

    /// Sends STARTTLS and hands back the transport for the TLS handshake.
    /// On any failure the connection is dropped: never go on in plain text.
    /// Needs STARTTLS among the known capabilities (call
    /// [`Client::capability`] first if the greeting did not list them).
    pub fn starttls(mut self) -> Result<(T, Resume)> {
        if !self.has_capability("STARTTLS") {
            return Err(Error::Unsupported("STARTTLS"));
        }
        self.run("STARTTLS", vec![Piece::Text(b"STARTTLS".to_vec())])?;
        if self.reader.buffered() > 0 {
            return Err(Error::Protocol(
                "the server sent data after STARTTLS's OK, before the TLS handshake (refused: possible injection)".into(),
            ));
        }
        let resume = Resume {
            config: self.config,
            next_tag: self.next_tag,
        };
        Ok((self.transport, resume))
    }

    /// Logs in. Neither the password nor the user name ever appears in
    /// an error; a server text that echoes the password is scrubbed.
    /// Capabilities sent with the OK replace the known ones; a server that
    /// sends none leaves the pre-login list (ask again if it matters).
    pub fn login(&mut self, user: &str, password: &str) -> Result<()> {
        if self.has_capability("LOGINDISABLED") {
            return Err(Error::Unsupported(
                "LOGIN here (LOGINDISABLED: use STARTTLS first)",
            ));
        }
        let invalid = |what| {
            move |Unsendable::Nul| Error::InvalidArgument {
                what,
                reason: "it contains NUL",
            }
        };
        let pieces = vec![
            Piece::Text(b"LOGIN ".to_vec()),
            command::astring(user.as_bytes()).map_err(invalid("user name"))?,
            Piece::Text(b" ".to_vec()),
            command::astring(password.as_bytes()).map_err(invalid("password"))?,
        ];
        self.run("LOGIN", pieces)
            .map(drop)
            .map_err(|e| scrub(e, password))
    }

    /// Selects a mailbox (e.g. `INBOX`). Names are 7-bit ASCII: modified
    /// UTF-7 for other names is not implemented.
    pub fn select(&mut self, mailbox: &str) -> Result<Mailbox> {
        if !mailbox.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(Error::InvalidArgument {
                what: "mailbox",
                reason: "only printable ASCII names are supported",
            });
        }
        let name = command::astring(mailbox.as_bytes()).map_err(|_| Error::InvalidArgument {
            what: "mailbox",
            reason: "it contains NUL",
        })?;
        self.exists = 0;
        let done = self.run("SELECT", vec![Piece::Text(b"SELECT ".to_vec()), name])?;
        let mut mailbox = Mailbox {
            read_only: done.code.as_deref() == Some("READ-ONLY"),
            ..Mailbox::default()
        };
        for u in &done.untagged {
            match u {
                Untagged::Exists(n) => mailbox.exists = *n,
                Untagged::Recent(n) => mailbox.recent = *n,
                Untagged::Status {
                    status: Status::Ok,
                    code: Some(code),
                    ..
                } => {
                    let (name, value) = code.split_once(' ').unwrap_or((code, ""));
                    match name.to_ascii_uppercase().as_str() {
                        "UIDVALIDITY" => mailbox.uid_validity = value.trim().parse().ok(),
                        "UIDNEXT" => mailbox.uid_next = value.trim().parse().ok(),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        self.new_mail = false;
        Ok(mailbox)
    }

    /// The UIDs of the unseen messages, ascending. Clears
    /// [`Client::has_new_mail`].
    pub fn uid_search_unseen(&mut self) -> Result<Vec<u32>> {
        self.new_mail = false;
        let done = self.run(
            "UID SEARCH",
            vec![Piece::Text(b"UID SEARCH UNSEEN".to_vec())],
        )?;
        let mut uids: Vec<u32> = done
            .untagged
            .into_iter()
            .flat_map(|u| match u {
                Untagged::Search(uids) => uids,
                _ => Vec::new(),
            })
            .collect();
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// The whole message with this UID (`BODY.PEEK[]`: not marked seen),
    /// or `None` if the mailbox no longer has it.
    pub fn uid_fetch_body(&mut self, uid: u32) -> Result<Option<Vec<u8>>> {
        let done = self.run(
            "UID FETCH",
            vec![Piece::Text(
                format!("UID FETCH {uid} BODY.PEEK[]").into_bytes(),
            )],
        )?;
        let mut without_uid = Vec::new();
        for u in done.untagged {
            let Untagged::Fetch { items, .. } = u else {
                continue;
            };
            let uid_item = items
                .iter()
                .find(|(n, _)| n == "UID")
                .map(|(_, v)| v.clone());
            let Some(body) = items
                .into_iter()
                .find(|(n, _)| n == "BODY[]")
                .map(|(_, v)| v)
            else {
                continue;
            };
            let body = match body {
                Value::String(bytes) => Some(bytes),
                Value::Nil => None,
                other => {
                    return Err(Error::Protocol(format!(
                        "BODY[] is not a string: {other:?}"
                    )));
                }
            };
            match uid_item {
                Some(Value::Number(n)) if n == u64::from(uid) => return Ok(body),
                Some(_) => {}
                None => without_uid.push(body),
            }
        }
        // A server that omits UID in a UID FETCH answer (against RFC 3501):
        // accept its only body.
        Ok(if without_uid.len() == 1 {
            without_uid.pop().flatten()
        } else {
            None
        })
    }

    /// Adds flags to the message with this UID (`UID STORE +FLAGS`).
    pub fn uid_store_flags(&mut self, uid: u32, flags: &[Flag]) -> Result<()> {
        let flags: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
        let line = format!("UID STORE {uid} +FLAGS ({})", flags.join(" "));
        self.run("UID STORE", vec![Piece::Text(line.into_bytes())])
            .map(drop)
    }

    /// Removes the messages flagged `\Deleted`.
    pub fn expunge(&mut self) -> Result<()> {
        self.run("EXPUNGE", vec![Piece::Text(b"EXPUNGE".to_vec())])
            .map(drop)
    }

    /// Does nothing, and so lets the server report new mail: the poll of
    /// a server without IDLE. Returns [`Client::has_new_mail`].
    pub fn noop(&mut self) -> Result<bool> {
        self.run("NOOP", vec![Piece::Text(b"NOOP".to_vec())])?;
        Ok(self.new_mail)
    }

    /// Logs out and hands back the transport (to close TLS cleanly).
    pub fn logout(mut self) -> Result<T> {
        match self.run("LOGOUT", vec![Piece::Text(b"LOGOUT".to_vec())]) {
            Ok(_) | Err(Error::Closed(Some(_))) => Ok(self.transport),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn tag(&mut self) -> String {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Sends one command (tag added) and waits for its completion;
    /// tagged `NO`/`BAD` become errors.
    pub(crate) fn run(&mut self, command: &'static str, pieces: Vec<Piece>) -> Result<Completion> {
        let tag = self.tag();
        let mut untagged = Vec::new();
        let mut line = format!("{tag} ").into_bytes();
        let literal_plus = self.has_capability("LITERAL+");
        for piece in pieces {
            match piece {
                Piece::Text(text) => line.extend_from_slice(&text),
                Piece::Literal(bytes) if literal_plus => {
                    line.extend_from_slice(format!("{{{}+}}\r\n", bytes.len()).as_bytes());
                    line.extend_from_slice(&bytes);
                }
                Piece::Literal(bytes) => {
                    line.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
                    self.send(&line)?;
                    line.clear();
                    self.await_continuation(command, &tag, &mut untagged)?;
                    line.extend_from_slice(&bytes);
                }
            }
        }
        line.extend_from_slice(b"\r\n");
        self.send(&line)?;
        self.complete(command, &tag, untagged)
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.transport.write_all(bytes)?;
        self.transport.flush()?;
        Ok(())
    }

    /// Reads until the server asks for the rest of the command.
    pub(crate) fn await_continuation(
        &mut self,
        command: &'static str,
        tag: &str,
        untagged: &mut Vec<Untagged>,
    ) -> Result<()> {
        loop {
            match self.read_response(command, self.config.command_timeout)? {
                Response::Continuation(_) => return Ok(()),
                Response::Untagged(u) => {
                    self.handle_untagged(&u);
                    untagged.push(u);
                }
                Response::Tagged {
                    tag: t,
                    status,
                    code,
                    text,
                } => return Err(self.tagged_error(command, tag, &t, status, code, text)),
            }
        }
    }

    /// Reads until the tagged completion of `tag`.
    pub(crate) fn complete(
        &mut self,
        command: &'static str,
        tag: &str,
        mut untagged: Vec<Untagged>,
    ) -> Result<Completion> {
        loop {
            match self.read_response(command, self.config.command_timeout)? {
                Response::Untagged(u) => {
                    self.handle_untagged(&u);
                    untagged.push(u);
                }
                Response::Continuation(text) => {
                    return Err(Error::Protocol(format!(
                        "{command}: unexpected continuation request {text:?}"
                    )));
                }
                Response::Tagged {
                    tag: t,
                    status: Status::Ok,
                    code,
                    ..
                } if t == tag => {
                    if let Some(caps) = code.as_deref().and_then(response::code_capabilities) {
                        self.capabilities = caps;
                    }
                    return Ok(Completion { untagged, code });
                }
                Response::Tagged {
                    tag: t,
                    status,
                    code,
                    text,
                } => return Err(self.tagged_error(command, tag, &t, status, code, text)),
            }
        }
    }

    fn tagged_error(
        &self,
        command: &'static str,
        tag: &str,
        got: &str,
        status: Status,
        code: Option<String>,
        text: String,
    ) -> Error {
        if got != tag {
            return Error::Protocol(format!(
                "{command}: a completion for tag {got:?}, expected {tag:?}"
            ));
        }
        let text = match code {
            Some(code) => format!("[{code}] {text}"),
            None => text,
        };
        match status {
            Status::Bad => Error::Bad { command, text },
            _ => Error::No { command, text },
        }
    }

    /// Updates the connection state from untagged data.
    pub(crate) fn handle_untagged(&mut self, untagged: &Untagged) {
        match untagged {
            Untagged::Capability(caps) => self.capabilities = caps.clone(),
            Untagged::Status {
                status: Status::Bye,
                text,
                ..
            } => self.bye = Some(text.clone()),
            Untagged::Status {
                code: Some(code), ..
            } => {
                if let Some(caps) = response::code_capabilities(code) {
                    self.capabilities = caps;
                }
            }
            Untagged::Exists(n) => {
                if *n > self.exists {
                    self.new_mail = true;
                }
                self.exists = *n;
            }
            Untagged::Expunge(_) => self.exists = self.exists.saturating_sub(1),
            _ => {}
        }
    }

    /// The next response, waiting at most `timeout` for each read.
    pub(crate) fn read_response(
        &mut self,
        command: &'static str,
        timeout: Option<Duration>,
    ) -> Result<Response> {
        loop {
            if let Some(raw) = self.reader.take()? {
                return response::parse(&raw);
            }
            self.set_read_timeout(timeout)?;
            match self.reader.fill(&mut self.transport) {
                Ok(0) => return Err(Error::Closed(self.bye.clone())),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(Error::Timeout { command }),
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        // A zero timeout means "forever" to some sockets; never send one.
        let timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
        if self.read_timeout != Some(timeout) {
            self.transport.set_read_timeout(timeout)?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }
}

/// Replaces the password in an error's server text (passwords shorter
/// than 4 bytes are left: replacing them would garble the text).
fn scrub(error: Error, password: &str) -> Error {
    let clean = |text: String| {
        if password.len() >= 4 {
            text.replace(password, "<password>")
        } else {
            text
        }
    };
    match error {
        Error::No { command, text } => Error::No {
            command,
            text: clean(text),
        },
        Error::Bad { command, text } => Error::Bad {
            command,
            text: clean(text),
        },
        Error::Protocol(text) => Error::Protocol(clean(text)),
        Error::Closed(text) => Error::Closed(text.map(clean)),
        other => other,
    }
}
