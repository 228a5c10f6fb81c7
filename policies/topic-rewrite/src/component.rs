//! The wit-bindgen glue: exports `firehose:bus/transform` over
//! [`Rewrite`]. The config is read once per instance; a bad config traps
//! every call after logging why, so the chain's `on_error` mode applies.

use std::sync::OnceLock;

use crate::{CONFIG_KEYS, Rewrite};

wit_bindgen::generate!({ path: "../../wit", world: "transform-policy" });

use exports::firehose::bus::transform::{Guest, Outcome};
use firehose::bus::config;
use firehose::bus::log::{Level, log};
use firehose::bus::types::Message;

struct Component;

fn rewrite() -> &'static Rewrite {
    static REWRITE: OnceLock<Rewrite> = OnceLock::new();
    REWRITE.get_or_init(|| {
        for key in config::keys() {
            if !CONFIG_KEYS.contains(&key.as_str()) {
                log(
                    Level::Warn,
                    &format!("config `{key}`: unknown key, ignored"),
                );
            }
        }
        let rewrite = Rewrite::from_config(config::get).unwrap_or_else(|e| {
            log(Level::Error, &e);
            panic!("{e}")
        });
        if rewrite.is_identity() {
            log(
                Level::Warn,
                "neither `prefix` nor `rename` is configured: every message passes",
            );
        }
        rewrite
    })
}

impl Guest for Component {
    fn apply(message: Message) -> Outcome {
        match rewrite().rewrite(&message.topic) {
            Some(topic) => Outcome::Replace(vec![Message { topic, ..message }]),
            None => Outcome::Pass,
        }
    }
}

export!(Component);
