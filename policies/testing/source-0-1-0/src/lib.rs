//! A source built against `firehose:bus@0.1.0` exactly as released: its
//! `wit/` is a frozen copy of 0.1.0's `types`, `config`, `log` and
//! `source` interfaces and the `source` world, never edited. The tests
//! run it on the current host (a later 0.1.x) to prove that a minor
//! version bump keeps older components loading and publishing
//! (host/wasm/tests/components/semver.rs, tests/e2e/test_component_check.py).
//!
//! It publishes `count` messages (config, default 3) to
//! `<prefix>compat/<n>` (payload `<n>`, retained), numbered from 1, with
//! `publish`, then publishes `<prefix>compat/done` and idles (a 100 ms
//! sleep between heartbeats to `<prefix>compat/idle`) until the host
//! says `shutting-down`. Config: `prefix` (as configured, e.g. `old/`),
//! `count`.

#[cfg(target_arch = "wasm32")]
mod component {
    use std::time::Duration;

    wit_bindgen::generate!({ path: "wit", world: "source" });

    use exports::firehose::bus::run::Guest;
    use firehose::bus::config;
    use firehose::bus::publish::{PublishError, publish};
    use firehose::bus::types::{Message, Qos};

    struct Compat;

    fn message(topic: String, payload: String, retain: bool) -> Message {
        Message {
            topic,
            payload: payload.into_bytes(),
            qos: Qos::AtLeastOnce,
            retain,
            content_type: None,
            user_properties: Vec::new(),
        }
    }

    impl Guest for Compat {
        fn run() -> Result<(), String> {
            let prefix = config::get("prefix").ok_or("config `prefix` is missing")?;
            let count: u32 = match config::get("count") {
                Some(text) => text.parse().map_err(|e| format!("config `count`: {e}"))?,
                None => 3,
            };
            for n in 1..=count {
                publish(&message(format!("{prefix}compat/{n}"), n.to_string(), true))
                    .map_err(|e| format!("publish {n}: {e:?}"))?;
            }
            publish(&message(
                format!("{prefix}compat/done"),
                count.to_string(),
                true,
            ))
            .map_err(|e| format!("publish done: {e:?}"))?;
            loop {
                std::thread::sleep(Duration::from_millis(100));
                match publish(&message(
                    format!("{prefix}compat/idle"),
                    String::new(),
                    false,
                )) {
                    Ok(()) => {}
                    Err(PublishError::ShuttingDown) => return Ok(()),
                    Err(e) => return Err(format!("idle: {e:?}")),
                }
            }
        }
    }

    export!(Compat);
}
