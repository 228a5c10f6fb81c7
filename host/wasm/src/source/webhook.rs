//! Webhook sources: a source whose component exports
//! `wasi:http/incoming-handler@0.2.x` gets the HTTP requests the broker
//! routes to it (`/hooks/<name>` on the websocket listeners; the routing,
//! the shared secret and the size limit of the request are the broker's).
//!
//! **One fresh instance per request.** Each request gets a store of its
//! own (the source's memory cap, its WASI context with its grants, the
//! same `publish` checks, counters and sink as `run`), a fresh instance
//! of the pre-linked component (tens of microseconds), and is dropped
//! with it. A request therefore never sees another's memory, a trap or
//! an out-of-memory costs only that request, and a long-lived `run` of
//! the same component is untouched (it has its own store). The price is
//! that a handler cannot keep state between requests in memory; a
//! source that needs state keeps it outside (it has none today: webhook
//! events are self-contained).
//!
//! **Limits.** At most [`MAX_CONCURRENT_REQUESTS`] requests of one source
//! run at once (each may use the full memory cap); a request that cannot
//! start within the deadline is [`WebhookError::Busy`]. The whole call --
//! waiting for a slot, instantiating, the handler, and reading its
//! response body -- runs under the source's webhook deadline (5 s by
//! default): the guest yields to the runtime every [`super::YIELD_TICKS`]
//! epoch ticks as in `run`, and when the deadline passes its store is
//! dropped ([`WebhookError::Timeout`]). The response body is read up to
//! [`MAX_RESPONSE_BYTES`]; a longer one is [`WebhookError::ResponseTooLarge`].
//!
//! **Outgoing HTTP only as granted.** `wasi:http/outgoing-handler` is
//! linked for every source; a request is sent only when one of the
//! source's `grants.http` URL patterns admits it, otherwise it fails in the
//! guest with `HTTP-request-denied` and the host logs it with the source's
//! name ([`GatedOutgoingHttp`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiBody, WasiHttpHooks, WasiHttpView};

use super::budget::LogBudget;
use super::net::{DENIAL_LOG_PER_SEC, NetPolicy};

/// How many requests of one source run at the same time.
pub const MAX_CONCURRENT_REQUESTS: usize = 4;

/// The largest response body relayed to the HTTP client.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The default deadline of one webhook request.
pub const DEFAULT_WEBHOOK_DEADLINE: Duration = Duration::from_secs(5);

/// An HTTP request for a webhook source, as the broker received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// What the component sees as its path and query (`/`, `/x?a=b`).
    pub path_with_query: String,
    /// Header names and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The complete body.
    pub body: Vec<u8>,
    /// Whether it came over TLS (the scheme the component sees).
    pub secure: bool,
}

/// The handler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a webhook request got no answer from the component. Each maps to
/// the HTTP status the broker answers with ([`WebhookError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("source {name}: does not export wasi:http/incoming-handler")]
    NotAWebhook { name: String },
    #[error("source {name}: the request cannot be passed on: {message}")]
    BadRequest { name: String, message: String },
    #[error(
        "source {name}: {MAX_CONCURRENT_REQUESTS} requests are running and none ended within {deadline_ms} ms"
    )]
    Busy { name: String, deadline_ms: u64 },
    #[error("source {name}: the handler did not answer within {deadline_ms} ms")]
    Timeout { name: String, deadline_ms: u64 },
    #[error("source {name}: cannot create an instance: {message}")]
    Instantiate { name: String, message: String },
    #[error("source {name}: the handler trapped: {message}")]
    Trap { name: String, message: String },
    #[error("source {name}: the handler ran out of memory (cap {memory_mib} MiB)")]
    OutOfMemory { name: String, memory_mib: u32 },
    #[error("source {name}: the handler returned without setting a response")]
    NoResponse { name: String },
    #[error("source {name}: the handler answered with an error: {message}")]
    Failed { name: String, message: String },
    #[error("source {name}: the response body is larger than {limit} bytes")]
    ResponseTooLarge { name: String, limit: usize },
    #[error("source {name}: reading the response body failed: {message}")]
    ResponseBody { name: String, message: String },
}

impl WebhookError {
    /// The HTTP status the client gets for this failure.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::NotAWebhook { .. } => 404,
            WebhookError::BadRequest { .. } => 400,
            WebhookError::Busy { .. } => 503,
            WebhookError::Timeout { .. } => 504,
            WebhookError::ResponseTooLarge { .. } | WebhookError::ResponseBody { .. } => 502,
            WebhookError::Instantiate { .. }
            | WebhookError::Trap { .. }
            | WebhookError::OutOfMemory { .. }
            | WebhookError::NoResponse { .. }
            | WebhookError::Failed { .. } => 500,
        }
    }
}

/// A source's outgoing `wasi:http` requests: sent (by wasmtime-wasi-http's
/// default client, TLS verified against the Mozilla roots) when one of its
/// HTTP grants admits the URL, else refused with `HttpRequestDenied` and
/// logged with the source's name, at most [`DENIAL_LOG_PER_SEC`] lines a
/// second.
pub(crate) struct GatedOutgoingHttp {
    source: Arc<str>,
    net: Arc<NetPolicy>,
    denials: LogBudget,
}

impl GatedOutgoingHttp {
    pub(crate) fn new(source: Arc<str>, net: Arc<NetPolicy>) -> Self {
        GatedOutgoingHttp {
            source,
            net,
            denials: LogBudget::new(DENIAL_LOG_PER_SEC),
        }
    }
}

type SendRequestFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for GatedOutgoingHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendRequestFuture {
        if let Some(tls) = self.net.admits_http(request.uri()) {
            return Box::new(async move {
                let (response, io) = super::http_client::send(request, options, tls).await?;
                Ok((
                    response.map(BodyExt::boxed_unsync),
                    Box::new(io) as Box<dyn Future<Output = _> + Send>,
                ))
            });
        }
        if let Some(suppressed) = self.denials.take() {
            // Scheme, host, port and path only: the user part of the
            // authority and the query may carry credentials.
            let uri = request.uri();
            let target = format!(
                "{}://{}{}{}",
                uri.scheme_str().unwrap_or("?"),
                uri.host().unwrap_or("?"),
                uri.port().map_or(String::new(), |p| format!(":{p}")),
                uri.path()
            );
            tracing::warn!(
                target: "firehose_wasm::source",
                source = &*self.source,
                addr = %target,
                suppressed,
                "outgoing HTTP request to {target} refused: no grants.http entry admits it"
            );
        }
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Builds the `hyper::Request` the component's handler receives.
pub(crate) fn hyper_request(req: WebhookRequest) -> Result<http::Request<Full<Bytes>>, String> {
    let scheme = if req.secure { "https" } else { "http" };
    let authority = req
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .and_then(|(_, v)| v.trim().parse::<http::uri::Authority>().ok())
        .map_or_else(|| "localhost".to_owned(), |a| a.to_string());
    if !req.path_with_query.starts_with('/') {
        return Err(format!(
            "the path {:?} does not start with /",
            req.path_with_query
        ));
    }
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(req.path_with_query.as_str())
        .build()
        .map_err(|e| format!("invalid request target: {e}"))?;
    let method = http::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", req.method))?;
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in &req.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value of header {name}"))?;
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(req.body)))
        .map_err(|e| format!("{e}"))
}

/// Aborts a spawned handler call when dropped: a request whose deadline
/// passed, or whose connection went away, takes its store with it.
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the handler sent through its `response-outparam`.
pub(crate) type Outparam = Result<http::Response<HyperOutgoingBody>, ErrorCode>;

/// Prepares a store for one request: the request and the response
/// outparam as resources, and the receiver of the response.
pub(crate) fn prepare<T: WasiHttpView>(
    store: &mut Store<T>,
    request: http::Request<Full<Bytes>>,
    secure: bool,
) -> wasmtime::Result<(
    wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostIncomingRequest>,
    wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostResponseOutparam>,
    oneshot::Receiver<Outparam>,
)> {
    let scheme = if secure { Scheme::Https } else { Scheme::Http };
    let (sender, receiver) = oneshot::channel();
    let mut http = store.data_mut().http();
    let req = http.new_incoming_request(scheme, request)?;
    let out = http.new_response_outparam(sender)?;
    Ok((req, out, receiver))
}

/// Reads a response the handler set: status, headers and a body of at most
/// [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_response(
    name: &str,
    response: http::Response<HyperOutgoingBody>,
) -> Result<WebhookResponse, WebhookError> {
    let (parts, body) = response.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match Limited::new(body, MAX_RESPONSE_BYTES).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Err(WebhookError::ResponseTooLarge {
                name: name.to_owned(),
                limit: MAX_RESPONSE_BYTES,
            });
        }
        Err(e) => {
            return Err(WebhookError::ResponseBody {
                name: name.to_owned(),
                message: e.to_string(),
            });
        }
    };
    Ok(WebhookResponse {
        status: parts.status.as_u16(),
        headers,
        body,
    })
}

/// The time left until `deadline`.
pub(crate) fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, headers: &[(&str, &str)]) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            path_with_query: path.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: b"{}".to_vec(),
            secure: false,
        }
    }

    #[test]
    fn the_request_keeps_method_path_headers_and_takes_the_host_as_authority() {
        let req = hyper_request(request(
            "/x?a=b",
            &[
                ("Host", "127.0.0.1:8080"),
                ("X-Gerrit-Event", "comment-added"),
            ],
        ))
        .unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:8080/x?a=b");
        assert_eq!(req.headers()["x-gerrit-event"], "comment-added");
        let req = hyper_request(WebhookRequest {
            secure: true,
            ..request("/", &[])
        })
        .unwrap();
        assert_eq!(req.uri().to_string(), "https://localhost/");
    }

    #[test]
    fn broken_requests_are_refused_saying_why() {
        assert!(
            hyper_request(request("x", &[]))
                .unwrap_err()
                .contains("start with /")
        );
        let bad_header = hyper_request(request("/", &[("bad name", "v")])).unwrap_err();
        assert!(bad_header.contains("invalid header name"), "{bad_header}");
        let bad_method = hyper_request(WebhookRequest {
            method: "B AD".into(),
            ..request("/", &[])
        })
        .unwrap_err();
        assert!(bad_method.contains("invalid method"), "{bad_method}");
    }

    #[test]
    fn each_failure_has_its_status() {
        let name = "s".to_owned();
        assert_eq!(
            WebhookError::Timeout {
                name: name.clone(),
                deadline_ms: 1
            }
            .status(),
            504
        );
        assert_eq!(
            WebhookError::Trap {
                name: name.clone(),
                message: String::new()
            }
            .status(),
            500
        );
        assert_eq!(
            WebhookError::Busy {
                name,
                deadline_ms: 1
            }
            .status(),
            503
        );
    }
}
