//! The wit-bindgen glue: exports `firehose:bus/run`, which connects to
//! the configured event stream over `wasi:sockets`, publishes each event
//! with the `publish` import and reconnects with backoff until the host
//! says `shutting-down`; and `wasi:http/incoming-handler` (through the
//! `wasip2` crate), which publishes each event Gerrit's webhooks plugin
//! POSTs to `/hooks/<name>`.

use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use gerrit_events::Event;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

use crate::{CONFIG_KEYS, HEALTHY_AFTER, Settings, StreamEnd, pump};

wit_bindgen::generate!({ path: "../../wit", world: "source" });

use exports::firehose::bus::run::Guest;
use firehose::bus::config;
use firehose::bus::log::{Level, log};
use firehose::bus::publish::{PublishError, publish};
use firehose::bus::types::{Message, Qos};

struct Gerrit;

impl Guest for Gerrit {
    fn run() -> Result<(), String> {
        for warning in wasi_net::config::unknown_keys(config::keys(), CONFIG_KEYS) {
            log(Level::Warn, &warning);
        }
        let settings = Settings::from_config(config::get)?;
        let qos = qos(settings.qos);
        let Some(stream) = settings.stream.clone() else {
            log(
                Level::Info,
                "no `stream` configured: events come from webhooks only (POST /hooks/<name>)",
            );
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        };
        let mut backoff = settings.backoff();
        loop {
            match wasi_net::connect(&stream, Some(settings.connect_timeout)) {
                Ok(mut connection) => {
                    log(
                        Level::Info,
                        &format!("connected to the event stream {}", stream),
                    );
                    let started = Instant::now();
                    let mut published = 0u64;
                    let end = pump(&mut connection, settings.max_line_bytes, |item| {
                        let event = match item {
                            Ok(event) => event,
                            Err(skipped) => {
                                log(Level::Warn, &format!("event stream {skipped}"));
                                return ControlFlow::Continue(());
                            }
                        };
                        match publish(&message(&event, qos)) {
                            Ok(()) => {
                                published += 1;
                                ControlFlow::Continue(())
                            }
                            Err(PublishError::ShuttingDown) => ControlFlow::Break(()),
                            Err(e) => {
                                log(Level::Warn, &refused(&event, &e));
                                ControlFlow::Continue(())
                            }
                        }
                    });
                    let after = format!(
                        "after {published} events in {} s",
                        started.elapsed().as_secs()
                    );
                    match end {
                        StreamEnd::Stopped => {
                            log(Level::Info, "the broker is stopping; returning");
                            return Ok(());
                        }
                        StreamEnd::Closed => log(
                            Level::Warn,
                            &format!("the event stream {} was closed {after}", stream),
                        ),
                        StreamEnd::Failed(e) => log(
                            Level::Warn,
                            &format!("reading the event stream {} failed {after}: {e}", stream),
                        ),
                    }
                    if published > 0 || started.elapsed() >= HEALTHY_AFTER {
                        backoff.reset();
                    }
                }
                Err(e) => log(Level::Warn, &e.to_string()),
            }
            let delay = backoff.next_delay();
            log(
                Level::Info,
                &format!("reconnecting to {} in {}", stream, seconds(delay)),
            );
            std::thread::sleep(delay);
        }
    }
}

fn qos(level: u8) -> Qos {
    match level {
        0 => Qos::AtMostOnce,
        1 => Qos::AtLeastOnce,
        _ => Qos::ExactlyOnce,
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Gerrit {
    /// One webhook POST: the body is one event, routed and published like
    /// a stream line.
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if !matches!(request.method(), Method::Post) {
            return respond(out, 405, "POST the event JSON\n");
        }
        let settings = match Settings::from_config(config::get) {
            Ok(settings) => settings,
            Err(e) => {
                log(Level::Error, &e);
                return respond(out, 500, "the source's config is invalid\n");
            }
        };
        let body = match read_body(&request, settings.max_line_bytes) {
            Ok(body) => body,
            Err((status, why)) => return respond(out, status, &format!("{why}\n")),
        };
        let event = match gerrit_events::parse_webhook_body(&body) {
            Ok(event) => event,
            Err(e) => {
                log(Level::Warn, &format!("webhook body skipped: {e}"));
                return respond(out, 400, &format!("not a Gerrit event: {e}\n"));
            }
        };
        match publish(&message(&event, qos(settings.qos))) {
            Ok(()) => respond(out, 202, &format!("published to {}\n", event.topic)),
            Err(PublishError::ShuttingDown) => respond(out, 503, "the broker is stopping\n"),
            Err(e) => {
                let why = refused(&event, &e);
                log(Level::Warn, &why);
                respond(out, 422, &format!("{why}\n"));
            }
        }
    }
}

/// The request body, at most `max` bytes.
fn read_body(request: &IncomingRequest, max: usize) -> Result<Vec<u8>, (u16, String)> {
    let body = request
        .consume()
        .map_err(|()| (500, "the body was already taken".to_owned()))?;
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| (500, "the body stream was already taken".to_owned()))?;
        stream
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| (400, format!("reading the body: {e}")))?;
    }
    let _ = IncomingBody::finish(body);
    if bytes.len() > max {
        return Err((413, format!("the event is larger than {max} bytes")));
    }
    Ok(bytes)
}

/// Sends a complete plain-text response.
fn respond(out: ResponseOutparam, status: u16, text: &str) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = body.write() {
        let _ = stream.write_all(text.as_bytes());
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(body, None);
}

fn message(event: &Event, qos: Qos) -> Message {
    Message {
        topic: event.topic.clone(),
        payload: event.payload.clone(),
        qos,
        retain: false,
        content_type: Some("application/json".to_owned()),
        user_properties: Vec::new(),
    }
}

fn refused(event: &Event, e: &PublishError) -> String {
    let why = match e {
        PublishError::OutsidePrefix(prefix) => {
            format!("outside this source's prefix {prefix} (configure prefix = \"gerrit\")")
        }
        PublishError::InvalidTopic(rule) => format!("invalid topic: {rule}"),
        PublishError::TooLarge(limit) => format!(
            "{} bytes, larger than the broker's limit of {limit}",
            event.payload.len()
        ),
        PublishError::ShuttingDown => "the broker is stopping".to_owned(),
    };
    format!(
        "event {} for {} not published, skipped: {why}",
        event.event_type, event.topic
    )
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

export!(Gerrit);
wasip2::http::proxy::export!(Gerrit);
