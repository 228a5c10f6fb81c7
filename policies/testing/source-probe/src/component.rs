//! The wit-bindgen glue and the probes.

use std::io::{Read, Write};
use std::time::Duration;

use wasi_net::ConnectError;

wit_bindgen::generate!({ path: "../../../wit", world: "source" });

use exports::firehose::bus::run::Guest;
use firehose::bus::config;
use firehose::bus::log::{Level, log};
use firehose::bus::publish::{BatchError, PublishError, publish, publish_batch};
use firehose::bus::types::{Message, Qos};

struct Probe;

fn message(topic: String, payload: String, retain: bool) -> Message {
    Message {
        topic,
        payload: payload.into_bytes(),
        qos: Qos::AtLeastOnce,
        retain,
        content_type: Some("text/plain".to_owned()),
        user_properties: Vec::new(),
    }
}

/// Publishes one report; a failure to publish it ends the run.
fn report(prefix: &str, check: &str, result: Result<String, String>) -> Result<(), String> {
    let payload = match result {
        Ok(text) => format!("ok: {text}"),
        Err(text) => format!("err: {text}"),
    };
    log(Level::Info, &format!("{check}: {payload}"));
    publish(&message(format!("{prefix}report/{check}"), payload, true))
        .map_err(|e| format!("publishing report {check}: {e:?}"))
}

/// Sends a line to `addr` and reads the answer, waiting as long as it
/// takes.
fn echo(addr: &str) -> Result<String, String> {
    let mut connection = wasi_net::connect(addr, None).map_err(probe_wording)?;
    connection
        .write_all(b"hello from the probe\n")
        .map_err(|e| format!("write: {e}"))?;
    wasi_net::tcp::read_line(&mut connection).map_err(|e| format!("read: {e}"))
}

/// The probe's wording of a failed connect, which the tests match
/// (tests/e2e/test_sources.py): `connect <addr>: <code>`, `resolve <host>:
/// <code>`, `create socket: <code>`.
fn probe_wording(e: ConnectError) -> String {
    match e {
        ConnectError::Resolve { host, reason } => format!("resolve {host}: {reason}"),
        ConnectError::Socket { reason, .. } => format!("create socket: {reason}"),
        ConnectError::Connect { addr, reason } => format!("connect {addr}: {reason}"),
        other => other.to_string(),
    }
}

fn probe(prefix: &str) -> Result<(), String> {
    if let Some(addr) = config::get("granted") {
        report(prefix, "connect-granted", echo(&addr))?;
    }
    if let Some(addr) = config::get("denied") {
        report(prefix, "connect-denied", echo(&addr))?;
    }
    if let Some(addr) = config::get("denied_name") {
        report(prefix, "lookup-denied", echo(&addr))?;
    }
    report(
        prefix,
        "file",
        std::fs::read_to_string("/etc/passwd")
            .map(|text| format!("read {} bytes of /etc/passwd", text.len()))
            .map_err(|e| format!("/etc/passwd: {e}")),
    )?;
    report(
        prefix,
        "dir",
        std::fs::read_dir(".")
            .map(|entries| format!("listed {} entries of .", entries.count()))
            .map_err(|e| format!(".: {e}")),
    )?;
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let args: Vec<String> = std::env::args().collect();
    report(
        prefix,
        "env",
        Ok(format!(
            "{} variables {vars:?}, {} arguments",
            vars.len(),
            args.len()
        )),
    )?;
    let mut input = Vec::new();
    report(
        prefix,
        "stdin",
        std::io::stdin()
            .read_to_end(&mut input)
            .map(|n| format!("read {n} bytes"))
            .map_err(|e| format!("stdin: {e}")),
    )?;
    // Publishing outside the prefix, and an invalid topic: both must fail.
    let outside = publish(&message("elsewhere/probe".into(), "x".into(), false));
    report(prefix, "outside-prefix", outcome(outside))?;
    let bare = prefix.trim_end_matches('/').to_owned();
    report(
        prefix,
        "bare-prefix",
        outcome(publish(&message(bare, "x".into(), false))),
    )?;
    let wildcard = publish(&message(format!("{prefix}a/+"), "x".into(), false));
    report(prefix, "invalid-topic", outcome(wildcard))?;
    batches(prefix)?;
    report(prefix, "done", Ok("all probes ran".into()))
}

