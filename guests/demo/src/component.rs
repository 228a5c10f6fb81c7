//! The wit-bindgen glue: exports `firehose:bus/run` and publishes the
//! events of [`crate::events`] until the host says `shutting-down`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{CONFIG_KEYS, events, interval_ms};

wit_bindgen::generate!({ path: "../../wit", world: "source" });

use exports::firehose::bus::run::Guest;
use firehose::bus::config;
use firehose::bus::log::{Level, log};
use firehose::bus::publish::{PublishError, publish};
use firehose::bus::types::{Message, Qos};

struct Demo;

impl Guest for Demo {
    fn run() -> Result<(), String> {
        for warning in wasi_net::config::unknown_keys(config::keys(), CONFIG_KEYS) {
            log(Level::Warn, &warning);
        }
        let interval = Duration::from_millis(interval_ms(config::get("interval_ms").as_deref())?);
        let root = config::get("root").unwrap_or_else(|| "demo".to_owned());
        log(
            Level::Info,
            &format!("publishing under {root}/ every {} ms", interval.as_millis()),
        );
        for n in 0u64.. {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            for event in events(&root, n, now) {
                let message = Message {
                    topic: event.topic,
                    payload: event.payload.into_bytes(),
                    qos: Qos::AtMostOnce,
                    retain: false,
                    content_type: Some("application/json".to_owned()),
                    user_properties: Vec::new(),
                };
                match publish(&message) {
                    Ok(()) => {}
                    Err(PublishError::ShuttingDown) => {
                        log(Level::Info, "stopping");
                        return Ok(());
                    }
                    Err(e) => return Err(format!("publish to {}: {e:?}", message.topic)),
                }
            }
            std::thread::sleep(interval);
        }
        Ok(())
    }
}

export!(Demo);
