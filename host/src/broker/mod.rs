//! The broker: shared state (sessions, router, authorizer, counters) and
//! the tasks that serve it (one accept loop per listener, one task per
//! connection).
//!
//! - [`listeners`] binds the configured listeners and accepts sockets.
//! - [`connection`] runs one client connection from handshake to close.
//! - [`connect`] turns a CONNECT into a session and a CONNACK.
//! - [`inbound`] handles what a connected client sends.
//! - [`outbound`] writes queued deliveries to the client.
//! - [`will`] publishes last wills, now or after their delay.

mod connect;
mod connection;
mod inbound;
mod listeners;
mod outbound;
mod will;

use std::sync::Arc;
use std::time::Duration;

use firehose_transport::TlsConfigHandle;
use tracing::{debug, info, warn};

use crate::auth::{Authorizer, ClientInfo};
use crate::config::{Config, Limits};
use crate::message::Message;
use crate::metrics::{Metrics, RateLimit};
use crate::router::{FilterKey, Router};
use crate::session::{QueueLimits, Session, SessionRegistry};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};

pub use listeners::BoundListener;

/// Everything the connections share.
pub struct Broker {
    pub limits: Limits,
    pub router: Router,
    pub sessions: SessionRegistry,
    pub authorizer: Arc<dyn Authorizer>,
    pub metrics: Metrics,
    /// Rate limit for the debug line logged per refused publish.
    refusal_log: RateLimit,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Broker {
    pub fn new(limits: Limits, authorizer: Arc<dyn Authorizer>) -> Broker {
        Broker {
            limits,
            router: Router::default(),
            sessions: SessionRegistry::default(),
            authorizer,
            metrics: Metrics::default(),
            refusal_log: RateLimit::new(Duration::from_secs(1)),
        }
    }

    /// The per-session queue bounds.
    pub fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            max_queued_messages: self.limits.max_queued_messages,
            max_queued_qos0: self.limits.max_queued_qos0,
        }
    }

    /// Routes an accepted message to its subscribers.
    pub fn publish(&self, message: Arc<Message>) {
        self.metrics.messages_received.incr();
        self.router.publish(message, &self.metrics);
    }

    /// Counts a refused publish and logs it at debug level, at most once a
    /// second (the rest are counted in the next line).
    pub fn note_refused_publish(&self, client: &ClientInfo, topic: &str, reason: &str) {
        self.metrics.publishes_refused.incr();
        if let Some(suppressed) = self.refusal_log.check() {
            debug!(
                client_id = %client.client_id,
                username = client.username.as_deref().unwrap_or(""),
                listener = %client.listener,
                topic,
                reason,
                suppressed,
                total_refused = self.metrics.publishes_refused.get(),
                "publish refused"
            );
        }
    }

    /// Ends a session for good: its subscriptions leave the router and a
    /// will still waiting for its delay is published now.
    pub fn discard_session(&self, session: &Arc<Session>) {
        let (filters, will) = {
            let mut state = session.lock();
            let filters: Vec<String> = state.subscriptions.drain().map(|(f, _)| f).collect();
            (filters, state.pending_will.take())
        };
        for filter in &filters {
            if let Ok(key) = filter_key(filter) {
                self.router.unsubscribe(key, session);
            }
        }
        if let Some(will) = will {
            self.publish(will);
        }
    }
}

/// Splits a subscription filter into its shared group and inner filter.
pub fn filter_key(filter: &str) -> Result<FilterKey<'_>, &'static str> {
    Ok(match firehose_mqtt::topic::parse_shared(filter)? {
        Some(shared) => FilterKey {
            group: Some(shared.group),
            filter: shared.filter,
        },
        None => FilterKey {
            group: None,
            filter,
        },
    })
}

/// A running broker: its bound listeners and the means to stop it.
pub struct Running {
    pub broker: Arc<Broker>,
    pub listeners: Vec<BoundListener>,
    /// The certificate the TLS listeners share, if any.
    tls: Option<Arc<TlsConfigHandle>>,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
    tasks: tokio::task::JoinSet<()>,
}

impl Running {
    /// Binds every listener of `config` and starts serving.
    pub async fn start(
        config: &Config,
        authorizer: Arc<dyn Authorizer>,
    ) -> anyhow::Result<Running> {
        let broker = Arc::new(Broker::new(config.limits.clone(), authorizer));
        let (trigger, shutdown) = shutdown::channel();
        let (listeners, tls) = listeners::bind_all(config).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for listener in &listeners {
            tasks.spawn(listeners::accept_loop(
                listener.clone(),
                broker.clone(),
                shutdown.clone(),
            ));
        }
        Ok(Running {
            broker,
            listeners,
            tls,
            trigger,
            shutdown,
            tasks,
        })
    }

    /// Re-reads what can change without a restart (SIGHUP): the TLS
    /// certificate and key. New handshakes use the new ones; established
    /// connections are untouched. On error the old ones stay in force.
    pub async fn reload(&self) {
        let Some(tls) = self.tls.clone() else {
            info!("reload: nothing to reload");
            return;
        };
        match tokio::task::spawn_blocking(move || tls.reload()).await {
            Ok(Ok(())) => info!("reload: TLS certificate reloaded"),
            Ok(Err(error)) => {
                warn!(%error, "reload: TLS certificate not reloaded; the previous one stays in force")
            }
            Err(error) => warn!(%error, "reload: TLS reload task failed"),
        }
    }

    /// Stops accepting, tells every connection to close, and waits a
    /// moment for them.
    pub async fn stop(mut self) {
        info!("shutting down");
        self.trigger.trigger();
        self.broker.sessions.close_all();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        drop(self.shutdown);
    }
}
