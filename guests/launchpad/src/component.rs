//! The wit-bindgen glue: exports `firehose:bus/run`; connects to the IMAP
//! server over `wasi:sockets`, runs [`session`](crate::session) sessions
//! with the WIT `publish` and `log` imports, and reconnects with backoff
//! until the host says `shutting-down`.

use std::io::{self, Read, Write};
use std::time::Duration;

use imap_client::Transport;
use launchpad_mail::Event;
use wasi_net::TcpConnection;

use crate::session::{self, Bus, Ended, Level, Memory, Refused};
use crate::{CONFIG_KEYS, Security, Settings};

wit_bindgen::generate!({ path: "../../wit", world: "source" });

use exports::firehose::bus::run::Guest;
use firehose::bus::config;
use firehose::bus::log::{self, log};
use firehose::bus::publish::{PublishError, publish};
use firehose::bus::types::{Message, Qos};

struct Launchpad;

/// The WASI TCP connection as the IMAP client's [`Transport`] (both are
/// other crates', hence the wrapper).
struct Tcp(TcpConnection);

impl Read for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Tcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Transport for Tcp {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout);
        Ok(())
    }
}

/// The WIT imports as the session's [`Bus`].
struct Wit {
    qos: Qos,
}

impl Bus for Wit {
    fn publish(&mut self, event: &Event) -> Result<(), Refused> {
        let message = Message {
            topic: event.topic.clone(),
            payload: event.payload.clone(),
            qos: self.qos,
            retain: false,
            content_type: Some("application/json".to_owned()),
            user_properties: Vec::new(),
        };
        publish(&message).map_err(|e| match e {
            PublishError::ShuttingDown => Refused::ShuttingDown,
            PublishError::OutsidePrefix(prefix) => Refused::Message(format!(
                "outside this source's prefix {prefix} (configure prefix = \"launchpad\")"
            )),
            PublishError::InvalidTopic(rule) => Refused::Message(format!("invalid topic: {rule}")),
            PublishError::TooLarge(limit) => Refused::Message(format!(
                "{} bytes, larger than the broker's limit of {limit}",
                event.payload.len()
            )),
        })
    }

    fn log(&mut self, level: Level, text: &str) {
        let level = match level {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
        };
        log(level, text);
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

impl Guest for Launchpad {
    fn run() -> Result<(), String> {
        for warning in wasi_net::config::unknown_keys(config::keys(), CONFIG_KEYS) {
            log(log::Level::Warn, &warning);
        }
        let settings = Settings::from_config(config::get)?;
        if settings.security == Security::Plain && !settings.is_loopback() {
            log(
                log::Level::Warn,
                &format!(
                    "plain IMAP to {}: the password and the mail cross the network unencrypted",
                    settings.address
                ),
            );
        }
        let mut bus = Wit {
            qos: match settings.qos {
                0 => Qos::AtMostOnce,
                1 => Qos::AtLeastOnce,
                _ => Qos::ExactlyOnce,
            },
        };
        let mut memory = Memory::default();
        let mut backoff = settings.backoff();
        loop {
            match wasi_net::connect(&settings.address, Some(settings.connect_timeout)) {
                Ok(connection) => {
                    match session::run(Tcp(connection), &settings, &mut bus, &mut memory) {
                        Ok(Ended::ShuttingDown) => {
                            log(log::Level::Info, "the broker is stopping; returning");
                            return Ok(());
                        }
                        Err(failed) => {
                            log(
                                log::Level::Warn,
                                &format!(
                                    "IMAP session with {}: {}",
                                    settings.address, failed.error
                                ),
                            );
                            if failed.selected {
                                backoff.reset();
                            }
                        }
                    }
                }
                Err(e) => log(log::Level::Warn, &e.to_string()),
            }
            let delay = backoff.next_delay();
            log(
                log::Level::Info,
                &format!(
                    "reconnecting to {} in {:.1} s",
                    settings.address,
                    delay.as_secs_f64()
                ),
            );
            std::thread::sleep(delay);
        }
    }
}

export!(Launchpad);
