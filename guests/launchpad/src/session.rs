//! One IMAP session of the source: log in, select, then publish unseen
//! Launchpad mail and wait for more, until the connection fails or the
//! broker stops. Generic over the [`Transport`] and the [`Bus`] (publish
//! and log), so the same code runs in the component (over `wasi:sockets`,
//! the WIT imports) and natively in tests.

use std::collections::BTreeSet;

use imap_client::{Client, Config, Error, Flag, Transport};
use launchpad_mail::{Event, Outcome};

use crate::{Security, Settings};

/// How loud a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something was skipped or failed and is retried.
    Warn,
}

/// Why the bus did not take an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The broker is stopping: return.
    ShuttingDown,
    /// This message was refused (the reason is for the log).
    Message(String),
}

/// Where the session publishes and logs.
pub trait Bus {
    /// Publishes one event; returns once the broker took it.
    fn publish(&mut self, event: &Event) -> Result<(), Refused>;
    /// Writes one log line.
    fn log(&mut self, level: Level, text: &str);
    /// Waits between polls (a server without IDLE).
    fn sleep(&mut self, duration: std::time::Duration);
}

/// What the source remembers across sessions of one run: the mail it
/// skipped (so it is logged once), for the mailbox's `UIDVALIDITY`, and
/// the UID being fetched (a mail too large to fetch breaks the
/// connection; the next session skips it).
#[derive(Debug, Default, Clone)]
pub struct Memory {
    uid_validity: Option<u32>,
    skipped: BTreeSet<u32>,
    fetching: Option<u32>,
}

impl Memory {
    /// Whether this UID was skipped before.
    pub fn is_skipped(&self, uid: u32) -> bool {
        self.skipped.contains(&uid)
    }

    fn selected(&mut self, uid_validity: Option<u32>) {
        if uid_validity != self.uid_validity {
            self.skipped.clear();
            self.uid_validity = uid_validity;
        }
    }
}

/// How a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The broker is stopping.
    ShuttingDown,
}

/// How a session failed: the error, and whether it had got as far as
/// SELECT (a working server and login: the reconnect delay starts over).
#[derive(Debug)]
pub struct Failed {
    /// What failed.
    pub error: Error,
    /// The session had selected the mailbox.
    pub selected: bool,
}

/// What became of one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Published: mark it seen.
    Published,
    /// Not Launchpad mail, broken, or refused: leave it unseen.
    Skipped,
    /// The broker is stopping.
    ShuttingDown,
}

/// Turns one fetched mail into a publish, logging what is skipped and why.
pub fn handle_mail(uid: u32, mail: &[u8], bus: &mut impl Bus) -> Handled {
    match launchpad_mail::parse(mail) {
        Ok(Outcome::Event(event)) => match bus.publish(&event) {
            Ok(()) => {
                bus.log(
                    Level::Debug,
                    &format!("mail UID {uid} published to {}", event.topic),
                );
                Handled::Published
            }
            Err(Refused::ShuttingDown) => Handled::ShuttingDown,
            Err(Refused::Message(why)) => {
                bus.log(
                    Level::Warn,
                    &format!(
                        "mail UID {uid} for {} not published, left unseen: {why}",
                        event.topic
                    ),
                );
                Handled::Skipped
            }
        },
        Ok(Outcome::NotLaunchpad) => {
            bus.log(
                Level::Debug,
                &format!("mail UID {uid} is not from Launchpad: left unseen and untouched"),
            );
            Handled::Skipped
        }
        Err(e) => {
            bus.log(
                Level::Warn,
                &format!("mail UID {uid} skipped, left unseen: {e}"),
            );
            Handled::Skipped
        }
    }
}

