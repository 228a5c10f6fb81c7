//! Websocket and websocket/TLS listeners, proved with a tokio-tungstenite
//! client: subprotocol negotiation, bytes across frames, pings while the
//! broker only reads, text frames and close; and plain HTTP on the same port
//! (handler responses, request bodies, oversized heads).

mod common;

use std::sync::{Arc, Mutex};

use common::{TempDir, accept_one, bind, client_config, spawn_echo, tls_connect};
use firehose_transport::{
    Connection, HttpFuture, HttpHandler, HttpRequest, HttpResponse, ListenerKind, MqttStream,
    TlsConfigHandle, TlsSource, TransportError,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Opens a websocket on `stream` offering `protocols`.
async fn ws_client<S>(
    stream: S,
    url: &str,
    protocols: &[&str],
) -> Result<(WebSocketStream<S>, Response), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = url.into_client_request().unwrap();
    if !protocols.is_empty() {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(&protocols.join(", ")).unwrap(),
        );
    }
    tokio_tungstenite::client_async_with_config(request, stream, None).await
}

fn protocol(response: &Response) -> Option<&str> {
    response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap())
}

/// A websocket listener whose one connection the test drives from the
/// server side, with a client already upgraded to it.
async fn connected_pair(path: &str) -> (Connection, WebSocketStream<TcpStream>) {
    let listener = bind(ListenerKind::Ws, None, None).await;
    let addr = listener.local_addr();
    let accepted = accept_one(listener);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, response) = ws_client(tcp, &format!("ws://{addr}{path}"), &["mqtt"])
        .await
        .unwrap();
    assert_eq!(protocol(&response), Some("mqtt"));
    let connection = accepted.await.unwrap().unwrap().unwrap();
    (connection, client)
}

#[tokio::test]
async fn ws_negotiates_mqtt_then_mqttv31_then_none() {
    let addr = spawn_echo(bind(ListenerKind::Ws, None, None).await);
    for (offered, expected) in [
        (&["mqtt"][..], Some("mqtt")),
        (&["mqttv3.1"][..], Some("mqttv3.1")),
        (&["mqttv3.1", "mqtt"][..], Some("mqtt")),
        (&[][..], None),
    ] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut client, response) = ws_client(tcp, &format!("ws://{addr}/mqtt"), offered)
            .await
            .unwrap();
        assert_eq!(protocol(&response), expected, "offered {offered:?}");
        client
            .send(Message::binary(&b"\xc0\x00"[..]))
            .await
            .unwrap();
        let echoed = client.next().await.unwrap().unwrap();
        assert_eq!(echoed, Message::binary(&b"\xc0\x00"[..]));
    }
}

