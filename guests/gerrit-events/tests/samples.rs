//! The realistic Gerrit events in `tests/data/gerrit/` (one per event
//! type, one line each, as `gerrit stream-events` prints them): their
//! topics, byte-exact payloads, and the same files as one stream read in
//! awkward pieces, plus truncated and garbage input that must never panic.

use std::path::PathBuf;

use gerrit_events::{EventError, LineError, LineSplitter, parse_webhook_body, route};

/// (file, expected topic), in the order the stream test concatenates them.
const SAMPLES: &[(&str, &str)] = &[
    (
        "patchset-created",
        "gerrit/openstack-infra/germqtt/patchset-created",
    ),
    (
        "comment-added",
        "gerrit/openstack-infra/germqtt/comment-added",
    ),
    ("change-merged", "gerrit/openstack/nova/change-merged"),
    (
        "change-abandoned",
        "gerrit/openstack-infra/germqtt/change-abandoned",
    ),
    (
        "ref-updated",
        "gerrit/openstack-infra/project-config/ref-updated",
    ),
    (
        "reviewer-added",
        "gerrit/openstack-infra/germqtt/reviewer-added",
    ),
];

fn sample(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/gerrit")
        .join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn without_newline(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\n").expect("each sample is one line")
}

#[test]
fn every_sample_is_one_line() {
    for (name, _) in SAMPLES {
        let bytes = sample(name);
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1, "{name}");
        assert!(bytes.ends_with(b"\n"), "{name}");
    }
}

#[test]
fn samples_route_to_germqtt_topics_with_byte_exact_payloads() {
    for (name, topic) in SAMPLES {
        let bytes = sample(name);
        let line = without_newline(&bytes);
        let event = route(line).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(event.topic, *topic, "{name}");
        assert_eq!(event.event_type, *name);
        assert_eq!(event.payload, line, "{name}");
    }
}

#[test]
fn samples_as_webhook_bodies() {
    for (name, topic) in SAMPLES {
        let bytes = sample(name);
        let event = parse_webhook_body(&bytes).unwrap();
        assert_eq!(event.topic, *topic);
        assert_eq!(event.payload, without_newline(&bytes));
    }
}

#[test]
fn catted_samples_stream_in_any_chunking() {
    let stream: Vec<u8> = SAMPLES.iter().flat_map(|(name, _)| sample(name)).collect();
    let expected: Vec<(String, Vec<u8>)> = SAMPLES
        .iter()
        .map(|(name, topic)| (topic.to_string(), without_newline(&sample(name)).to_vec()))
        .collect();
    for chunk in [1, 2, 7, 100, 4096, stream.len()] {
        let mut splitter = LineSplitter::default();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            got.extend(splitter.push(piece));
        }
        got.extend(splitter.finish());
        let got: Vec<(String, Vec<u8>)> = got
            .into_iter()
            .map(|e| e.map(|e| (e.topic, e.payload)).unwrap())
            .collect();
        assert_eq!(got, expected, "chunk size {chunk}");
    }
}

#[test]
fn a_bad_line_between_samples_is_skipped() {
    let mut stream = sample("comment-added");
    stream
        .extend_from_slice(b"{\"type\":\"comment-added\",\"change\":{\"project\":\"evil/+\"}}\r\n");
    stream.extend(sample("ref-updated"));
    let items = LineSplitter::default().push(&stream);
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[0].as_ref().unwrap().topic,
        "gerrit/openstack-infra/germqtt/comment-added"
    );
    assert_eq!(
        items[1].as_ref().unwrap_err().to_string(),
        "line 2: change.project \"evil/+\" contains the wildcard '+', which MQTT forbids in a topic name"
    );
    assert_eq!(
        items[2].as_ref().unwrap().topic,
        "gerrit/openstack-infra/project-config/ref-updated"
    );
}

/// A deterministic xorshift, so the "fuzz" input is the same on every run.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncated_and_garbage_input_never_panics() {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for (name, _) in SAMPLES {
        let bytes = sample(name);
        let line = without_newline(&bytes);
        for cut in 0..line.len() {
            // Every proper prefix of an object is invalid JSON.
            assert!(
                matches!(route(&line[..cut]), Err(EventError::Json(_))),
                "{name} cut at {cut}"
            );
        }
        for _ in 0..200 {
            let mut mangled = line.to_vec();
            for _ in 0..(xorshift(&mut rng) % 8 + 1) {
                let at = (xorshift(&mut rng) as usize) % mangled.len();
                mangled[at] = xorshift(&mut rng) as u8;
            }
            let _ = route(&mangled);
            let mut splitter = LineSplitter::new(512);
            for piece in mangled.chunks((xorshift(&mut rng) % 64 + 1) as usize) {
                for item in splitter.push(piece) {
                    if let Err(LineError::TooLong { limit, .. }) = item {
                        assert_eq!(limit, 512);
                    }
                }
            }
            let _ = splitter.finish();
        }
    }
}
