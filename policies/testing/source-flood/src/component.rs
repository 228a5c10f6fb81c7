//! The wit-bindgen glue: the go handshake, the flood and the report.

use std::io::Write;
use std::time::{Duration, Instant};

use wasi_net::TcpConnection;
use wasi_net::tcp::{read_line, read_to_close};

use crate::{Settings, done_line};

wit_bindgen::generate!({ path: "../../../wit", world: "source" });

use exports::firehose::bus::run::Guest;
use firehose::bus::config;
use firehose::bus::log::{Level, log};
use firehose::bus::publish::{BatchError, PublishError, publish, publish_batch};
use firehose::bus::types::{Message, Qos};

struct Flood;

/// How long the source keeps trying to connect to `go`.
const CONNECT_FOR: Duration = Duration::from_secs(60);

/// Connects to `addr`, retrying every 20 ms while it fails.
fn connect(addr: &str) -> Result<TcpConnection, String> {
    let deadline = Instant::now() + CONNECT_FOR;
    loop {
        match wasi_net::connect(addr, None) {
            Ok(connection) => return Ok(connection),
            Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Idles until the broker stops the source.
fn idle(topic: &str) -> Result<(), String> {
    let message = Message {
        topic: format!("{topic}/idle"),
        payload: vec![b'.'],
        qos: Qos::AtMostOnce,
        retain: false,
        content_type: None,
        user_properties: Vec::new(),
    };
    loop {
        std::thread::sleep(Duration::from_millis(100));
        match publish(&message) {
            Ok(()) => {}
            Err(PublishError::ShuttingDown) => return Ok(()),
            Err(e) => return Err(format!("idle publish: {e:?}")),
        }
    }
}

impl Guest for Flood {
    fn run() -> Result<(), String> {
        let s = Settings::from_config(config::get)?;
        let mut go = connect(&s.go)?;
        let line = read_line(&mut go).map_err(|e| format!("read: {e}"))?;
        if line != "go" {
            return Err(format!("expected `go` from {}, got {line:?}", s.go));
        }
        let message = Message {
            topic: s.topic.clone(),
            payload: s.format.template(s.payload_size),
            qos: if s.qos1 {
                Qos::AtLeastOnce
            } else {
                Qos::AtMostOnce
            },
            retain: false,
            content_type: None,
            user_properties: Vec::new(),
        };
        let mut batch = vec![message; s.batch.min(s.count as usize).max(1)];
        let (mut published, mut errors) = (0u64, 0u64);
        let started = Instant::now();
        let mut seq = 0;
        while seq < s.count {
            let n = batch.len().min((s.count - seq) as usize);
            for (i, message) in batch[..n].iter_mut().enumerate() {
                s.format.write_seq(&mut message.payload, seq + i as u64);
            }
            let (ok, error) = if s.batch == 1 {
                match publish(&batch[0]) {
                    Ok(()) => (1, None),
                    Err(e) => (0, Some(e)),
                }
            } else {
                match publish_batch(&batch[..n]) {
                    Ok(()) => (n, None),
                    Err(BatchError { published, error }) => (published as usize, Some(error)),
                }
            };
            published += ok as u64;
            match error {
                None => {}
                Some(PublishError::ShuttingDown) => return Ok(()),
                Some(e) => {
                    if errors == 0 {
                        log(Level::Warn, &format!("publish {}: {e:?}", seq + ok as u64));
                    }
                    errors += 1;
                }
            }
            // A refused message is counted and skipped, as one by one.
            seq += ok as u64 + u64::from(ok < n);
        }
        let took = started.elapsed().as_nanos();
        go.write_all(done_line(published, errors, took).as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        log(
            Level::Info,
            &format!("published {published} messages ({errors} errors) in {took} ns"),
        );
        read_to_close(&mut go).map_err(|e| format!("read: {e}"))?;
        drop(go);
        idle(&s.topic)
    }
}

export!(Flood);
