//! Webhooks: the plain-HTTP side of the websocket listeners (`ws`, `wss`)
//! routes `/hooks/<name>` to the webhook source `<name>` (a `[[source]]`
//! whose component exports `wasi:http/incoming-handler`); everything else
//! goes to the [viewer](crate::viewer).
//!
//! For a request to `/hooks/<name>[/rest][?query]`:
//!
//! 1. No running webhook source of that name: `404`.
//! 2. When the source has `[source.webhook] secret`, the request must
//!    present it, in any of (first found wins):
//!    - `Authorization: Bearer <secret>`;
//!    - `X-Firehose-Secret: <secret>`;
//!    - the query parameter `secret=<secret>`, for senders that cannot
//!      set headers: Gerrit's webhooks plugin posts to a configured URL
//!      and nothing else (no headers, no signature). A secret in a URL is
//!      weaker: it sits in the sender's config and in any proxy's access
//!      log, so use it over `https` (the `wss` port) and prefer a header
//!      where the sender can set one.
//!
//!    Missing: `401`; wrong: `403`; nothing reaches the component. The
//!    comparison takes time that depends only on the lengths. The secret
//!    is never logged, and the component never sees it (those headers and
//!    that query parameter are removed).
//! 3. The component's handler gets the request with the path below the
//!    mount point (`/` or `/rest`, with the rest of the query), in a fresh
//!    instance with the source's limits (see
//!    `firehose_wasm::source::webhook`); its answer goes back as is.
//!    A failure is answered with the status of
//!    [`WebhookError::status`](firehose_wasm::WebhookError::status) and
//!    logged with the source's name.
//!
//! The request body is bounded by the transport (`Content-Length` only,
//! at most `firehose_transport::http::MAX_BODY_SIZE`: `411` / `413`).
//! Log lines carry the path without its query (which may hold the secret).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firehose_transport::{HttpFuture, HttpHandler, HttpRequest, HttpResponse};
use firehose_wasm::{Source, SourceSink, WebhookRequest};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::WebhookSecret;
use crate::viewer::Viewer;

/// Where webhooks are mounted.
pub const MOUNT: &str = "/hooks/";

/// The query parameter that may carry the secret.
pub const SECRET_PARAM: &str = "secret";

/// The header that may carry the secret (besides `Authorization: Bearer`).
pub const SECRET_HEADER: &str = "X-Firehose-Secret";

/// How many refused requests (no or wrong secret) are logged per second
/// per hook; the rest are counted in the next line.
pub const REFUSALS_LOGGED_PER_SEC: u32 = 10;

/// A per-second budget of log lines: `Some(suppressed)` when a line may be
/// written (with how many were dropped since the last one), else `None`.
#[derive(Debug)]
struct LogBudget {
    window: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    fn new() -> Self {
        LogBudget {
            window: None,
            used: 0,
            suppressed: 0,
        }
    }