/// Runs one session over `transport` (connected, not yet greeted).
pub fn run<T: Transport>(
    transport: T,
    settings: &Settings,
    bus: &mut impl Bus,
    memory: &mut Memory,
) -> Result<Ended, Failed> {
    let mut selected = false;
    let result = session(transport, settings, bus, memory, &mut selected);
    if let Err(Error::LiteralTooLarge { size, limit }) = &result {
        if let Some(uid) = memory.fetching.take() {
            bus.log(
                Level::Warn,
                &format!(
                    "mail UID {uid} skipped, left unseen: {size} bytes, larger than \
                     max_mail_bytes = {limit}"
                ),
            );
            memory.skipped.insert(uid);
        }
    }
    memory.fetching = None;
    result.map_err(|error| Failed { error, selected })
}

fn session<T: Transport>(
    transport: T,
    settings: &Settings,
    bus: &mut impl Bus,
    memory: &mut Memory,
    selected: &mut bool,
) -> Result<Ended, Error> {
    let config = Config {
        command_timeout: Some(settings.command_timeout),
        max_literal: settings.max_mail_bytes,
        ..Config::default()
    };
    match settings.security {
        Security::Plain => serve(
            Client::connect_with(transport, config)?,
            settings,
            bus,
            memory,
            selected,
        ),
        #[cfg(feature = "tls")]
        Security::Imaps => {
            let tls = crate::tls::handshake(
                transport,
                tls_settings(settings)?,
                settings.command_timeout,
            )?;
            serve(
                Client::connect_with(tls, config)?,
                settings,
                bus,
                memory,
                selected,
            )
        }
        #[cfg(feature = "tls")]
        Security::StartTls => {
            let mut imap = Client::connect_with(transport, config)?;
            if !imap.has_capability("STARTTLS") {
                imap.capability()?;
            }
            let (plain, resume) = imap.starttls()?;
            let tls =
                crate::tls::handshake(plain, tls_settings(settings)?, settings.command_timeout)?;
            serve(resume.resume(tls), settings, bus, memory, selected)
        }
        #[cfg(not(feature = "tls"))]
        Security::Imaps | Security::StartTls => Err(Error::Unsupported(
            "TLS in this build (the launchpad crate's `tls` feature is off)",
        )),
    }
}

#[cfg(feature = "tls")]
fn tls_settings(settings: &Settings) -> Result<&crate::tls::TlsSettings, Error> {
    settings
        .tls
        .as_ref()
        .ok_or_else(|| Error::Protocol("no TLS settings for a TLS connection".into()))
}

