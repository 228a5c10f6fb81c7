//! The gerrit source: Gerrit events from a TCP stream of newline-delimited
//! event JSON (what `ssh -p 29418 host gerrit stream-events` prints; an
//! operator feeds it to a port with a forwarder), each published to
//! `gerrit/<project>/<type>` (`gerrit/<type>` for an event without a
//! project) with the event JSON byte for byte as payload, as germqtt did.
//! Routing is [`gerrit_events`]'s; this crate connects, reads, publishes
//! and reconnects.
//!
//! Config (the `[source.config]` table; all optional):
//!
//! | key | default | meaning |
//! |-----|---------|---------|
//! | `stream` | — | `host:port` of the event stream (it must be granted under `grants.tcp`); without it, webhooks only |
//! | `qos` | `1` | QoS of the published messages: 0, 1 or 2 |
//! | `max_line_bytes` | 1048576 | longer lines (events) are logged and skipped |
//! | `reconnect_min_ms` | 1000 | first delay before reconnecting |
//! | `reconnect_max_secs` | 60 | the delay doubles up to this |
//! | `connect_timeout_secs` | 10 | how long one connect may take |
//!
//! Messages are QoS 1 (at least once) by default: a subscriber that asks
//! for QoS 1 gets every event even across its own reconnects, which is
//! what a CI system listening for `comment-added` wants; QoS 0 is there
//! for a firehose whose subscribers never need that. They are never
//! retained (an event is news, not state) and carry content type
//! `application/json`. The source's prefix must be `gerrit`.
//!
//! Behaviour: a line that is not a publishable event (not JSON, no
//! `type`, a project that cannot be a topic, too long) is logged with its
//! line number and skipped; so is an event the broker refuses (e.g. too
//! large). When the stream ends or fails, or the connect fails, the
//! source logs it and reconnects after a delay that starts at
//! `reconnect_min_ms` and doubles up to `reconnect_max_secs`; it starts
//! over once a connection delivered an event or lasted a minute. Events
//! sent while the source was disconnected are lost (as with
//! `stream-events` itself). It returns when the broker says
//! `shutting-down`.
//!
//! Webhooks: the component also exports `wasi:http/incoming-handler`, so
//! the broker mounts it at `/hooks/<source name>` on its websocket
//! listeners. Gerrit's webhooks plugin POSTs each event's JSON there; the
//! event is routed and published exactly like a stream line (202), a body
//! that is not an event gets 400, a refused publish 422 (503 while the
//! broker stops). Stream and webhooks may be used together.
//!
//! The rooms: [`Settings`] (the config, checked) and [`pump`] (one
//! connection's bytes to events and skipped lines); the wit-bindgen glue
//! is `component.rs`, compiled only for wasm32. The TCP client, the
//! reconnect [`Backoff`] and the config number parsing are [`wasi_net`]'s
//! (shared with the launchpad source).

use std::io::{self, Read};
use std::ops::ControlFlow;
use std::time::Duration;

use gerrit_events::{DEFAULT_MAX_LINE_BYTES, Event, LineError, LineSplitter};
use wasi_net::config::number;
use wasi_net::endpoint;

#[cfg(target_arch = "wasm32")]
mod component;

pub use wasi_net::Backoff;

/// The config keys this source reads.
pub const CONFIG_KEYS: &[&str] = &[
    "stream",
    "qos",
    "max_line_bytes",
    "reconnect_min_ms",
    "reconnect_max_secs",
    "connect_timeout_secs",
];

/// A connection that lasted this long resets the reconnect delay.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// The source's settings, from its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `host:port` of the event stream; `None`: webhooks only.
    pub stream: Option<String>,
    /// QoS of the published messages (0, 1 or 2).
    pub qos: u8,
    /// Longest event line accepted, in bytes.
    pub max_line_bytes: usize,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// How long one connect may take.
    pub connect_timeout: Duration,
}

impl Settings {
    /// Reads and checks the config; `get` is the WIT `config.get`. Errors
    /// name the key.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let stream = get("stream");
        if let Some(stream) = &stream {
            endpoint::split_host_port(stream).map_err(|e| format!("config `stream`: {e}"))?;
        }
        Ok(Self {
            stream,
            qos: number(&get, "qos", 1, 0..=2)? as u8,
            max_line_bytes: number(
                &get,
                "max_line_bytes",
                DEFAULT_MAX_LINE_BYTES as u64,
                1024..=64 * 1024 * 1024,
            )? as usize,
            reconnect_min: Duration::from_millis(number(
                &get,
                "reconnect_min_ms",
                1000,
                10..=3_600_000,
            )?),
            reconnect_max: Duration::from_secs(number(&get, "reconnect_max_secs", 60, 1..=86_400)?),
            connect_timeout: Duration::from_secs(number(
                &get,
                "connect_timeout_secs",
                10,
                1..=600,
            )?),
        })
    }

    /// The reconnect delays these settings ask for.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.reconnect_min, self.reconnect_max)
    }
}

