//! IDLE (RFC 2177): wait for the server to announce new mail, for at
//! most a time the caller chooses, so it can re-IDLE before the server's
//! 30-minute inactivity limit (29 minutes is customary) or fall back to
//! polling with NOOP where the server has no IDLE capability.

use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::response::{Response, Status, Untagged};
use crate::transport::Transport;

/// How an IDLE ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleOutcome {
    /// The server announced new mail (or had announced it before IDLE).
    NewMail,
    /// The time ran out without new mail.
    TimedOut,
}

impl<T: Transport> Client<T> {
    /// Idles until the mailbox grows (an untagged `EXISTS`) or `max` has
    /// passed, then ends the IDLE with `DONE`. Returns at once with
    /// [`IdleOutcome::NewMail`] if new mail was announced since the last
    /// search. Needs the IDLE capability.
    pub fn idle(&mut self, max: Duration) -> Result<IdleOutcome> {
        if self.has_new_mail() {
            return Ok(IdleOutcome::NewMail);
        }
        if !self.has_capability("IDLE") {
            return Err(Error::Unsupported("IDLE"));
        }
        let tag = self.tag();
        self.send(format!("{tag} IDLE\r\n").as_bytes())?;
        let mut untagged = Vec::new();
        self.await_continuation("IDLE", &tag, &mut untagged)?;
        let deadline = Instant::now() + max;
        loop {
            if self.has_new_mail() {
                break;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match self.read_response("IDLE", Some(remaining)) {
                Err(Error::Timeout { .. }) => break,
                Err(e) => return Err(e),
                Ok(Response::Untagged(u)) => self.handle_untagged(&u),
                Ok(Response::Continuation(_)) => {}
                // The server ended the IDLE itself: no DONE to send.
                Ok(Response::Tagged {
                    tag: t,
                    status: Status::Ok,
                    ..
                }) if t == tag => return Ok(self.outcome()),
                Ok(Response::Tagged {
                    tag: t,
                    status,
                    code,
                    text,
                }) => {
                    return Err(match (t == tag, status) {
                        (false, _) => Error::Protocol(format!(
                            "IDLE: a completion for tag {t:?}, expected {tag:?}"
                        )),
                        (true, Status::Bad) => Error::Bad {
                            command: "IDLE",
                            text: with_code(code, text),
                        },
                        (true, _) => Error::No {
                            command: "IDLE",
                            text: with_code(code, text),
                        },
                    });
                }
            }
        }
        self.send(b"DONE\r\n")?;
        self.complete("IDLE", &tag, Vec::<Untagged>::new())?;
        Ok(self.outcome())
    }

    fn outcome(&self) -> IdleOutcome {
        if self.has_new_mail() {
            IdleOutcome::NewMail
        } else {
            IdleOutcome::TimedOut
        }
    }
}

fn with_code(code: Option<String>, text: String) -> String {
    match code {
        Some(code) => format!("[{code}] {text}"),
        None => text,
    }
}