/// After the greeting (and TLS): log in, select, publish, wait; repeat.
fn serve<T: Transport>(
    mut imap: Client<T>,
    settings: &Settings,
    bus: &mut impl Bus,
    memory: &mut Memory,
    selected: &mut bool,
) -> Result<Ended, Error> {
    if imap.capabilities().is_empty() {
        imap.capability()?;
    }
    imap.login(&settings.user, &settings.password)?;
    // Servers may announce more after login (RFC 3501 6.2.3).
    imap.capability()?;
    let mailbox = imap.select(&settings.mailbox)?;
    if mailbox.read_only {
        return Err(Error::Protocol(format!(
            "mailbox {} was selected read-only: mail cannot be marked seen",
            settings.mailbox
        )));
    }
    *selected = true;
    memory.selected(mailbox.uid_validity);
    let idle = settings.idle && imap.has_capability("IDLE");
    bus.log(
        Level::Info,
        &format!(
            "logged in to {} as {} ({}); {} has {} messages; {}",
            settings.address,
            settings.user,
            match settings.security {
                Security::Plain => "plain IMAP",
                Security::StartTls => "STARTTLS",
                Security::Imaps => "IMAPS",
            },
            settings.mailbox,
            mailbox.exists,
            if idle {
                "waiting for new mail with IDLE".to_owned()
            } else {
                format!("polling every {} s", settings.poll.as_secs())
            }
        ),
    );
    loop {
        let mut expunge = false;
        for uid in imap.uid_search_unseen()? {
            if memory.is_skipped(uid) {
                continue;
            }
            memory.fetching = Some(uid);
            let mail = imap.uid_fetch_body(uid)?;
            memory.fetching = None;
            let Some(mail) = mail else {
                // Expunged meanwhile by someone else.
                continue;
            };
            match handle_mail(uid, &mail, bus) {
                Handled::Published => {
                    let flags: &[Flag] = if settings.delete {
                        &[Flag::Seen, Flag::Deleted]
                    } else {
                        &[Flag::Seen]
                    };
                    imap.uid_store_flags(uid, flags)?;
                    expunge |= settings.delete;
                }
                Handled::Skipped => {
                    memory.skipped.insert(uid);
                }
                Handled::ShuttingDown => return Ok(Ended::ShuttingDown),
            }
        }
        if expunge {
            imap.expunge()?;
        }
        if idle {
            imap.idle(settings.idle_max)?;
        } else {
            bus.sleep(settings.poll);
            imap.noop()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        published: Vec<String>,
        logs: Vec<(Level, String)>,
        refuse: Option<Refused>,
    }

    impl Bus for Recorder {
        fn publish(&mut self, event: &Event) -> Result<(), Refused> {
            if let Some(refused) = self.refuse.clone() {
                return Err(refused);
            }
            self.published.push(event.topic.clone());
            Ok(())
        }

        fn log(&mut self, level: Level, text: &str) {
            self.logs.push((level, text.to_owned()));
        }

        fn sleep(&mut self, _: Duration) {}
    }

    const BUG: &[u8] = b"X-Generated-By: Launchpad (canonical.com); Revision=\"1\"\r\n\
        X-Launchpad-Notification-Type: bug\r\n\
        X-Launchpad-Bug: product=nova; status=New; importance=Undecided; assignee=None;\r\n\
        Subject: [Bug 42] [NEW] It broke\r\n\r\nbody\r\n";

    #[test]
    fn a_bug_mail_is_published() {
        let mut bus = Recorder::default();
        assert_eq!(handle_mail(7, BUG, &mut bus), Handled::Published);
        assert_eq!(bus.published, ["launchpad/nova/bug/42"]);
    }

    #[test]
    fn other_mail_and_broken_mail_are_skipped_and_logged() {
        let mut bus = Recorder::default();
        assert_eq!(
            handle_mail(
                3,
                b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n",
                &mut bus
            ),
            Handled::Skipped
        );
        assert_eq!(bus.logs[0].0, Level::Debug);
        assert!(bus.logs[0].1.contains("UID 3 is not from Launchpad"));
        let broken = b"X-Generated-By: Launchpad\r\nX-Launchpad-Notification-Type: bug\r\n\
            Subject: no number\r\n\r\nbody\r\n";
        assert_eq!(handle_mail(4, broken, &mut bus), Handled::Skipped);
        assert_eq!(bus.logs[1].0, Level::Warn);
        assert!(
            bus.logs[1]
                .1
                .starts_with("mail UID 4 skipped, left unseen: no \"[Bug N]\""),
            "{}",
            bus.logs[1].1
        );
        assert!(bus.published.is_empty());
    }

    #[test]
    fn refusals_are_logged_and_shutdown_is_passed_on() {
        let mut bus = Recorder {
            refuse: Some(Refused::Message("too large".into())),
            ..Recorder::default()
        };
        assert_eq!(handle_mail(5, BUG, &mut bus), Handled::Skipped);
        assert!(
            bus.logs[0]
                .1
                .contains("launchpad/nova/bug/42 not published")
        );
        bus.refuse = Some(Refused::ShuttingDown);
        assert_eq!(handle_mail(5, BUG, &mut bus), Handled::ShuttingDown);
    }

    #[test]
    fn skipped_uids_are_forgotten_when_uidvalidity_changes() {
        let mut memory = Memory::default();
        memory.selected(Some(1));
        memory.skipped.insert(9);
        memory.selected(Some(1));
        assert!(memory.is_skipped(9));
        memory.selected(Some(2));
        assert!(!memory.is_skipped(9));
    }
}
