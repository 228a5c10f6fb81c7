//! A source for the benchmark (`tests/bench`, scenario `source`): it
//! measures what publishing from a WASM source costs, against a native
//! MQTT publisher. On a go signal it publishes `count` messages as fast as
//! `publish` returns, then reports.
//!
//! Protocol with the bench, over one TCP connection to `go` (which the
//! source must be granted):
//!
//! 1. the source connects (retrying every 20 ms while refused, for at
//!    most a minute) and waits for a line `go`;
//! 2. it publishes messages `0..count` to `topic`, each payload carrying
//!    its sequence number in the bench's layout (see [`Format`]), and
//!    counts the failed publishes;
//! 3. it writes `done <published> <errors> <guest-ns>` (the time the
//!    publishing took by the guest's monotonic clock);
//! 4. it waits for the bench to close the connection, then stays idle
//!    (a 100 ms sleep and a one-byte publish to `<topic>/idle` at a time,
//!    so it sees `shutting-down` and returns promptly when the broker
//!    stops).
//!
//! Config (all strings): `count`, `topic`, `payload_size` (bytes,
//! default 100), `format` (`json`, the default, `json-email` or
//! `binary`), `qos` (`0`, the default, or `1`), `go` (`host:port`),
//! `batch` (messages per host call: `1`, the default, calls `publish` for
//! each; more hands them over with `publish-batch`).
//!
//! The payload logic is plain Rust, tested natively; the wit-bindgen glue
//! compiles only for wasm32 and uses `wasi-net`'s TCP client
//! (guests/wasi-net).

#[cfg(target_arch = "wasm32")]
mod component;

/// The payload layouts of the bench (`tests/bench/src/scenarios/mod.rs`,
/// `PayloadFormat`), byte for byte, so the bench's receivers read the
/// sequence number of a source's message as they read a native one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"seq":"<16 hex>","sent":"<16 hex>","pub":"<8 hex>","data":"xxx..."}`.
    Json,
    /// The same with the padding in an `email` field.
    JsonEmail,
    /// Little endian: 0..8 sequence number, 8..16 send time, 16..20
    /// publisher index, then 0x5a padding.
    Binary,
}

/// Where the sequence number's hex digits start in the JSON formats.
const JSON_SEQ_AT: usize = 8;

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "json" => Ok(Format::Json),
            "json-email" => Ok(Format::JsonEmail),
            "binary" => Ok(Format::Binary),
            other => Err(format!(
                "config `format`: {other:?} (expected json, json-email or binary)"
            )),
        }
    }

    fn pad_key(self) -> &'static str {
        if self == Format::JsonEmail {
            "email"
        } else {
            "data"
        }
    }

    /// The smallest payload of this format.
    pub fn min_len(self) -> usize {
        match self {
            Format::Binary => 20,
            _ => JSON_SEQ_AT + 16 + 10 + 16 + 9 + 8 + 3 + self.pad_key().len() + 3 + 2,
        }
    }

    /// A payload of `len` bytes (at least [`min_len`](Self::min_len)) with
    /// sequence number 0, send time 0 (the guest's clock means nothing to
    /// the bench) and publisher index 0.
    pub fn template(self, len: usize) -> Vec<u8> {
        let len = len.max(self.min_len());
        match self {
            Format::Binary => {
                let mut p = vec![0x5a; len];
                p[0..20].fill(0);
                p
            }
            _ => {
                let mut p = format!(
                    "{{\"seq\":\"{:016x}\",\"sent\":\"{:016x}\",\"pub\":\"{:08x}\",\"{}\":\"",
                    0,
                    0,
                    0,
                    self.pad_key()
                )
                .into_bytes();
                p.resize(len - 2, b'x');
                p.extend_from_slice(b"\"}");
                p
            }
        }
    }

    /// Writes `seq` into a payload made by [`template`](Self::template).
    pub fn write_seq(self, p: &mut [u8], seq: u64) {
        match self {
            Format::Binary => p[0..8].copy_from_slice(&seq.to_le_bytes()),
            _ => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut v = seq;
                for b in p[JSON_SEQ_AT..JSON_SEQ_AT + 16].iter_mut().rev() {
                    *b = DIGITS[(v & 0xf) as usize];
                    v >>= 4;
                }
            }
        }
    }
}

