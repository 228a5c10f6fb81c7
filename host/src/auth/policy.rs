//! The authorizer that asks an ACL policy component (world `acl-policy`).
//!
//! Passwords are still the broker's: a user name reaches the policy only
//! once its password was verified against `[[user]]`. Everything else is
//! the policy's decision, and a policy that traps, runs out of memory or
//! misses its deadline denies (fail closed): the failure is logged with the
//! component's name and counted by the runtime.

use std::sync::Arc;

use firehose_mqtt::{Publish, QoS};
use firehose_wasm::{AclPolicy, Client, Message, Qos};
use tracing::warn;

use super::{
    Authorizer, BoxFuture, ClientInfo, ConfigAuthorizer, ConnectDecision, Decision, Verdict,
};

/// Decisions by an ACL policy component, passwords by the config.
pub struct PolicyAuthorizer {
    policy: AclPolicy,
    passwords: Arc<ConfigAuthorizer>,
}

impl PolicyAuthorizer {
    pub fn new(policy: AclPolicy, passwords: Arc<ConfigAuthorizer>) -> PolicyAuthorizer {
        PolicyAuthorizer { policy, passwords }
    }
}

fn client(info: &ClientInfo) -> Client {
    Client {
        id: info.client_id.to_string(),
        username: info.username.as_deref().map(str::to_owned),
        listener: info.listener.to_string(),
        remote_address: info.remote_addr.to_string(),
        tls_identity: info.tls_identity.as_deref().map(str::to_owned),
    }
}

fn message(publish: &Publish) -> Message {
    Message {
        topic: publish.topic.clone(),
        payload: publish.payload.to_vec(),
        qos: match publish.qos {
            QoS::AtMostOnce => Qos::AtMostOnce,
            QoS::AtLeastOnce => Qos::AtLeastOnce,
            QoS::ExactlyOnce => Qos::ExactlyOnce,
        },
        retain: publish.retain,
        content_type: publish.properties.content_type.clone(),
        user_properties: publish.properties.user_properties.clone(),
    }
}

/// A policy's answer (remembered where its cache hints allow), or a
/// denial when it failed (never remembered: the next call may succeed).
fn decided(
    policy: &AclPolicy,
    what: &str,
    answer: Result<Decision, firehose_wasm::PolicyError>,
    cacheable: bool,
) -> Verdict {
    match answer {
        Ok(decision) => Verdict {
            decision,
            cacheable,
        },
        Err(error) => {
            warn!(component = policy.name(), check = what, %error, "ACL policy failed; denied");
            Verdict::once(Decision::Deny(format!(
                "ACL policy {} failed",
                policy.name()
            )))
        }
    }
}

impl Authorizer for PolicyAuthorizer {
    fn check_connect<'a>(
        &'a self,
        info: &'a ClientInfo,
        password: Option<&'a [u8]>,
    ) -> BoxFuture<'a, ConnectDecision> {
        Box::pin(async move {
            if let Some(name) = &info.username
                && !self.passwords.verify_user(name, password).await
            {
                return ConnectDecision::BadCredentials;
            }
            let answer = self.policy.check_connect(&client(info)).await;
            match decided(&self.policy, "connect", answer, false).decision {
                Decision::Allow => ConnectDecision::Allow,
                Decision::Deny(reason) => ConnectDecision::NotAuthorized(reason),
            }
        })
    }

    fn check_subscribe<'a>(
        &'a self,
        info: &'a ClientInfo,
        filter: &'a str,
    ) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let answer = self.policy.check_subscribe(&client(info), filter).await;
            let cacheable = self.policy.cache_hints().subscribe;
            decided(&self.policy, "subscribe", answer, cacheable)
        })
    }

    fn check_publish<'a>(
        &'a self,
        info: &'a ClientInfo,
        publish: &'a Publish,
    ) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let answer = self
                .policy
                .check_publish(&client(info), &message(publish))
                .await;
            let cacheable = self.policy.cache_hints().publish;
            decided(&self.policy, "publish", answer, cacheable)
        })
    }
}
