//! Webhook sources (a source exporting `wasi:http/incoming-handler`) with
//! the purpose-built `webhook-probe` from policies/testing: a request is
//! served in a fresh instance, its publishes go through the source's
//! checks, counters and sink, and traps, spinning handlers, oversized
//! answers and outgoing HTTP are contained.

use std::sync::Arc;
use std::time::{Duration, Instant};

use firehose_wasm::source::PublishCounts;
use firehose_wasm::{
    Message, Qos, SinkError, Source, SourceSink, SourceSpec, TopicPrefix, WebhookError,
    WebhookRequest, World, check_component,
};
use tokio::sync::{mpsc, watch};

use crate::common::{cache, component, engine, init_tracing};

/// Collects what the source publishes.
struct Collect(mpsc::UnboundedSender<Message>);

impl SourceSink for Collect {
    fn publish<'a>(
        &'a self,
        _source: &'a str,
        message: Message,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>> {
        let _ = self.0.send(message);
        Box::pin(async { Ok(()) })
    }
}

fn spec(name: &str) -> SourceSpec {
    let mut spec = SourceSpec::new(
        name,
        component("webhook-probe"),
        TopicPrefix::parse("hooks").unwrap(),
    )
    .with_config("prefix", "hooks/")
    .with_config("big_bytes", (3 << 20).to_string());
    spec.webhook_deadline = Duration::from_secs(3);
    spec
}

