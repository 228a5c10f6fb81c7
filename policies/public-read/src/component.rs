//! The wit-bindgen glue: exports `firehose:bus/acl` over [`Policy`].
//! The config is read once per instance; a bad config denies everything
//! (fail closed) and says why in the log and in each denial.

use std::sync::OnceLock;

use crate::{CONFIG_KEYS, Policy};

wit_bindgen::generate!({ path: "../../wit", world: "acl-policy" });

use exports::firehose::bus::acl::{Cacheable, Guest};
use firehose::bus::config;
use firehose::bus::log::{Level, log};
use firehose::bus::types::{Client, Decision, Message};

struct Component;

fn policy() -> Result<&'static Policy, &'static str> {
    static POLICY: OnceLock<Result<Policy, String>> = OnceLock::new();
    POLICY
        .get_or_init(|| {
            for key in config::keys() {
                if !CONFIG_KEYS.contains(&key.as_str()) {
                    log(
                        Level::Warn,
                        &format!("config `{key}`: unknown key, ignored"),
                    );
                }
            }
            let policy = Policy::from_config(config::get);
            if let Err(e) = &policy {
                log(Level::Error, &format!("{e}; denying everything"));
            }
            policy
        })
        .as_ref()
        .map_err(String::as_str)
}

fn decide(check: impl FnOnce(&Policy) -> crate::Decision) -> Decision {
    match policy().map_err(str::to_owned).and_then(check) {
        Ok(()) => Decision::Allow,
        Err(reason) => Decision::Deny(reason),
    }
}

impl Guest for Component {
    fn cache_hints() -> Cacheable {
        Cacheable::SUBSCRIBE | Cacheable::PUBLISH
    }

    fn check_connect(_client: Client) -> Decision {
        decide(Policy::check_connect)
    }

    fn check_subscribe(_client: Client, filter: String) -> Decision {
        decide(|p| p.check_subscribe(&filter))
    }

    fn check_publish(client: Client, message: Message) -> Decision {
        decide(|p| p.check_publish(client.username.as_deref(), &message.topic))
    }
}

export!(Component);