    fn take(&mut self, now: Instant) -> Option<u64> {
        match self.window {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {}
            _ => {
                self.window = Some(now);
                self.used = 0;
            }
        }
        if self.used >= REFUSALS_LOGGED_PER_SEC {
            self.suppressed += 1;
            return None;
        }
        self.used += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// One mounted webhook source.
pub struct Hook {
    source: Source,
    secret: Option<WebhookSecret>,
    sink: Arc<dyn SourceSink>,
    /// The source's stop flag: once set, its `publish` answers
    /// `shutting-down` in a request still running.
    stop: watch::Receiver<bool>,
    refusals: Mutex<LogBudget>,
}

impl Hook {
    pub fn new(
        source: Source,
        secret: Option<WebhookSecret>,
        sink: Arc<dyn SourceSink>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Hook {
            source,
            secret,
            sink,
            stop,
            refusals: Mutex::new(LogBudget::new()),
        }
    }
}

/// The webhook sources currently mounted, by name. The sources' supervisor
/// adds and removes them (start, reload, stop); the HTTP side reads.
#[derive(Default)]
pub struct Hooks {
    mounted: RwLock<BTreeMap<String, Arc<Hook>>>,
}

impl Hooks {
    /// Mounts `hook` at `/hooks/<name>`, replacing what was there.
    pub fn mount(&self, name: &str, hook: Hook) {
        let secured = hook.secret.is_some();
        self.mounted.write().insert(name.to_owned(), Arc::new(hook));
        if secured {
            info!(source = %name, path = %format!("{MOUNT}{name}"), "webhook mounted");
        } else {
            warn!(
                source = %name,
                path = %format!("{MOUNT}{name}"),
                "webhook mounted without a secret: anyone who reaches the websocket \
                 ports may post to it (set [source.webhook] secret)"
            );
        }
    }

    /// Unmounts `name`; requests to it get 404 from now on (one already
    /// running finishes, its publishes refused once the source stops).
    pub fn unmount(&self, name: &str) {
        if self.mounted.write().remove(name).is_some() {
            info!(source = %name, "webhook unmounted");
        }
    }

    /// The names mounted, sorted.
    pub fn names(&self) -> Vec<String> {
        self.mounted.read().keys().cloned().collect()
    }

    fn get(&self, name: &str) -> Option<Arc<Hook>> {
        self.mounted.read().get(name).cloned()
    }
}

/// The [`HttpHandler`] of the websocket listeners: webhooks under
/// [`MOUNT`], the viewer for everything else.
pub struct HttpFront {
    hooks: Arc<Hooks>,
    viewer: Viewer,
}

impl HttpFront {
    pub fn new(hooks: Arc<Hooks>) -> Self {
        HttpFront {
            hooks,
            viewer: Viewer,
        }
    }

    async fn serve_hook(
        &self,
        req: HttpRequest,
        name: &str,
        rest: &str,
        query: &str,
    ) -> HttpResponse {
        let Some(hook) = self.hooks.get(name) else {
            return HttpResponse::text(404, format!("no webhook source {name:?} here\n"));
        };
        let started = Instant::now();
        let mut headers = req.headers;
        let mut query = query.to_owned();
        if let Some(secret) = &hook.secret {
            let presented = presented_secret(&headers, &query);
            let refusal = match presented {
                None => Some(
                    HttpResponse::text(401, "this webhook needs its secret\n")
                        .with_header("WWW-Authenticate", "Bearer realm=\"firehose\""),
                ),
                Some(presented) if !secret.matches(presented.as_bytes()) => {
                    Some(HttpResponse::text(403, "wrong webhook secret\n"))
                }
                Some(_) => None,
            };
            if let Some(refusal) = refusal {
                let budget = hook.refusals.lock().take(Instant::now());
                if let Some(suppressed) = budget {
                    warn!(
                        source = %name,
                        remote = %req.remote_addr,
                        status = refusal.status,
                        suppressed,
                        "webhook request refused: {}",
                        if refusal.status == 401 { "no secret" } else { "wrong secret" }
                    );
                }
                return refusal;
            }
            // The component never sees the secret.
            headers.retain(|(n, v)| {
                !(n.eq_ignore_ascii_case(SECRET_HEADER)
                    || (n.eq_ignore_ascii_case("authorization") && bearer(v).is_some()))
            });
            query = without_secret(&query);
        }
        let path_with_query = match (rest, query.is_empty()) {
            ("", true) => "/".to_owned(),
            ("", false) => format!("/?{query}"),
            (rest, true) => rest.to_owned(),
            (rest, false) => format!("{rest}?{query}"),
        };
        let method = req.method.clone();
        let body_bytes = req.body.len();
        let request = WebhookRequest {
            method: req.method,
            path_with_query,
            headers,
            body: req.body,
            secure: req.secure,
        };
        let result = hook
            .source
            .handle_http(hook.sink.clone(), hook.stop.clone(), request)
            .await;
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(response) => {
                debug!(
                    source = %name,
                    method = %method,
                    path = %format!("{MOUNT}{name}{rest}"),
                    status = response.status,
                    body_bytes,
                    ms,
                    "webhook request served"
                );
                HttpResponse {
                    status: response.status,
                    headers: response.headers,
                    body: response.body,
                }
            }
            Err(error) => {
                let status = error.status();
                warn!(
                    source = %name,
                    method = %method,
                    path = %format!("{MOUNT}{name}{rest}"),
                    status,
                    ms,
                    %error,
                    "webhook request failed"
                );
                HttpResponse::text(status, format!("{}\n", public_reason(status)))
            }
        }
    }
}

/// What the client is told about a failure (the details are in the log).
fn public_reason(status: u16) -> &'static str {
    match status {
        400 => "the request cannot be passed to the webhook source",
        404 => "no webhook here",
        502 => "the webhook source gave an unusable answer",
        503 => "the webhook source is busy; try again",
        504 => "the webhook source did not answer in time",
        _ => "the webhook source failed",
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The secret a request presents, if any.
fn presented_secret<'a>(headers: &'a [(String, String)], query: &'a str) -> Option<&'a str> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    header("authorization")
        .and_then(bearer)
        .or_else(|| header(SECRET_HEADER).map(str::trim))
        .or_else(|| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == SECRET_PARAM)
                .map(|(_, v)| v)
        })
}