async fn load(spec: SourceSpec) -> Source {
    Source::load(engine(), cache(), spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn post(path: &str, body: &[u8]) -> WebhookRequest {
    WebhookRequest {
        method: "POST".into(),
        path_with_query: path.into(),
        headers: vec![
            ("Host".into(), "127.0.0.1:8080".into()),
            ("Content-Type".into(), "application/json".into()),
            ("X-Gerrit-Event".into(), "comment-added".into()),
        ],
        body: body.to_vec(),
        secure: false,
    }
}

struct Harness {
    source: Source,
    sink: Arc<Collect>,
    published: mpsc::UnboundedReceiver<Message>,
    stop: watch::Sender<bool>,
}

impl Harness {
    async fn new(spec: SourceSpec) -> Harness {
        let (tx, published) = mpsc::unbounded_channel();
        Harness {
            source: load(spec).await,
            sink: Arc::new(Collect(tx)),
            published,
            stop: watch::channel(false).0,
        }
    }

    async fn call(
        &self,
        request: WebhookRequest,
    ) -> Result<firehose_wasm::WebhookResponse, WebhookError> {
        self.source
            .handle_http(self.sink.clone(), self.stop.subscribe(), request)
            .await
    }
}

#[test]
fn the_probe_is_a_webhook_source_without_run() {
    let bytes = std::fs::read(component("webhook-probe")).unwrap();
    let info = check_component(engine(), &bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.world, World::Source);
    assert!(!info.has_run());
    let handler = info.http_handler().expect("an HTTP handler export");
    assert!(
        handler.starts_with("wasi:http/incoming-handler@0.2."),
        "{handler}"
    );
    assert_eq!(info.bus_version, firehose_wasm::WIT_VERSION);
    assert!(
        info.imports
            .iter()
            .any(|i| i.starts_with("wasi:http/types@0.2.")),
        "{:?}",
        info.imports
    );

    let probe = std::fs::read(component("source-probe")).unwrap();
    let info = check_component(engine(), &probe).unwrap();
    assert!(info.has_run() && info.http_handler().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_json_body_is_published_byte_for_byte_under_the_prefix() {
    init_tracing();
    let mut h = Harness::new(spec("hook")).await;
    assert!(h.source.is_webhook() && !h.source.has_run());
    let body = br#"{"type":"comment-added","comment":"caf\u00e9 \u2603"}"#;
    let response = h.call(post("/", body)).await.unwrap();
    assert_eq!(response.status, 202, "{response:?}");
    assert_eq!(
        response.body,
        format!("published {} bytes\n", body.len()).as_bytes()
    );
    assert!(
        response
            .headers
            .iter()
            .any(|(n, v)| n == "content-type" && v == "text/plain"),
        "{:?}",
        response.headers
    );
    let message = h.published.try_recv().expect("one message published");
    assert_eq!(message.topic, "hooks/events");
    assert_eq!(message.payload, body);
    assert_eq!(message.qos, Qos::AtLeastOnce);
    assert_eq!(message.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        h.source.counts(),
        PublishCounts {
            published: 1,
            rejected: 0
        }
    );

    // Not JSON: 400 and nothing published.
    let response = h.call(post("/", b"not json")).await.unwrap();
    assert_eq!(response.status, 400);
    assert!(h.published.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_sees_method_path_query_and_headers() {
    let h = Harness::new(spec("hook-headers")).await;
    let response = h.call(post("/headers?a=b", b"{}")).await.unwrap();
    assert_eq!(response.status, 200);
    let text = String::from_utf8(response.body).unwrap();
    assert!(text.starts_with("path: /headers?a=b\n"), "{text}");
    assert!(text.contains("x-gerrit-event: comment-added"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_outside_the_prefix_are_refused_and_counted_as_for_run() {
    let mut h = Harness::new(spec("hook-outside").with_config("topic", "elsewhere/x")).await;
    let response = h.call(post("/", b"{}")).await.unwrap();
    assert_eq!(response.status, 500);
    let text = String::from_utf8(response.body).unwrap();
    assert!(text.contains("OutsidePrefix(\"hooks/\")"), "{text}");
    assert!(h.published.try_recv().is_err());
    assert_eq!(h.source.counts().rejected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_source_refuses_publishes_from_its_handler() {
    let mut h = Harness::new(spec("hook-stopped")).await;
    h.stop.send_replace(true);
    let response = h.call(post("/", b"{}")).await.unwrap();
    assert_eq!(response.status, 500);
    assert!(
        String::from_utf8(response.body)
            .unwrap()
            .contains("ShuttingDown")
    );
    assert!(h.published.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_costs_only_its_request() {
    init_tracing();
    let mut h = Harness::new(spec("hook-trap")).await;
    let error = h.call(post("/trap", b"{}")).await.unwrap_err();
    assert!(matches!(error, WebhookError::Trap { .. }), "{error}");
    assert_eq!(error.status(), 500);
    // The next request gets a fresh instance.
    let response = h.call(post("/", b"[1]")).await.unwrap();
    assert_eq!(response.status, 202);
    assert_eq!(h.published.try_recv().unwrap().payload, b"[1]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_handler_is_stopped_at_the_deadline_without_holding_a_thread() {
    let mut spec = spec("hook-spin");
    spec.webhook_deadline = Duration::from_millis(300);
    let h = Harness::new(spec).await;
    let began = Instant::now();
    let (spun, other) = tokio::join!(h.call(post("/spin", b"{}")), async {
        // Runs while the guest spins: the guest yields.
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.call(post("/", b"{}")).await
    });
    let took = began.elapsed();
    let error = spun.unwrap_err();
    assert!(matches!(error, WebhookError::Timeout { .. }), "{error}");
    assert_eq!(error.status(), 504);
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(other.unwrap().status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_answer_is_not_relayed() {
    let h = Harness::new(spec("hook-big")).await;
    let error = h.call(post("/big", b"{}")).await.unwrap_err();
    assert!(
        matches!(error, WebhookError::ResponseTooLarge { limit, .. } if limit == 1 << 20),
        "{error}"
    );
    assert_eq!(error.status(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_http_is_refused_inside_the_guest() {
    let h = Harness::new(spec("hook-outgoing")).await;
    let response = h.call(post("/outgoing", b"{}")).await.unwrap();
    assert_eq!(response.status, 200);
    let text = String::from_utf8(response.body).unwrap();
    assert!(
        text.starts_with("err: ") && text.contains("HttpRequestDenied"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_the_export_is_not_a_webhook() {
    let source = load(SourceSpec::new(
        "plain",
        component("source-probe"),
        TopicPrefix::parse("probe").unwrap(),
    ))
    .await;
    assert!(!source.is_webhook() && source.has_run());
    let (tx, _rx) = mpsc::unbounded_channel();
    let error = source
        .handle_http(
            Arc::new(Collect(tx)),
            watch::channel(false).1,
            post("/", b"{}"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, WebhookError::NotAWebhook { .. }), "{error}");
    assert_eq!(error.status(), 404);
}
