//! The launchpad source: Launchpad bug mail read over IMAP, each
//! notification published as lpmqtt did (topic
//! `launchpad/<project>/bug/<number>`, payload the JSON of the
//! `X-Launchpad-Bug*` headers and the body: see [`launchpad_mail`]).
//!
//! Per connection: LOGIN, SELECT the mailbox, `UID SEARCH UNSEEN`, fetch
//! each unseen mail without marking it (`BODY.PEEK[]`), publish it, then
//! mark it `\Seen` (and, with `delete = true`, `\Deleted`, expunged after
//! the batch); then wait for new mail with IDLE (re-issued every
//! `idle_max_secs`), or poll with NOOP every `poll_secs` where the server
//! lacks IDLE (or `idle = false`), and search again. Mail that Launchpad
//! did not generate (`X-Generated-By` without `Launchpad`) is left unseen
//! and untouched; a broken mail, or one the broker refuses, is logged
//! with its UID and skipped (left unseen) and never stops the source.
//! Skipped mail is remembered for the run (per `UIDVALIDITY`), so it is
//! logged once, not on every search.
//!
//! A mail is marked seen only after `publish` returned: if the source is
//! stopped in between it is published again on the next run (at least
//! once). When the connection fails the source logs it and reconnects
//! after a delay that doubles from `reconnect_min_ms` up to
//! `reconnect_max_secs`, and starts over once a session got as far as
//! SELECT. It returns when the broker says `shutting-down`.
//!
//! Config (the `[source.config]` table):
//!
//! | key | default | meaning |
//! |-----|---------|---------|
//! | `address` | — | `host:port` of the IMAP server (grant it under `grants.tcp`) |
//! | `security` | — | `imaps` (TLS from the start), `starttls` (plain, then STARTTLS; never goes on without TLS) or `plain` |
//! | `user`, `password` | — | the IMAP login; the password is never logged |
//! | `ca_pem` | Mozilla roots | PEM text of the CA certificate(s) to trust (TLS) |
//! | `tls_server_name` | host of `address` | the name the server certificate must carry |
//! | `mailbox` | `INBOX` | the mailbox to read |
//! | `delete` | `false` | delete and expunge mail once published |
//! | `idle` | `true` | use IDLE where the server has it; `false` always polls |
//! | `idle_max_secs` | 1740 | end and re-issue each IDLE after this (29 min) |
//! | `poll_secs` | 60 | the NOOP poll interval without IDLE |
//! | `qos` | 1 | QoS of the published messages: 0, 1 or 2 |
//! | `max_mail_bytes` | 8388608 | larger mail is logged and skipped (keep it well under the source's `memory_mib`) |
//! | `command_timeout_secs` | 120 | how long to wait for each server response |
//! | `connect_timeout_secs` | 10 | how long one connect may take |
//! | `reconnect_min_ms`, `reconnect_max_secs` | 1000, 300 | the reconnect delays |
//!
//! TLS is rustls (with ring) inside the component, over the granted TCP
//! connection (decision D2 in docs/decisions.md): the crate's default
//! feature `tls` (ring needs clang for wasm32, which `guests/build` sets
//! up). A build without it refuses `starttls` and `imaps` at start, with
//! an error that says so. A source has no files, so the CA is given as PEM
//! text (`ca_pem`), not as a file. `plain` is for trusted networks only
//! (a non-loopback server is warned about).
//!
//! The rooms: [`Settings`] (the config, checked), [`session`] (one IMAP
//! connection, generic over the transport and the bus, so it runs
//! natively in tests) and `tls` (the rustls stream); the wit-bindgen glue
//! is `component.rs`, compiled only for wasm32. The TCP client, the
//! reconnect [`Backoff`] and the config number parsing are [`wasi_net`]'s
//! (shared with the gerrit source).

use std::fmt;
use std::time::Duration;

use wasi_net::config::number;
use wasi_net::endpoint;

pub mod session;
#[cfg(feature = "tls")]
pub mod tls;

#[cfg(target_arch = "wasm32")]
mod component;

pub use wasi_net::Backoff;

