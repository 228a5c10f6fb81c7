//! The demo source of the embedded default config: it needs no network
//! and no outside service, so that right after `firehose serve` a
//! subscriber sees events within seconds.
//!
//! Every tick (`interval_ms`, default 1000) it publishes
//! `<root>/clock/tick`, and every fifth tick also a made-up event shaped
//! like a Gerrit `comment-added` on `<root>/gerrit/<project>/comment-added`
//! (the topic layout of the real gerrit source). `<root>` is the config
//! key `root`, default `demo`; it must lie within the source's prefix.
//!
//! The events are built here, in plain Rust (tested natively); the
//! wit-bindgen glue is `component.rs`, compiled only for wasm32.

use serde_json::json;

#[cfg(target_arch = "wasm32")]
mod component;

/// The config keys this source reads.
pub const CONFIG_KEYS: &[&str] = &["interval_ms", "root"];

/// Every this many ticks a Gerrit-shaped event follows the tick.
pub const GERRIT_EVERY: u64 = 5;

/// The made-up projects the Gerrit-shaped events name, in turn.
const PROJECTS: &[&str] = &["firehose/demo", "openstack-infra/germqtt", "example/docs"];

/// One message of the demo: topic and JSON payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub topic: String,
    pub payload: String,
}

/// The events of tick `n` (counted from 0) at `unix_ms` milliseconds
/// since the epoch.
pub fn events(root: &str, n: u64, unix_ms: u64) -> Vec<Event> {
    let mut out = vec![Event {
        topic: format!("{root}/clock/tick"),
        payload: json!({ "n": n, "time_ms": unix_ms, "source": "demo" }).to_string(),
    }];
    if n % GERRIT_EVERY == GERRIT_EVERY - 1 {
        let change = 1000 + n / GERRIT_EVERY;
        let project = PROJECTS[((n / GERRIT_EVERY) as usize) % PROJECTS.len()];
        out.push(Event {
            topic: format!("{root}/gerrit/{project}/comment-added"),
            payload: json!({
                "type": "comment-added",
                "change": {
                    "project": project,
                    "branch": "main",
                    "number": change,
                    "subject": format!("Demo change {change}"),
                    "url": format!("https://review.example.org/c/{project}/+/{change}"),
                },
                "author": { "name": "Demo Reviewer", "username": "demo" },
                "comment": "Patch Set 1: Code-Review+1\n\nLooks good (this is a demo event).",
                "eventCreatedOn": unix_ms / 1000,
            })
            .to_string(),
        });
    }
    out
}

/// The tick interval from the config value, in milliseconds.
pub fn interval_ms(value: Option<&str>) -> Result<u64, String> {
    match value {
        None => Ok(1000),
        Some(text) => match text.parse::<u64>() {
            Ok(ms) if (10..=3_600_000).contains(&ms) => Ok(ms),
            _ => Err(format!(
                "config `interval_ms` = {text:?}: expected milliseconds from 10 to 3600000"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tick_has_a_clock_event_and_every_fifth_a_gerrit_one() {
        let first = events("demo", 0, 1_700_000_000_000);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].topic, "demo/clock/tick");
        let v: serde_json::Value = serde_json::from_str(&first[0].payload).unwrap();
        assert_eq!(v["n"], 0);
        assert_eq!(v["time_ms"], 1_700_000_000_000u64);

        let fifth = events("demo", 4, 0);
        assert_eq!(fifth.len(), 2);
        assert_eq!(fifth[1].topic, "demo/gerrit/firehose/demo/comment-added");
        let v: serde_json::Value = serde_json::from_str(&fifth[1].payload).unwrap();
        assert_eq!(v["type"], "comment-added");
        assert_eq!(v["change"]["project"], "firehose/demo");
    }

    #[test]
    fn the_interval_is_checked() {
        assert_eq!(interval_ms(None), Ok(1000));
        assert_eq!(interval_ms(Some("250")), Ok(250));
        assert!(interval_ms(Some("0")).unwrap_err().contains("interval_ms"));
        assert!(interval_ms(Some("soon")).is_err());
    }
}