#[tokio::test]
async fn ws_refuses_an_unsupported_subprotocol_naming_the_supported_ones() {
    let listener = bind(ListenerKind::Ws, None, None).await;
    let addr = listener.local_addr();
    let accepted = accept_one(listener);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let error = ws_client(tcp, &format!("ws://{addr}/mqtt"), &["stomp"])
        .await
        .unwrap_err();
    let WsError::Http(response) = error else {
        panic!("expected an HTTP refusal, got {error:?}");
    };
    assert_eq!(response.status(), 400);
    let body = String::from_utf8(response.body().clone().unwrap()).unwrap();
    assert!(body.contains("supported: mqtt, mqttv3.1"), "{body}");
    let error = accepted.await.unwrap().unwrap_err();
    assert!(
        matches!(error, TransportError::Refused { status: 400, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn ws_accepts_any_path_and_reports_it() {
    let (connection, _client) = connected_pair("/some/other/path?x=1").await;
    assert_eq!(connection.ws_path.as_deref(), Some("/some/other/path?x=1"));
    assert!(matches!(connection.stream, MqttStream::Ws(_)));
}

#[tokio::test]
async fn bytes_split_across_three_frames_read_back_contiguously() {
    let (mut connection, mut client) = connected_pair("/mqtt").await;
    // A PUBLISH split mid-packet, and a PINGREQ sharing the last frame.
    let packet: &[u8] = b"\x30\x0d\x00\x05a/b/chello world\xc0\x00";
    for part in [&packet[..3], &packet[3..9], &packet[9..]] {
        client.send(Message::binary(part.to_vec())).await.unwrap();
    }
    let mut received = vec![0u8; packet.len()];
    connection.stream.read_exact(&mut received).await.unwrap();
    assert_eq!(received, packet);
}

#[tokio::test]
async fn each_write_arrives_as_one_binary_frame() {
    let (mut connection, mut client) = connected_pair("/mqtt").await;
    let batch: &[u8] = b"\x30\x05\x00\x01ahi\x30\x05\x00\x01bho";
    connection.stream.write_all(batch).await.unwrap();
    connection.stream.flush().await.unwrap();
    let frame = client.next().await.unwrap().unwrap();
    assert_eq!(frame, Message::binary(batch.to_vec()));
}

#[tokio::test]
async fn pings_are_answered_while_the_broker_only_reads() {
    let (mut connection, mut client) = connected_pair("/mqtt").await;
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        let n = connection.stream.read(&mut buf).await.unwrap();
        buf[..n].to_vec()
    });
    client
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(5), client.next())
        .await
        .expect("no pong within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(reply, Message::Pong(b"are you there".to_vec().into()));
    client
        .send(Message::binary(&b"\xe0\x00"[..]))
        .await
        .unwrap();
    assert_eq!(reader.await.unwrap(), b"\xe0\x00");
}

#[tokio::test]
async fn a_text_frame_is_an_invalid_data_error() {
    let (mut connection, mut client) = connected_pair("/mqtt").await;
    client.send(Message::text("CONNECT")).await.unwrap();
    let mut buf = [0u8; 16];
    let error = connection.stream.read(&mut buf).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn a_close_frame_is_end_of_stream_and_shutdown_sends_one() {
    let (mut connection, mut client) = connected_pair("/mqtt").await;
    client.close(None).await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(connection.stream.read(&mut buf).await.unwrap(), 0);

    let (mut connection, mut client) = connected_pair("/mqtt").await;
    connection.stream.shutdown().await.unwrap();
    let frame = client.next().await.unwrap().unwrap();
    assert!(matches!(frame, Message::Close(_)), "{frame:?}");
}

#[tokio::test]
async fn wss_negotiates_mqtt_and_carries_bytes() {
    let dir = TempDir::new("wss");
    let tls = TlsConfigHandle::load(TlsSource::Generated {
        dir: dir.path().to_owned(),
        names: Vec::new(),
    })
    .unwrap();
    let ca = tls.ca_path().unwrap();
    let addr = spawn_echo(bind(ListenerKind::Wss, Some(Arc::new(tls)), None).await);
    for (offered, expected) in [("mqtt", "mqtt"), ("mqttv3.1", "mqttv3.1")] {
        // A browser offers http/1.1 over ALPN; the listener agrees.
        let config = client_config(&[&ca], &[b"http/1.1"]);
        let tls = tls_connect(addr, "localhost", config).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let url = format!("wss://localhost:{}/mqtt", addr.port());
        let (mut client, response) = ws_client(tls, &url, &[offered]).await.unwrap();
        assert_eq!(protocol(&response), Some(expected));
        for part in [&b"\x10\x02"[..], b"\x00", b"\x04"] {
            client.send(Message::binary(part.to_vec())).await.unwrap();
        }
        let mut echoed = Vec::new();
        while echoed.len() < 4 {
            match client.next().await.unwrap().unwrap() {
                Message::Binary(data) => echoed.extend_from_slice(&data),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(echoed, b"\x10\x02\x00\x04");
    }
}

/// Answers with what it saw, and remembers the request.
#[derive(Default)]
struct Recorder(Mutex<Option<HttpRequest>>);

impl HttpHandler for Recorder {
    fn handle(&self, req: HttpRequest) -> HttpFuture<'_> {
        Box::pin(async move {
            // Answered after a yield: the transport awaits the handler.
            tokio::task::yield_now().await;
            let response = HttpResponse::text(
                200,
                format!("{} {} {}", req.method, req.path, req.body.len()),
            )
            .with_header("X-Viewer", "firehose");
            *self.0.lock().unwrap() = Some(req);
            response
        })
    }
}

/// Sends `request` raw and reads the whole response.
async fn raw_http<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8(response).unwrap()
}

#[tokio::test]
async fn plain_get_gets_the_handler_response() {
    let recorder = Arc::new(Recorder::default());
    let listener = bind(ListenerKind::Ws, None, Some(recorder.clone())).await;
    let addr = listener.local_addr();
    let accepted = accept_one(listener);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let response = raw_http(tcp, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("\r\nX-Viewer: firehose\r\n"),
        "{response}"
    );
    assert!(response.contains("\r\nContent-Length: 7\r\n"), "{response}");
    assert!(response.contains("\r\nConnection: close\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nGET / 0"), "{response}");
    assert!(accepted.await.unwrap().unwrap().is_none());
    let request = recorder.0.lock().unwrap().clone().unwrap();
    assert_eq!(request.header("host"), Some("localhost"));
    assert!(!request.secure);
}

#[tokio::test]
async fn a_post_body_reaches_the_handler() {
    let recorder = Arc::new(Recorder::default());
    let addr = spawn_echo(bind(ListenerKind::Ws, None, Some(recorder.clone())).await);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let response = raw_http(
        tcp,
        b"POST /hooks/ci HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
    )
    .await;
    assert!(response.ends_with("POST /hooks/ci 11"), "{response}");
    let request = recorder.0.lock().unwrap().clone().unwrap();
    assert_eq!(request.body, b"{\"ok\":true}");
}

#[tokio::test]
async fn the_default_handler_answers_404() {
    let addr = spawn_echo(bind(ListenerKind::Ws, None, None).await);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let response = raw_http(tcp, b"GET /nothing HTTP/1.1\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let listener = bind(ListenerKind::Ws, None, None).await;
    let addr = listener.local_addr();
    let accepted = accept_one(listener);
    let mut request = b"GET / HTTP/1.1\r\nX-Padding: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 9000));
    request.extend_from_slice(b"\r\n\r\n");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let response = raw_http(tcp, &request).await;
    assert!(
        response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{response}"
    );
    let error = accepted.await.unwrap().unwrap_err();
    assert!(
        matches!(error, TransportError::Refused { status: 431, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn plain_http_over_wss_reaches_the_handler() {
    let dir = TempDir::new("https");
    let tls = TlsConfigHandle::load(TlsSource::Generated {
        dir: dir.path().to_owned(),
        names: Vec::new(),
    })
    .unwrap();
    let ca = tls.ca_path().unwrap();
    let recorder = Arc::new(Recorder::default());
    let listener = bind(
        ListenerKind::Wss,
        Some(Arc::new(tls)),
        Some(recorder.clone()),
    )
    .await;
    let addr = spawn_echo(listener);
    let stream = tls_connect(addr, "127.0.0.1", client_config(&[&ca], &[]))
        .await
        .unwrap();
    let response = raw_http(stream, b"GET /events HTTP/1.1\r\n\r\n").await;
    assert!(response.ends_with("GET /events 0"), "{response}");
    assert!(recorder.0.lock().unwrap().as_ref().unwrap().secure);
}
