//! Who may connect, subscribe and publish: one [`Authorizer`] interface that
//! every decision goes through: [`ConfigAuthorizer`] (grants from the
//! config) or [`PolicyAuthorizer`] (an ACL policy component, `[acl]`).
//!
//! The broker asks the authorizer and never decides on its own, so the
//! built-in, config-driven [`ConfigAuthorizer`] can be replaced by a WASM
//! ACL policy without touching sessions or routing. The interface is async
//! because a policy call (or password hashing) may take time; the broker
//! remembers subscribe and publish decisions per connection (by filter, by
//! topic) where the [`Verdict`] allows it.

mod builtin;
mod password;
mod policy;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use firehose_mqtt::{ProtocolVersion, Publish};

pub use builtin::ConfigAuthorizer;
pub use password::{Verifier, hash_password, verify_password};
pub use policy::PolicyAuthorizer;

/// A boxed future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the authorizer knows about a client.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: Arc<str>,
    /// `None` for anonymous clients.
    pub username: Option<Arc<str>>,
    /// The name of the listener it came in on.
    pub listener: Arc<str>,
    pub remote_addr: SocketAddr,
    /// Subject of a verified client certificate, if any.
    pub tls_identity: Option<Arc<str>>,
    pub protocol: ProtocolVersion,
}

/// The answer to a subscribe or publish check: `Allow`, or `Deny` with a
/// reason for logs (never sent to peers beyond the reason code). The same
/// type an ACL policy component answers with, so a policy's decision passes
/// through unchanged.
pub use firehose_wasm::Decision;

/// The answer to a connect check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectDecision {
    Allow,
    /// Unknown user or wrong password.
    BadCredentials,
    /// Known (or anonymous) but not allowed to connect.
    NotAuthorized(String),
}

/// Every access decision of the broker.
pub trait Authorizer: Send + Sync + 'static {
    /// Called once per CONNECT, after the packet is well formed.
    fn check_connect<'a>(
        &'a self,
        client: &'a ClientInfo,
        password: Option<&'a [u8]>,
    ) -> BoxFuture<'a, ConnectDecision>;

    /// Called for each filter of each SUBSCRIBE. For a shared subscription
    /// `filter` is the inner filter (without `$share/<group>/`).
    fn check_subscribe<'a>(
        &'a self,
        client: &'a ClientInfo,
        filter: &'a str,
    ) -> BoxFuture<'a, Verdict>;

    /// Called for each PUBLISH (topic alias already resolved) and for the
    /// will at connect time.
    fn check_publish<'a>(
        &'a self,
        client: &'a ClientInfo,
        publish: &'a Publish,
    ) -> BoxFuture<'a, Verdict>;
}

/// A subscribe or publish decision, and whether the broker may remember
/// it for the rest of the connection (per filter, or per topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    /// The same question (same client, same filter or topic) would get the
    /// same answer: it depends on nothing else, and it is not a denial
    /// because the policy failed.
    pub cacheable: bool,
}

impl Verdict {
    /// A decision that may be remembered.
    pub fn lasting(decision: Decision) -> Verdict {
        Verdict {
            decision,
            cacheable: true,
        }
    }

    pub fn is_allowed(&self) -> bool {
        self.decision.is_allowed()
    }

    /// A decision that must be asked again next time.
    pub fn once(decision: Decision) -> Verdict {
        Verdict {
            decision,
            cacheable: false,
        }
    }
}