/// The config keys this source reads.
pub const CONFIG_KEYS: &[&str] = &[
    "address",
    "security",
    "user",
    "password",
    "ca_pem",
    "tls_server_name",
    "mailbox",
    "delete",
    "idle",
    "idle_max_secs",
    "poll_secs",
    "qos",
    "max_mail_bytes",
    "command_timeout_secs",
    "connect_timeout_secs",
    "reconnect_min_ms",
    "reconnect_max_secs",
];

/// How the connection to the server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No TLS: for a server on the same host or a trusted network.
    Plain,
    /// Plain IMAP, then STARTTLS before logging in.
    StartTls,
    /// TLS from the first byte (port 993).
    Imaps,
}

/// Whether this build can speak TLS (the crate's `tls` feature).
pub const HAS_TLS: bool = cfg!(feature = "tls");

/// The source's settings, from its config. `Debug` never shows the
/// password.
#[derive(Clone)]
pub struct Settings {
    /// `host:port` of the IMAP server.
    pub address: String,
    /// Whether and how TLS is used.
    pub security: Security,
    /// The login name.
    pub user: String,
    /// The login password.
    pub password: String,
    /// The TLS client setup (`starttls`, `imaps`).
    #[cfg(feature = "tls")]
    pub tls: Option<tls::TlsSettings>,
    /// The mailbox to read.
    pub mailbox: String,
    /// Delete and expunge mail once published.
    pub delete: bool,
    /// Use IDLE where the server offers it.
    pub idle: bool,
    /// Longest single IDLE.
    pub idle_max: Duration,
    /// Poll interval without IDLE.
    pub poll: Duration,
    /// QoS of the published messages (0, 1 or 2).
    pub qos: u8,
    /// Largest mail fetched, in bytes.
    pub max_mail_bytes: usize,
    /// How long to wait for each server response.
    pub command_timeout: Duration,
    /// How long one connect may take.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("address", &self.address)
            .field("security", &self.security)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("mailbox", &self.mailbox)
            .field("delete", &self.delete)
            .field("idle", &self.idle)
            .field("idle_max", &self.idle_max)
            .field("poll", &self.poll)
            .field("qos", &self.qos)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads and checks the config; `get` is the WIT `config.get`. Errors
    /// name the key (and never show the password).
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let required = |key: &str, what: &str| {
            get(key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("config `{key}` is missing: set it to {what}"))
        };
        let address = required("address", "the host:port of the IMAP server")?;
        let security = match required("security", "\"imaps\", \"starttls\" or \"plain\"")?.as_str()
        {
            "plain" => Security::Plain,
            "starttls" => Security::StartTls,
            "imaps" => Security::Imaps,
            other => {
                return Err(format!(
                    "config `security` = {other:?}: expected \"imaps\", \"starttls\" or \"plain\""
                ));
            }
        };
        if security != Security::Plain && !HAS_TLS {
            return Err(format!(
                "config `security` = {:?}: this build of the launchpad component has no TLS \
                 (built without its `tls` feature, which needs clang for wasm32: decision D2 \
                 in docs/decisions.md); use \"plain\" only for a server on a trusted network",
                if security == Security::Imaps {
                    "imaps"
                } else {
                    "starttls"
                }
            ));
        }
        let (host, _) =
            endpoint::split_host_port(&address).map_err(|e| format!("config `address`: {e}"))?;
        let server_name = get("tls_server_name").unwrap_or_else(|| host.to_owned());
        let ca_pem = get("ca_pem");
        if security == Security::Plain && (ca_pem.is_some() || get("tls_server_name").is_some()) {
            return Err(
                "config `ca_pem` and `tls_server_name` need security = \"imaps\" or \"starttls\""
                    .into(),
            );
        }
        #[cfg(feature = "tls")]
        let tls = match security {
            Security::Plain => None,
            _ => Some(tls::TlsSettings::new(&server_name, ca_pem.as_deref())?),
        };
        #[cfg(not(feature = "tls"))]
        let _ = (server_name, ca_pem);
        let user = required("user", "the IMAP login name")?;
        let password = get("password")
            .filter(|v| !v.is_empty())
            .ok_or("config `password` is missing: set it to the IMAP password")?;
        let mailbox = get("mailbox").unwrap_or_else(|| "INBOX".to_owned());
        if mailbox.is_empty() || !mailbox.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(format!(
                "config `mailbox` = {mailbox:?}: expected a non-empty printable ASCII name"
            ));
        }
        Ok(Self {
            address,
            security,
            user,
            password,
            #[cfg(feature = "tls")]
            tls,
            mailbox,
            delete: boolean(&get, "delete", false)?,
            idle: boolean(&get, "idle", true)?,
            idle_max: Duration::from_secs(number(&get, "idle_max_secs", 1740, 1..=1740)?),
            poll: Duration::from_secs(number(&get, "poll_secs", 60, 1..=86_400)?),
            qos: number(&get, "qos", 1, 0..=2)? as u8,
            max_mail_bytes: number(
                &get,
                "max_mail_bytes",
                8 * 1024 * 1024,
                1024..=32 * 1024 * 1024,
            )? as usize,
            command_timeout: Duration::from_secs(number(
                &get,
                "command_timeout_secs",
                120,
                1..=3600,
            )?),
            connect_timeout: Duration::from_secs(number(
                &get,
                "connect_timeout_secs",
                10,
                1..=600,
            )?),
            reconnect_min: Duration::from_millis(number(
                &get,
                "reconnect_min_ms",
                1000,
                10..=3_600_000,
            )?),
            reconnect_max: Duration::from_secs(number(
                &get,
                "reconnect_max_secs",
                300,
                1..=86_400,
            )?),
        })
    }

    /// The reconnect delays these settings ask for.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.reconnect_min, self.reconnect_max)
    }

    /// Whether the server is this machine (plain IMAP is then not
    /// readable on the network).
    pub fn is_loopback(&self) -> bool {
        let host = endpoint::split_host_port(&self.address)
            .map(|(h, _)| h)
            .unwrap_or("");
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

fn boolean(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: bool,
) -> Result<bool, String> {
    match get(key).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!(
            "config `{key}` = {other:?}: expected true or false"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("address", "127.0.0.1:143"),
        ("security", "plain"),
        ("user", "lpmqtt"),
        ("password", "s3cret-Pa55"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs = BASE.to_vec();
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend_from_slice(extra);
        pairs
    }

    #[test]
    fn defaults() {
        let s = Settings::from_config(config(BASE)).unwrap();
        assert_eq!(s.mailbox, "INBOX");
        assert!(!s.delete && s.idle);
        assert_eq!(s.idle_max, Duration::from_secs(29 * 60));
        assert_eq!(s.poll, Duration::from_secs(60));
        assert_eq!(s.qos, 1);
        assert!(s.is_loopback());
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn errors_name_the_key_and_never_the_password() {
        let e =
            Settings::from_config(config(&with(&[("address", "imap.example.org")]))).unwrap_err();
        assert!(e.starts_with("config `address`:"), "{e}");
        let tls = Settings::from_config(config(&with(&[("security", "imaps")])));
        if HAS_TLS {
            assert_eq!(tls.unwrap().security, Security::Imaps);
        } else {
            assert!(tls.unwrap_err().contains("has no TLS"));
        }
        let e = Settings::from_config(config(&with(&[("ca_pem", "x")]))).unwrap_err();
        assert!(
            e.starts_with("config `ca_pem` and `tls_server_name` need"),
            "{e}"
        );
        let e = Settings::from_config(config(&with(&[("security", "ssl")]))).unwrap_err();
        assert!(e.starts_with("config `security` = \"ssl\""), "{e}");
        let e = Settings::from_config(config(&with(&[("delete", "yes")]))).unwrap_err();
        assert_eq!(e, "config `delete` = \"yes\": expected true or false");
        let e = Settings::from_config(config(&with(&[("poll_secs", "0")]))).unwrap_err();
        assert!(e.starts_with("config `poll_secs`"), "{e}");
        let e = Settings::from_config(config(&with(&[("password", "")]))).unwrap_err();
        assert!(e.contains("`password` is missing"), "{e}");
        let e = Settings::from_config(config(&BASE[..3])).unwrap_err();
        assert!(e.contains("`password` is missing"), "{e}");
    }

    #[test]
    fn remote_servers_are_not_loopback() {
        let s =
            Settings::from_config(config(&with(&[("address", "imap.example.org:143")]))).unwrap();
        assert!(!s.is_loopback());
    }
}
