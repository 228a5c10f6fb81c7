//! The built-in authorizer: anonymous and per-user grants from the config.
//!
//! Grants are MQTT topic filters. A subscription is allowed when a grant
//! covers every topic the requested filter could match (so `#` does not
//! cover `$SYS/#`); a publish when a grant matches the topic.

use std::collections::HashMap;
use std::sync::Arc;

use firehose_mqtt::Publish;
use firehose_mqtt::topic::{covers, matches};

use super::{Authorizer, BoxFuture, ClientInfo, ConnectDecision, Decision, Verdict};
use crate::config::Config;

/// The topic filters one principal (anonymous, or a user) may use.
#[derive(Debug, Clone)]
struct Grants {
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
    /// Whether clients without a user name may connect at all.
    anonymous_connect: bool,
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
            anonymous_connect: config.anonymous.connect,
            anonymous: Grants {
                subscribe: config.anonymous.subscribe.clone(),
                publish: config.anonymous.publish.clone(),
            },
            users,
            decoy_hash,
            verifier: super::Verifier::start(),
        }
    }

    /// True when `name` is a configured user and `password` its password.
    /// An unknown name costs as much as a wrong password.
    pub async fn verify_user(&self, name: &str, password: Option<&[u8]>) -> bool {
        let user = self.users.get(name);
        let hash = match user {
            Some(user) => user.password_hash.clone(),
            None => self.decoy_hash.clone(),
        };
        let password = password.unwrap_or_default().to_vec();
        let verified = self.verifier.verify(hash, password).await;
        user.is_some() && verified
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
                return if self.anonymous_connect {
                    ConnectDecision::Allow
                } else {
                    ConnectDecision::NotAuthorized("anonymous clients may not connect".into())
                };
            };
            if self.verify_user(name, password).await {
                ConnectDecision::Allow
            } else {
                ConnectDecision::BadCredentials
            }
        })
    }

    fn check_subscribe<'a>(
        &'a self,
        client: &'a ClientInfo,
        filter: &'a str,
    ) -> BoxFuture<'a, Verdict> {
        let decision = match self.grants(client) {
            Some(grants) if grants.subscribe.iter().any(|g| covers(g, filter)) => Decision::Allow,
            _ => Decision::Deny(format!("no subscribe grant covers {filter:?}")),
        };
        Box::pin(std::future::ready(Verdict::lasting(decision)))
    }

    fn check_publish<'a>(
        &'a self,
        client: &'a ClientInfo,
        publish: &'a Publish,
    ) -> BoxFuture<'a, Verdict> {
        let topic = publish.topic.as_str();
        let decision = match self.grants(client) {
            Some(grants) if grants.publish.iter().any(|g| matches(g, topic)) => Decision::Allow,
            Some(_) if client.username.is_none() => {
                Decision::Deny("anonymous clients may not publish".into())
            }
            _ => Decision::Deny(format!("no publish grant matches {topic:?}")),
        };
        Box::pin(std::future::ready(Verdict::lasting(decision)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firehose_mqtt::{ProtocolVersion, PublishProperties, QoS};

    fn client(username: Option<&str>) -> ClientInfo {
        ClientInfo {
            client_id: "c".into(),
            username: username.map(Arc::from),
            listener: "mqtt".into(),
            remote_addr: "127.0.0.1:5".parse().unwrap(),
            tls_identity: None,
            protocol: ProtocolVersion::V5,
        }
    }

    fn publish(topic: &str) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: None,
            properties: PublishProperties::default(),
            payload: bytes::Bytes::new(),
        }
    }

    fn authorizer() -> ConfigAuthorizer {
        let hash = super::super::hash_password(b"pw").unwrap();
        let config = Config::from_toml(
            &format!(
                "[[listener]]\nname = \"m\"\nkind = \"mqtt\"\naddress = \"127.0.0.1:1\"\n\
                 [[user]]\nname = \"ansible\"\npassword_hash = \"{hash}\"\npublish = [\"ansible/#\"]\n"
            ),
            "test",
        )
        .unwrap();
        ConfigAuthorizer::new(&config)
    }

    #[tokio::test]
    async fn anonymous_clients_read_everything_but_dollar_topics_and_write_nothing() {
        let auth = authorizer();
        let anon = client(None);
        assert_eq!(
            auth.check_connect(&anon, None).await,
            ConnectDecision::Allow
        );
        assert!(auth.check_subscribe(&anon, "#").await.is_allowed());
        assert!(
            auth.check_subscribe(&anon, "gerrit/+/comment-added")
                .await
                .is_allowed()
        );
        assert!(!auth.check_subscribe(&anon, "$SYS/#").await.is_allowed());
        assert!(
            !auth
                .check_publish(&anon, &publish("gerrit/x"))
                .await
                .is_allowed()
        );
    }

    #[tokio::test]
    async fn a_user_publishes_only_under_its_grants_and_needs_its_password() {
        let auth = authorizer();
        let user = client(Some("ansible"));
        assert_eq!(
            auth.check_connect(&user, Some(b"pw")).await,
            ConnectDecision::Allow
        );
        assert_eq!(
            auth.check_connect(&user, Some(b"nope")).await,
            ConnectDecision::BadCredentials
        );
        assert_eq!(
            auth.check_connect(&client(Some("nobody")), Some(b"pw"))
                .await,
            ConnectDecision::BadCredentials
        );
        assert!(
            auth.check_publish(&user, &publish("ansible/run/1"))
                .await
                .is_allowed()
        );
        assert!(
            !auth
                .check_publish(&user, &publish("gerrit/x"))
                .await
                .is_allowed()
        );
    }
}
