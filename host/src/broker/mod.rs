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

use arc_swap::ArcSwap;

use crate::auth::{Authorizer, ClientInfo};
use crate::config::{Config, Limits};
use crate::message::Message;
use crate::metrics::{Metrics, RateLimit};
use crate::policy::{PolicyRuntime, PolicySet};
use crate::router::{FilterKey, Router};
use crate::session::{QueueLimits, Session, SessionRegistry};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};

pub use listeners::BoundListener;

/// Everything the connections share.
pub struct Broker {
    pub limits: Limits,
    pub router: Router,
    pub sessions: SessionRegistry,
    /// The authorizer and transform chains in force; swapped whole on
    /// reload.
    policies: ArcSwap<PolicySet>,
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
    pub fn new(limits: Limits, policies: PolicySet) -> Broker {
        Broker {
            limits,
            router: Router::default(),
            sessions: SessionRegistry::default(),
            policies: ArcSwap::from_pointee(policies),
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

    /// The authorizer in force.
    pub fn authorizer(&self) -> Arc<dyn Authorizer> {
        self.policies.load().authorizer.clone()
    }

    /// The policy set in force (authorizer and transform chains).
    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies.load_full()
    }

    /// The generation of the policy set in force: remembered decisions
    /// from another generation are stale.
    pub fn policy_generation(&self) -> u64 {
        self.policies.load().generation
    }

    /// Puts `policies` in force for every decision and message from now on.
    pub fn swap_policies(&self, policies: PolicySet) {
        self.policies.store(Arc::new(policies));
    }

    /// Whether a message to `topic` goes through a transform chain.
    pub fn transforms_apply(&self, topic: &str) -> bool {
        self.policies.load().transforms.for_topic(topic).is_some()
    }

    /// Routes an accepted message to its subscribers, without transforms.
    pub(crate) fn route(&self, message: Arc<Message>) {
        self.metrics.messages_received.incr();
        self.router.publish(message, &self.metrics);
    }

    /// Routes an accepted message, through the transform chain for its
    /// topic if there is one. The caller does not wait: a message that
    /// needs its chain is handed to a task of its own (wills).
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) {
        if self.transforms_apply(&message.topic) {
            let broker = self.clone();
            tokio::spawn(async move { broker.ingest(message).await });
        } else {
            self.route(message);
        }
    }

    /// Routes an accepted message after the transform chain for its topic
    /// (if any) has decided what becomes of it. Awaits while a transform
    /// runs; never waits for a slow subscriber (their queues apply their
    /// own limits). Client publishes and sources' messages come this way.
    pub async fn ingest(&self, message: Arc<Message>) {
        let policies = self.policies.load_full();
        let Some(chain) = policies.transforms.for_topic(&message.topic) else {
            self.route(message);
            return;
        };
        let max_payload = self.limits.max_packet_size as usize;
        for message in chain.apply(message, max_payload).await {
            self.route(message);
        }
    }

    /// Runs `message` through the transform chain for its topic (if any)
    /// and appends what is to be routed to `staged`, in order, without
    /// routing it: the caller routes a batch at once with
    /// [`Broker::route_staged`].
    pub async fn transform_into(&self, message: Arc<Message>, staged: &mut Vec<Arc<Message>>) {
        self.transform_all_into([message], staged).await;
    }

    /// [`Broker::transform_into`] for a batch, in order, with the policy
    /// set loaded once for all of it.
    pub async fn transform_all_into(
        &self,
        messages: impl IntoIterator<Item = Arc<Message>>,
        staged: &mut Vec<Arc<Message>>,
    ) {
        let policies = self.policies.load_full();
        let max_payload = self.limits.max_packet_size as usize;
        for message in messages {
            match policies.transforms.for_topic(&message.topic) {
                None => staged.push(message),
                Some(chain) => staged.extend(chain.apply(message, max_payload).await),
            }
        }
    }

    /// Routes the messages [`Broker::transform_into`] staged, in order.
    pub fn route_staged(&self, staged: &mut Vec<Arc<Message>>) {
        for message in staged.drain(..) {
            self.route(message);
        }
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
    pub fn discard_session(self: &Arc<Self>, session: &Arc<Session>) {
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
    /// The WASM engine and compile cache every component of this broker
    /// (policies, sources) is loaded with.
    pub runtime: PolicyRuntime,
    /// The `[[source]]` components, each supervised on its own task.
    pub sources: crate::sources::Sources,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
    tasks: tokio::task::JoinSet<()>,
}

impl Running {
    /// Loads the policies of `config`, binds every listener and starts
    /// serving. A policy that cannot be loaded stops the start: the
    /// broker never runs unprotected.
    pub async fn start(config: &Config) -> anyhow::Result<Running> {
        let runtime = PolicyRuntime::new(config)?;
        let policies = PolicySet::load(config, &runtime).await?;
        let broker = Arc::new(Broker::new(config.limits.clone(), policies));
        let (trigger, shutdown) = shutdown::channel();
        let hooks = Arc::new(crate::hooks::Hooks::default());
        let (listeners, tls) = listeners::bind_all(config, hooks.clone()).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for listener in &listeners {
            tasks.spawn(listeners::accept_loop(
                listener.clone(),
                broker.clone(),
                shutdown.clone(),
            ));
        }
        let sources =
            crate::sources::Sources::start(config, &broker, &runtime.engine, &runtime.cache, hooks)
                .await?;
        Ok(Running {
            broker,
            listeners,
            tls,
            runtime,
            sources,
            trigger,
            shutdown,
            tasks,
        })
    }

    /// Applies what can change without a restart (SIGHUP), from `config`
    /// as re-read by the caller: the TLS certificate and key (new
    /// handshakes use them) and the policy set (every component loaded
    /// and checked first, then swapped in whole). Established connections
    /// are untouched. Whatever fails to load leaves the old one in force.
    pub async fn reload(&self, config: &Config) {
        self.reload_policies(config).await;
        self.sources.reload(config).await;
        self.reload_tls().await;
    }

    async fn reload_policies(&self, config: &Config) {
        match PolicySet::load(config, &self.runtime).await {
            Ok(policies) => {
                let chains = policies.transforms.iter().count();
                let acl = config.acl.is_some();
                self.broker.swap_policies(policies);
                info!(
                    acl_policy = acl,
                    transform_chains = chains,
                    "reload: policies reloaded"
                );
            }
            Err(error) => warn!(
                error = format!("{error:#}"),
                "reload: policies not reloaded; the previous ones stay in force"
            ),
        }
    }

    async fn reload_tls(&self) {
        let Some(tls) = self.tls.clone() else {
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
        self.sources.stop().await;
        self.trigger.trigger();
        self.broker.sessions.close_all();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        drop(self.shutdown);
    }
}
