//! The wit-bindgen glue: `firehose:bus` imports from world
//! `webhook-source`, the HTTP handler export from the `wasip2` crate.

use std::io::{Read, Write};

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

use crate::{Action, action, check_json, outgoing_target, split_url, topic};

wit_bindgen::generate!({ path: "../../../wit", world: "webhook-source" });

use firehose::bus::config;
use firehose::bus::log::{Level, log};
use firehose::bus::publish::publish;
use firehose::bus::types::{Message, Qos};

struct Probe;

/// Sends a complete response.
fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let outgoing = response.body().expect("the response body is taken once");
    ResponseOutparam::set(out, Ok(response));
    {
        let mut stream = outgoing.write().expect("the body stream is taken once");
        for chunk in body.chunks(4096) {
            if stream.write_all(chunk).is_err() {
                return;
            }
        }
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request.consume().map_err(|()| "body already consumed")?;
    let mut bytes = Vec::new();
    {
        let mut stream = body.stream().map_err(|()| "body stream already taken")?;
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading the body: {e}"))?;
    }
    let _ = IncomingBody::finish(body);
    Ok(bytes)
}

fn try_outgoing(path: &str) -> String {
    let url = outgoing_target(path);
    let Some((https, authority, path_with_query)) = split_url(&url) else {
        return format!("err: bad url {url:?}");
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(if https { &Scheme::Https } else { &Scheme::Http }));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path_with_query));
    match wasip2::http::outgoing_handler::handle(request, None) {
        Err(e) => format!("err: {e:?}"),
        Ok(future) => {
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => {
                    let status = response.status();
                    let body = response
                        .consume()
                        .ok()
                        .and_then(|body| {
                            let stream = body.stream().ok()?;
                            let mut bytes = Vec::new();
                            while let Ok(chunk) = stream.blocking_read(4096) {
                                bytes.extend(chunk);
                                if bytes.len() > 4096 {
                                    break;
                                }
                            }
                            Some(bytes)
                        })
                        .unwrap_or_default();
                    format!("ok: {status} {}", String::from_utf8_lossy(&body))
                }
                Some(Ok(Err(e))) => format!("err: {e:?}"),
                other => format!("err: {other:?}"),
            }
        }
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        match action(&path) {
            Action::Trap => panic!("the probe traps on request"),
            Action::Spin => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Action::Big => {
                let size = config::get("big_bytes")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(2 << 20);
                respond(out, 200, &vec![b'x'; size]);
            }
            Action::Outgoing => respond(out, 200, try_outgoing(&path).as_bytes()),
            Action::Headers => {
                let mut text = format!("path: {path}\n");
                for (name, value) in request.headers().entries() {
                    text.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(&value)));
                }
                respond(out, 200, text.as_bytes());
            }
            Action::Publish => {
                if !matches!(request.method(), Method::Post) {
                    return respond(out, 405, b"POST only\n");
                }
                let body = match read_body(&request) {
                    Ok(body) => body,
                    Err(e) => return respond(out, 500, e.as_bytes()),
                };
                if let Err(e) = check_json(&body) {
                    log(Level::Info, &format!("refused a request: {e}"));
                    return respond(out, 400, e.as_bytes());
                }
                let message = Message {
                    topic: topic(config::get("topic"), config::get("prefix")),
                    payload: body,
                    qos: Qos::AtLeastOnce,
                    retain: false,
                    content_type: Some("application/json".to_owned()),
                    user_properties: Vec::new(),
                };
                let n = message.payload.len();
                match publish(&message) {
                    Ok(()) => respond(out, 202, format!("published {n} bytes\n").as_bytes()),
                    Err(e) => respond(out, 500, format!("publish: {e:?}\n").as_bytes()),
                }
            }
        }
    }
}

wasip2::http::proxy::export!(Probe);
