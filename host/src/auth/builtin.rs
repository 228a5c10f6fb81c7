//! The built-in authorizer: anonymous and per-user grants from the config.
//!
//! Grants are MQTT topic filters. A subscription is allowed when a grant
//! covers every topic the requested filter could match (so `#` does not
//! cover `$SYS/#`); a publish when a grant matches the topic.

use std::collections::HashMap;
use std::sync::Arc;

use firehose_mqtt::Publish;
use firehose_mqtt::topic::{covers, matches};

use super::{Authorizer, BoxFuture, ClientInfo, ConnectDecision, Decision};
use crate::config::Config;

/// What one principal (anonymous, or a user) may do.
#[derive(Debug, Clone)]
struct Grants {
    connect: bool,
    subscribe: Vec<String>,
    publish: Vec<String>,
}

#[derive(Debug)]
struct User {
    password_hash: String,
    grants: Grants,
}

/// Authorizer driven by `[anonymous]` and `[[user]]`.
#[derive(Debug)]
pub struct ConfigAuthorizer {
    anonymous: Grants,
    users: HashMap<String, Arc<User>>,
    /// Verified against for unknown users, so that a wrong name costs the
    /// same time as a wrong password.
    decoy_hash: String,
    verifier: super::Verifier,
}

impl ConfigAuthorizer {
    pub fn new(config: &Config) -> ConfigAuthorizer {
        let users = config
            .users
            .iter()
            .map(|u| {
                let user = User {
                    password_hash: u.password_hash.clone(),
                    grants: Grants {
                        connect: true,
                        subscribe: u.subscribe.clone(),
                        publish: u.publish.clone(),
                    },
                };
                (u.name.clone(), Arc::new(user))
            })
            .collect();
        let decoy_hash = config
            .users
            .first()
            .map(|u| u.password_hash.clone())
            .unwrap_or_default();
        ConfigAuthorizer {
            anonymous: Grants {
                connect: config.anonymous.connect,
                subscribe: config.anonymous.subscribe.clone(),
                publish: config.anonymous.publish.clone(),
            },
            users,
            decoy_hash,
            verifier: super::Verifier::start(),
        }
    }

    fn grants(&self, client: &ClientInfo) -> Option<&Grants> {
        match &client.username {
            None => Some(&self.anonymous),
            Some(name) => self.users.get(&**name).map(|u| &u.grants),
        }
    }
}

impl Authorizer for ConfigAuthorizer {
    fn check_connect<'a>(
        &'a self,
        client: &'a ClientInfo,
        password: Option<&'a [u8]>,
    ) -> BoxFuture<'a, ConnectDecision> {
        Box::pin(async move {
            let Some(name) = &client.username else {
                return if self.anonymous.connect {
                    ConnectDecision::Allow
                } else {
                    ConnectDecision::NotAuthorized("anonymous clients may not connect".into())
                };
            };
            let user = self.users.get(&**name).cloned();
            let hash = match &user {
                Some(user) => user.password_hash.clone(),
                None => self.decoy_hash.clone(),
            };
            let password = password.unwrap_or_default().to_vec();
            let verified = self.verifier.verify(hash, password).await;
            match user {
                Some(_) if verified => ConnectDecision::Allow,
                _ => ConnectDecision::BadCredentials,
            }
        })
    }

    fn check_subscribe<'a>(
        &'a self,
        client: &'a ClientInfo,
        filter: &'a str,
    ) -> BoxFuture<'a, Decision> {
        let decision = match self.grants(client) {
            Some(grants) if grants.subscribe.iter().any(|g| covers(g, filter)) => Decision::Allow,
            _ => Decision::Deny(format!("no subscribe grant covers {filter:?}")),
        };
        Box::pin(std::future::ready(decision))
    }

    fn check_publish<'a>(
        &'a self,
        client: &'a ClientInfo,
        publish: &'a Publish,
    ) -> BoxFuture<'a, Decision> {
        let topic = publish.topic.as_str();
        let decision = match self.grants(client) {
            Some(grants) if grants.publish.iter().any(|g| matches(g, topic)) => Decision::Allow,
            Some(_) if client.username.is_none() => {
                Decision::Deny("anonymous clients may not publish".into())
            }
            _ => Decision::Deny(format!("no publish grant matches {topic:?}")),
        };
        Box::pin(std::future::ready(decision))
    }
}