/// `publish-batch`: three messages, then a batch refused in its middle
/// (published: `<prefix>batch/1` to `4`, retained; never `5`), then an
/// empty one.
fn batches(prefix: &str) -> Result<(), String> {
    let batch = |names: &[&str]| -> Vec<Message> {
        names
            .iter()
            .map(|n| message(format!("{prefix}batch/{n}"), n.to_string(), true))
            .collect()
    };
    report(
        prefix,
        "batch",
        batch_outcome(publish_batch(&batch(&["1", "2", "3"]))),
    )?;
    let mut mixed = batch(&["4"]);
    mixed.push(message("elsewhere/batch".into(), "x".into(), false));
    mixed.extend(batch(&["5"]));
    report(
        prefix,
        "batch-refusal",
        batch_outcome(publish_batch(&mixed)),
    )?;
    report(prefix, "batch-empty", batch_outcome(publish_batch(&[])))
}

fn batch_outcome(result: Result<(), BatchError>) -> Result<String, String> {
    match result {
        Ok(()) => Ok("published".into()),
        Err(BatchError { published, error }) => {
            Err(format!("published {published}, then {error:?}"))
        }
    }
}

fn outcome(result: Result<(), PublishError>) -> Result<String, String> {
    match result {
        Ok(()) => Ok("published".into()),
        Err(e) => Err(format!("{e:?}")),
    }
}

fn heartbeat(prefix: &str) -> Result<(), String> {
    let interval = match config::get("interval_ms") {
        Some(text) => text
            .parse()
            .map_err(|e| format!("config `interval_ms`: {e}"))?,
        None => 200,
    };
    for n in 0u64.. {
        match publish(&message(format!("{prefix}heartbeat"), n.to_string(), false)) {
            Ok(()) => {}
            Err(PublishError::ShuttingDown) => {
                log(Level::Info, "asked to stop; returning");
                return Ok(());
            }
            Err(e) => return Err(format!("heartbeat: {e:?}")),
        }
        std::thread::sleep(Duration::from_millis(interval));
    }
    Ok(())
}

/// Publishes one message whose 40 user properties all point at the same
/// 1 MiB of guest memory: 80 MiB for the host to copy out of 1 MiB. The
/// host bounds what it copies per call by the guest's memory cap, so the
/// call fails (and this guest traps) instead of the host allocating for
/// it. A guest built with wit-bindgen never aliases; this one does on
/// purpose, by giving 80 `String`s the same buffer and never dropping
/// them.
fn alias(prefix: &str) -> Result<(), String> {
    let big = std::mem::ManuallyDrop::new("x".repeat(1 << 20));
    let (ptr, len, cap) = (big.as_ptr() as *mut u8, big.len(), big.capacity());
    // SAFETY: none of these Strings is ever written to or dropped (the
    // message is forgotten below); they are only read while lowering.
    let shared = || unsafe { String::from_raw_parts(ptr, len, cap) };
    let mut m = message(format!("{prefix}alias"), "alias".into(), false);
    m.user_properties = (0..40).map(|_| (shared(), shared())).collect();
    let result = publish(&m);
    std::mem::forget(m);
    Err(format!("the host took the aliased message: {result:?}"))
}

impl Guest for Probe {
    fn run() -> Result<(), String> {
        let prefix = config::get("prefix").ok_or("config `prefix` is missing")?;
        let mode = config::get("mode").unwrap_or_else(|| "probe".into());
        if mode != "probe" {
            publish(&message(
                format!("{prefix}report/started"),
                mode.clone(),
                false,
            ))
            .map_err(|e| format!("{e:?}"))?;
        }
        match mode.as_str() {
            "probe" => {
                probe(&prefix)?;
                heartbeat(&prefix)
            }
            "trap" => panic!("the probe was told to trap"),
            "exit" => std::process::exit(3),
            "fail" => Err("the probe was told to fail".into()),
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut blocks = Vec::new();
                loop {
                    blocks.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&blocks);
                }
            }
            "alias" => alias(&prefix),
            other => Err(format!("config `mode`: unknown mode {other:?}")),
        }
    }
}

export!(Probe);
