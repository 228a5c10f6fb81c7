//! The wit-bindgen glue: exports `firehose:bus/transform` over
//! [`Redactor`]. The config is read once per instance; a bad config traps
//! every call after logging why, so the chain's `on_error` mode applies
//! (drop by default): unredacted payloads never pass by mistake.

use std::sync::OnceLock;

use crate::{CONFIG_KEYS, Redactor};

wit_bindgen::generate!({ path: "../../wit", world: "transform-policy" });

use exports::firehose::bus::transform::{Guest, Outcome};
use firehose::bus::config;
use firehose::bus::log::{Level, log};
use firehose::bus::types::Message;

struct Component;

fn redactor() -> &'static Redactor {
    static REDACTOR: OnceLock<Redactor> = OnceLock::new();
    REDACTOR.get_or_init(|| {
        for key in config::keys() {
            if !CONFIG_KEYS.contains(&key.as_str()) {
                log(
                    Level::Warn,
                    &format!("config `{key}`: unknown key, ignored"),
                );
            }
        }
        Redactor::from_config(config::get).unwrap_or_else(|e| {
            log(Level::Error, &e);
            panic!("{e}")
        })
    })
}

impl Guest for Component {
    fn apply(message: Message) -> Outcome {
        match redactor().redact(&message.payload) {
            Some(payload) => Outcome::Replace(vec![Message { payload, ..message }]),
            None => Outcome::Pass,
        }
    }
}

export!(Component);