/// `query` without its `secret=` parameters.
fn without_secret(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(SECRET_PARAM) && !pair.is_empty())
        .collect::<Vec<_>>()
        .join("&")
}

/// Splits `/hooks/<name>[/rest][?query]` into name, rest and query; `None`
/// for a path outside [`MOUNT`].
fn route(target: &str) -> Option<(&str, &str, &str)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = path.split('#').next().unwrap_or_default();
    let below = path.strip_prefix(MOUNT)?;
    let (name, rest) = match below.find('/') {
        Some(i) => below.split_at(i),
        None => (below, ""),
    };
    Some((name, rest, query))
}

impl HttpHandler for HttpFront {
    fn handle(&self, req: HttpRequest) -> HttpFuture<'_> {
        Box::pin(async move {
            let target = req.path.clone();
            match route(&target) {
                Some((name, rest, query)) => self.serve_hook(req, name, rest, query).await,
                None if target.split(['?', '#']).next() == Some("/hooks") => {
                    HttpResponse::text(404, "POST to /hooks/<name>\n")
                }
                None => self.viewer.respond(&req),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_mount_name_a_source() {
        assert_eq!(route("/hooks/gerrit"), Some(("gerrit", "", "")));
        assert_eq!(
            route("/hooks/gerrit/x/y?secret=s&a=b"),
            Some(("gerrit", "/x/y", "secret=s&a=b"))
        );
        assert_eq!(
            route("/hooks/gerrit?secret=s"),
            Some(("gerrit", "", "secret=s"))
        );
        assert_eq!(route("/hooks/"), Some(("", "", "")));
        assert_eq!(route("/hooks"), None);
        assert_eq!(route("/"), None);
        assert_eq!(route("/hooksx/a"), None);
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_secret_is_found_in_a_bearer_token_a_header_or_the_query() {
        let h = headers(&[("Authorization", "Bearer abc")]);
        assert_eq!(presented_secret(&h, ""), Some("abc"));
        let h = headers(&[("x-firehose-secret", " def ")]);
        assert_eq!(presented_secret(&h, ""), Some("def"));
        assert_eq!(presented_secret(&[], "a=1&secret=ghi"), Some("ghi"));
        assert_eq!(presented_secret(&[], "a=1&secrets=x"), None);
        let h = headers(&[("Authorization", "Basic Zm9vOmJhcg==")]);
        assert_eq!(presented_secret(&h, ""), None);
    }

    #[test]
    fn refusals_over_the_budget_are_counted_not_logged() {
        let mut budget = LogBudget::new();
        let t0 = Instant::now();
        for _ in 0..REFUSALS_LOGGED_PER_SEC {
            assert_eq!(budget.take(t0), Some(0));
        }
        assert_eq!(budget.take(t0), None);
        assert_eq!(budget.take(t0 + Duration::from_millis(999)), None);
        assert_eq!(budget.take(t0 + Duration::from_millis(1000)), Some(2));
    }

    #[test]
    fn the_secret_parameter_is_removed_from_the_query() {
        assert_eq!(without_secret("secret=s"), "");
        assert_eq!(without_secret("a=1&secret=s&b=2"), "a=1&b=2");
        assert_eq!(without_secret("secretive=1"), "secretive=1");
    }
}