/// How one connection's stream ended.
#[derive(Debug)]
pub enum StreamEnd {
    /// The server closed it.
    Closed,
    /// Reading failed.
    Failed(io::Error),
    /// The handler asked to stop (the broker is shutting down).
    Stopped,
}

/// Reads `reader` until it ends, fails, or `handle` breaks, giving
/// `handle` each event and each skipped line in stream order. A last line
/// without a newline is routed when the stream closes (a truncated one
/// is then a skipped line like any other).
pub fn pump<R: Read>(
    reader: &mut R,
    max_line_bytes: usize,
    mut handle: impl FnMut(Result<Event, LineError>) -> ControlFlow<()>,
) -> StreamEnd {
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => {
                if let Some(item) = splitter.finish() {
                    if handle(item).is_break() {
                        return StreamEnd::Stopped;
                    }
                }
                return StreamEnd::Closed;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return StreamEnd::Failed(e),
        };
        for item in splitter.push(&chunk[..n]) {
            if handle(item).is_break() {
                return StreamEnd::Stopped;
            }
        }
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

    #[test]
    fn settings_defaults_and_overrides() {
        let s = Settings::from_config(config(&[("stream", "127.0.0.1:29418")])).unwrap();
        assert_eq!(s.stream.as_deref(), Some("127.0.0.1:29418"));
        assert_eq!(s.qos, 1);
        assert_eq!(s.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
        assert_eq!(s.reconnect_min, Duration::from_secs(1));
        assert_eq!(s.reconnect_max, Duration::from_secs(60));
        let s = Settings::from_config(config(&[
            ("stream", "gerrit.example.org:29418"),
            ("qos", "0"),
            ("reconnect_min_ms", "200"),
            ("reconnect_max_secs", "2"),
        ]))
        .unwrap();
        assert_eq!(s.qos, 0);
        let mut backoff = s.backoff();
        assert_eq!(backoff.next_delay(), Duration::from_millis(200));
    }

    #[test]
    fn no_stream_means_webhooks_only_and_errors_name_the_key() {
        let webhooks_only = Settings::from_config(config(&[])).unwrap();
        assert_eq!(webhooks_only.stream, None);
        let e = Settings::from_config(config(&[("stream", "gerrit.example.org")])).unwrap_err();
        assert!(e.starts_with("config `stream`:"), "{e}");
        let e = Settings::from_config(config(&[("stream", "h:1"), ("qos", "3")])).unwrap_err();
        assert_eq!(
            e,
            "config `qos` = \"3\": expected a whole number from 0 to 2"
        );
    }

    /// Hands out its chunks one read at a time, then an error or the end.
    struct Chunks(Vec<io::Result<Vec<u8>>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let bytes = self.0.remove(0)?;
            buf[..bytes.len()].copy_from_slice(&bytes);
            Ok(bytes.len())
        }
    }

    fn collect(reader: &mut Chunks) -> (Vec<Result<String, String>>, StreamEnd) {
        let mut items = Vec::new();
        let end = pump(reader, 1000, |item| {
            items.push(item.map(|e| e.topic).map_err(|e| e.to_string()));
            ControlFlow::Continue(())
        });
        (items, end)
    }

    #[test]
    fn events_split_across_reads_and_a_bad_line_between() {
        let mut reader = Chunks(vec![
            Ok(b"{\"type\":\"ref-updated\",\"refUpdate\":{\"project\":\"a/b\"}}\n{\"ty".to_vec()),
            Ok(b"pe\":\"x\"}\nnot json\n".to_vec()),
            Ok(b"{\"type\":\"last\"}".to_vec()),
        ]);
        let (items, end) = collect(&mut reader);
        assert_eq!(items.len(), 4);
        assert_eq!(items[0], Ok("gerrit/a/b/ref-updated".into()));
        assert_eq!(items[1], Ok("gerrit/x".into()));
        assert!(
            items[2]
                .as_ref()
                .unwrap_err()
                .starts_with("line 3: not valid JSON")
        );
        assert_eq!(items[3], Ok("gerrit/last".into()));
        assert!(matches!(end, StreamEnd::Closed));
    }

    #[test]
    fn a_failed_read_ends_the_stream_and_a_break_stops_it() {
        let mut reader = Chunks(vec![
            Ok(b"{\"type\":\"a\"}\n".to_vec()),
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
        ]);
        let (items, end) = collect(&mut reader);
        assert_eq!(items, vec![Ok("gerrit/a".into())]);
        assert!(matches!(end, StreamEnd::Failed(e) if e.kind() == io::ErrorKind::ConnectionReset));

        let mut reader = Chunks(vec![Ok(b"{\"type\":\"a\"}\n{\"type\":\"b\"}\n".to_vec())]);
        let mut seen = 0;
        let end = pump(&mut reader, 1000, |_| {
            seen += 1;
            ControlFlow::Break(())
        });
        assert_eq!(seen, 1);
        assert!(matches!(end, StreamEnd::Stopped));
    }
}
