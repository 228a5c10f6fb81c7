//! From an accepted socket to a connected client: the transport handshake,
//! the CONNECT packet, authentication, the session and the CONNACK.
//!
//! Runs under the connect timeout (see `connection::serve`). Anything wrong
//! here refuses the connection with the CONNACK code the version has for it,
//! or closes it where the specification says to close without one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use firehose_mqtt::{
    ConnAck, ConnAckProperties, Connect, DecodeError, Decoder, Packet, ProtocolVersion, Publish,
    reason,
};
use firehose_transport::{Incoming, MqttStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::debug;

use super::Broker;
use super::connection::Client;
use super::outbound::Outbound;
use crate::auth::{ClientInfo, ConnectDecision, Decision};
use crate::message::Message;

/// How long a new connection waits for the one it takes a session over from.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// Why a connection did not get as far as being served.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    #[error("transport: {0}")]
    Transport(#[from] firehose_transport::TransportError),
    #[error("i/o before CONNECT completed: {0}")]
    Io(#[from] std::io::Error),
    #[error("closed before sending a complete CONNECT")]
    ClosedEarly,
    #[error("bad CONNECT: {0}")]
    Decode(#[from] DecodeError),
    #[error("CONNACK refusal 0x{code:02X}: {why}")]
    Connack { code: u8, why: String },
}

/// Takes a socket through its handshake and CONNECT. `Ok(None)` when the
/// socket was a plain HTTP request, already answered.
pub(super) async fn accept(
    incoming: Incoming,
    listener: Arc<str>,
    broker: &Arc<Broker>,
) -> Result<Option<Client>, Refused> {
    let Some(connection) = incoming.handshake().await? else {
        return Ok(None);
    };
    let mut stream = connection.stream;
    let mut rbuf = BytesMut::with_capacity(512);
    let mut decoder = Decoder::new(broker.limits.max_packet_size);
    let connect = loop {
        match decoder.decode(&mut rbuf) {
            Ok(Some(Packet::Connect(connect))) => break connect,
            Ok(Some(_)) => {
                return Err(Refused::Decode(DecodeError::Protocol(
                    "first packet must be CONNECT",
                )));
            }
            Ok(None) => {
                if stream.read_buf(&mut rbuf).await? == 0 {
                    return Err(Refused::ClosedEarly);
                }
            }
            Err(error @ DecodeError::UnsupportedProtocolVersion(_)) => {
                // The client's version is unknown: answer in the 3.x form,
                // which every version can read, then close.
                let connack = ConnAck {
                    code: reason::v3::UNACCEPTABLE_PROTOCOL_VERSION,
                    ..ConnAck::default()
                };
                write_and_close(
                    &mut stream,
                    &Packet::ConnAck(connack),
                    ProtocolVersion::V3_1_1,
                )
                .await;
                return Err(error.into());
            }
            Err(error) => {
                // MQTT 5 lets the server say why a CONNECT was refused;
                // 3.x closes without a CONNACK.
                if decoder.version() == Some(ProtocolVersion::V5) {
                    let connack = ConnAck {
                        code: error.reason_code(),
                        ..ConnAck::default()
                    };
                    write_and_close(&mut stream, &Packet::ConnAck(connack), ProtocolVersion::V5)
                        .await;
                }
                return Err(error.into());
            }
        }
    };
    let info = ClientInfo {
        client_id: "".into(),
        username: connect.username.as_deref().map(Arc::from),
        listener,
        remote_addr: connection.remote_addr,
        tls_identity: connection.tls_identity.map(Arc::from),
        protocol: connect.protocol,
    };
    match admit(broker, connect, info, stream, rbuf, decoder).await {
        Ok(client) => Ok(Some(client)),
        Err(Admit::Failed(error)) => Err(error.into()),
        Err(Admit::Refused((mut stream, version, code, why))) => {
            let code = if version.is_v5() {
                code
            } else {
                reason::connack_v3_code(code)
            };
            let connack = ConnAck {
                code,
                ..ConnAck::default()
            };
            write_and_close(&mut stream, &Packet::ConnAck(connack), version).await;
            Err(Refused::Connack { code, why })
        }
    }
}

type Refusal = (MqttStream, ProtocolVersion, u8, String);

/// Why `admit` did not yield a client.
enum Admit {
    /// Refused: answer with this CONNACK code, then close.
    Refused(Refusal),
    /// The CONNACK could not be written.
    Failed(std::io::Error),
}

/// Checks a well-formed CONNECT and, if it passes, opens the session and
/// sends CONNACK. A refusal carries the MQTT 5 reason code to answer with.
async fn admit(
    broker: &Arc<Broker>,
    mut connect: Box<Connect>,
    mut info: ClientInfo,
    mut stream: MqttStream,
    rbuf: BytesMut,
    decoder: Decoder,
) -> Result<Client, Admit> {
    let version = connect.protocol;
    let limits = &broker.limits;
    let refuse =
        |stream, code, why: &str| Err(Admit::Refused((stream, version, code, why.to_owned())));

    if connect.properties.authentication_method.is_some() {
        return refuse(
            stream,
            reason::BAD_AUTHENTICATION_METHOD,
            "enhanced authentication is not supported",
        );
    }
    let mut assigned = None;
    let client_id: Arc<str> = if connect.client_id.is_empty() {
        let allowed = match version {
            ProtocolVersion::V3_1 => false,
            ProtocolVersion::V3_1_1 => connect.clean_start,
            ProtocolVersion::V5 => true,
        };
        if !allowed {
            return refuse(
                stream,
                reason::CLIENT_IDENTIFIER_NOT_VALID,
                "empty client id needs a clean session",
            );
        }
        let id = generate_client_id();
        assigned = Some(id.clone());
        id.into()
    } else {
        connect.client_id.as_str().into()
    };
    info.client_id = client_id.clone();

    match broker
        .authorizer()
        .check_connect(&info, connect.password.as_deref())
        .await
    {
        ConnectDecision::Allow => {}
        ConnectDecision::BadCredentials => {
            return refuse(
                stream,
                reason::BAD_USER_NAME_OR_PASSWORD,
                "bad user name or password",
            );
        }
        ConnectDecision::NotAuthorized(why) => {
            return refuse(stream, reason::NOT_AUTHORIZED, &why);
        }
    }

    let will = match connect.will.take() {
        None => None,
        Some(will) => {
            let publish = Publish {
                dup: false,
                qos: will.qos,
                retain: will.retain,
                topic: will.topic,
                packet_id: None,
                properties: will.properties,
                payload: will.payload,
            };
            match broker
                .authorizer()
                .check_publish(&info, &publish)
                .await
                .decision
            {
                Decision::Allow => {
                    let now = Instant::now();
                    let message = Message {
                        topic: publish.topic.as_str().into(),
                        expires_at: Message::expiry_from(
                            publish.properties.message_expiry_interval,
                            now,
                        ),
                        payload: publish.payload,
                        qos: publish.qos,
                        retain: publish.retain,
                        properties: publish.properties,
                        publisher: client_id.clone(),
                    };
                    Some((Arc::new(message), will.delay_interval.unwrap_or(0)))
                }
                Decision::Deny(why) => {
                    // Kept back like any refused publish; the client stays.
                    broker.metrics.wills_refused.incr();
                    broker.note_refused_publish(&info, &publish.topic, &why);
                    None
                }
            }
        }
    };

    let requested_expiry = match version {
        ProtocolVersion::V5 => connect.properties.session_expiry_interval.unwrap_or(0),
        _ if connect.clean_start => 0,
        _ => u32::MAX,
    };
    let expiry = requested_expiry.min(limits.max_session_expiry_secs);
    let opened = broker.sessions.open(
        &client_id,
        connect.clean_start,
        expiry,
        broker.queue_limits(),
    );
    if let Some(old) = &opened.discarded {
        broker.discard_session(old);
    }
    let session = opened.session;
    let serving = match tokio::time::timeout(TAKEOVER_WAIT, session.serve()).await {
        Ok(guard) => guard,
        Err(_) => {
            return refuse(
                stream,
                reason::SERVER_BUSY,
                "the previous connection of this client id did not close in time",
            );
        }
    };
    {
        let mut state = session.lock();
        state.online = true;
        state.taken_over = false;
        state.generation += 1;
        state.pending_will = None;
        state.expiry_secs = expiry;
    }

    let (keep_alive, server_keep_alive) = match connect.keep_alive {
        0 => (None, None),
        k if k > limits.max_keep_alive && version.is_v5() => {
            (Some(limits.max_keep_alive), Some(limits.max_keep_alive))
        }
        k => (Some(k), None),
    };
    let properties = if version.is_v5() {
        ConnAckProperties {
            session_expiry_interval: (expiry != requested_expiry).then_some(expiry),
            receive_maximum: Some(limits.receive_maximum),
            maximum_packet_size: Some(limits.max_packet_size),
            assigned_client_identifier: assigned,
            topic_alias_maximum: Some(limits.topic_alias_maximum),
            server_keep_alive,
            ..ConnAckProperties::default()
        }
    } else {
        ConnAckProperties::default()
    };
    let connack = ConnAck {
        session_present: opened.present,
        code: reason::SUCCESS,
        properties,
    };
    let mut wbuf = BytesMut::new();
    firehose_mqtt::encode(&Packet::ConnAck(connack), version, &mut wbuf);
    if let Err(error) = stream.write_all(&wbuf).await {
        session.lock().online = false;
        drop(serving);
        debug!(%client_id, %error, "CONNACK could not be written");
        return Err(Admit::Failed(error));
    }
    let _ = stream.flush().await;

    let outbound = Outbound::new(&connect.properties, limits.max_inflight, opened.present);
    debug!(
        %client_id,
        listener = %info.listener,
        remote = %info.remote_addr,
        username = info.username.as_deref().unwrap_or(""),
        protocol = ?version,
        session_present = opened.present,
        "client connected"
    );
    let mut client = Client::new(
        broker.clone(),
        stream,
        rbuf,
        decoder,
        info,
        session,
        serving,
        outbound,
    );
    client.keep_alive = keep_alive.map(|k| Duration::from_secs(u64::from(k)));
    client.will = will;
    client.connect_expiry = expiry;
    Ok(client)
}

async fn write_and_close(stream: &mut MqttStream, packet: &Packet, version: ProtocolVersion) {
    let mut buf = BytesMut::new();
    firehose_mqtt::encode(packet, version, &mut buf);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(&buf).await?;
        stream.shutdown().await
    })
    .await;
}

/// A client id for a client that sent none.
fn generate_client_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("firehose-{:x}{:04x}", nanos, n & 0xffff)
}