/// The source's settings, from its config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub count: u64,
    pub topic: String,
    pub payload_size: usize,
    pub format: Format,
    /// Publish at QoS 1 rather than 0.
    pub qos1: bool,
    /// `host:port` to connect to for the go signal and the report.
    pub go: String,
    /// Messages per host call: 1 calls `publish` for each message, more
    /// hands them over `batch` at a time with `publish-batch`.
    pub batch: usize,
}

impl Settings {
    /// Reads the settings through `get` (the WIT `config::get`).
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let required = |key: &str| get(key).ok_or_else(|| format!("config `{key}` is missing"));
        let number = |key: &str, text: String| {
            text.trim()
                .parse::<u64>()
                .map_err(|e| format!("config `{key}`: {text:?}: {e}"))
        };
        let count = number("count", required("count")?)?;
        let payload_size = match get("payload_size") {
            Some(text) => number("payload_size", text)? as usize,
            None => 100,
        };
        let format = Format::parse(get("format").as_deref().unwrap_or("json"))?;
        let qos1 = match get("qos").as_deref().unwrap_or("0") {
            "0" => false,
            "1" => true,
            other => return Err(format!("config `qos`: {other:?} (expected 0 or 1)")),
        };
        let batch = match get("batch") {
            Some(text) => match number("batch", text)? {
                0 => return Err("config `batch`: must be at least 1".into()),
                n => n as usize,
            },
            None => 1,
        };
        Ok(Settings {
            count,
            topic: required("topic")?,
            payload_size,
            format,
            qos1,
            go: required("go")?,
            batch,
        })
    }
}

/// The report line written to the go connection when the flood is done.
pub fn done_line(published: u64, errors: u64, guest_ns: u128) -> String {
    format!("done {published} {errors} {guest_ns}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payloads_match_the_bench_layout() {
        let mut p = Format::Json.template(100);
        Format::Json.write_seq(&mut p, 0x1f);
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            r#"{"seq":"000000000000001f","sent":"0000000000000000","pub":"00000000","data":"xxxxxxxxxxxxxxxxxxxxx"}"#
        );
        let p = Format::JsonEmail.template(0);
        assert_eq!(p.len(), Format::JsonEmail.min_len());
        assert!(std::str::from_utf8(&p).unwrap().ends_with(r#""email":""}"#));
        assert_eq!(Format::Json.template(0).len(), Format::Json.min_len());
        assert_eq!(Format::Json.min_len(), 79);
        assert_eq!(Format::JsonEmail.min_len(), 80);
    }

    #[test]
    fn binary_payloads_carry_the_sequence_number_first() {
        let mut p = Format::Binary.template(100);
        assert_eq!(p.len(), 100);
        Format::Binary.write_seq(&mut p, 7);
        assert_eq!(&p[0..8], &7u64.to_le_bytes());
        assert_eq!(&p[8..20], &[0; 12]);
        assert!(p[20..].iter().all(|&b| b == 0x5a));
    }

    #[test]
    fn settings_have_defaults_and_name_bad_keys() {
        let config = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = Settings::from_config(config(&[
            ("count", "1000"),
            ("topic", "bench/t/source"),
            ("go", "127.0.0.1:4000"),
        ]))
        .unwrap();
        assert_eq!(
            s,
            Settings {
                count: 1000,
                topic: "bench/t/source".into(),
                payload_size: 100,
                format: Format::Json,
                qos1: false,
                go: "127.0.0.1:4000".into(),
                batch: 1,
            }
        );
        let e = Settings::from_config(config(&[
            ("count", "1"),
            ("topic", "t"),
            ("go", "g"),
            ("batch", "0"),
        ]))
        .unwrap_err();
        assert!(e.contains("`batch`"), "{e}");
        let e = Settings::from_config(config(&[("count", "x")])).unwrap_err();
        assert!(e.contains("`count`"), "{e}");
        let e = Settings::from_config(config(&[("count", "1")])).unwrap_err();
        assert!(e.contains("`topic` is missing"), "{e}");
        let e = Settings::from_config(config(&[
            ("count", "1"),
            ("topic", "t"),
            ("go", "g"),
            ("format", "xml"),
        ]))
        .unwrap_err();
        assert!(e.contains("`format`"), "{e}");
    }

    #[test]
    fn the_done_line_is_one_line() {
        assert_eq!(done_line(10, 0, 1234), "done 10 0 1234\n");
    }
}
