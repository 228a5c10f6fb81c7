//! A tiny MQTT 3.1.1 client: just enough encoding (CONNECT, SUBSCRIBE, PUBLISH,
//! PUBACK, PINGREQ, DISCONNECT) and decoding (CONNACK, SUBACK, PUBLISH, PUBACK,
//! PINGRESP) for the load generator.
//!
//! It is deliberately independent of the broker's own codec crate, so a codec
//! bug cannot hide itself in the benchmark. Reads go into one large buffer and
//! every complete packet in it is parsed in place (no allocation per packet);
//! writers batch many packets into one `write_all`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

/// Read buffer size per connection that streams data.
pub const BIG_READ_BUF: usize = 256 * 1024;
/// Read buffer size for connections that only handshake (idle connections).
pub const SMALL_READ_BUF: usize = 64;
/// How long a handshake step (CONNACK, SUBACK) may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// A decoded packet borrowing from the read buffer.
#[derive(Debug)]
pub enum Packet<'a> {
    ConnAck {
        code: u8,
    },
    SubAck {
        codes: &'a [u8],
    },
    Publish {
        qos: u8,
        pid: u16,
        payload: &'a [u8],
    },
    PubAck {
        pid: u16,
    },
    PingResp,
    /// Any other packet type.
    Other,
}

/// Appends the MQTT variable-length "remaining length".
fn put_remaining_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A user name and password sent in CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// CONNECT for MQTT 3.1.1 with a clean session, with or without a user
/// name and password.
pub fn encode_connect(
    out: &mut Vec<u8>,
    client_id: &str,
    keep_alive: u16,
    login: Option<&Credentials>,
) {
    let login_len = login.map_or(0, |c| 2 + c.username.len() + 2 + c.password.len());
    let body_len = 10 + 2 + client_id.len() + login_len;
    out.push(0x10);
    put_remaining_len(out, body_len);
    put_str(out, b"MQTT");
    out.push(4); // protocol level 3.1.1
    // Clean session, plus the user name (0x80) and password (0x40) flags.
    out.push(if login.is_some() { 0xC2 } else { 0x02 });
    out.extend_from_slice(&keep_alive.to_be_bytes());
    put_str(out, client_id.as_bytes());
    if let Some(c) = login {
        put_str(out, c.username.as_bytes());
        put_str(out, c.password.as_bytes());
    }
}

/// SUBSCRIBE with one topic filter.
pub fn encode_subscribe(out: &mut Vec<u8>, pid: u16, filter: &str, qos: u8) {
    out.push(0x82);
    put_remaining_len(out, 2 + 2 + filter.len() + 1);
    out.extend_from_slice(&pid.to_be_bytes());
    put_str(out, filter.as_bytes());
    out.push(qos);
}

/// PUBLISH; `pid` is ignored for QoS 0. Returns the offset of the payload in
/// `out`, so callers can build a template once and patch payload bytes.
pub fn encode_publish(out: &mut Vec<u8>, topic: &str, qos: u8, pid: u16, payload: &[u8]) -> usize {
    let pid_len = if qos > 0 { 2 } else { 0 };
    out.push(0x30 | (qos << 1));
    put_remaining_len(out, 2 + topic.len() + pid_len + payload.len());
    put_str(out, topic.as_bytes());
    if qos > 0 {
        out.extend_from_slice(&pid.to_be_bytes());
    }
    let at = out.len();
    out.extend_from_slice(payload);
    at
}

pub fn encode_puback(out: &mut Vec<u8>, pid: u16) {
    out.extend_from_slice(&[0x40, 0x02]);
    out.extend_from_slice(&pid.to_be_bytes());
}

pub fn encode_pingreq(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xC0, 0x00]);
}

pub fn encode_disconnect(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xE0, 0x00]);
}

/// Parses one packet from the front of `buf`. `Ok(None)`: incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let header = buf[0];
    let mut len: usize = 0;
    let mut shift = 0;
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        ensure!(shift <= 21, "malformed remaining length");
    }
    let total = i + len;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[i..total];
    let packet = match header >> 4 {
        2 => {
            ensure!(body.len() == 2, "bad CONNACK length");
            Packet::ConnAck { code: body[1] }
        }
        3 => {
            let qos = (header >> 1) & 3;
            ensure!(body.len() >= 2, "short PUBLISH");
            let tlen = u16::from_be_bytes([body[0], body[1]]) as usize;
            let mut at = 2 + tlen;
            let mut pid = 0;
            if qos > 0 {
                ensure!(body.len() >= at + 2, "short PUBLISH");
                pid = u16::from_be_bytes([body[at], body[at + 1]]);
                at += 2;
            }
            ensure!(body.len() >= at, "short PUBLISH");
            Packet::Publish {
                qos,
                pid,
                payload: &body[at..],
            }
        }
        4 => {
            ensure!(body.len() >= 2, "short PUBACK");
            Packet::PubAck {
                pid: u16::from_be_bytes([body[0], body[1]]),
            }
        }
        9 => {
            ensure!(body.len() >= 3, "short SUBACK");
            Packet::SubAck { codes: &body[2..] }
        }
        13 => Packet::PingResp,
        _ => Packet::Other,
    };
    Ok(Some((packet, total)))
}

/// One MQTT connection with its read buffer.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn {
    /// Connects over TCP (optionally from a chosen local address), sends
    /// CONNECT (with `login`, if given) and waits for a successful CONNACK.
    pub async fn connect(
        addr: SocketAddr,
        local: Option<SocketAddr>,
        client_id: &str,
        login: Option<&Credentials>,
        keep_alive: u16,
        read_buf: usize,
    ) -> Result<Conn> {
        let stream = match local {
            Some(local) => {
                let socket = TcpSocket::new_v4()?;
                socket.bind(local)?;
                socket.connect(addr).await
            }
            None => TcpStream::connect(addr).await,
        }
        .with_context(|| format!("tcp connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            buf: vec![0; read_buf],
            start: 0,
            end: 0,
        };
        let mut out = Vec::with_capacity(64);
        encode_connect(&mut out, client_id, keep_alive, login);
        conn.stream.write_all(&out).await?;
        let code = timeout(
            HANDSHAKE_TIMEOUT,
            conn.expect(|p| match p {
                Packet::ConnAck { code } => Some(code),
                _ => None,
            }),
        )
        .await
        .context("timed out waiting for CONNACK")??;
        ensure!(code == 0, "CONNACK refused with return code {code}");
        Ok(conn)
    }

    /// Subscribes to one filter and waits for a granting SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: u8) -> Result<()> {
        let mut out = Vec::with_capacity(64);
        encode_subscribe(&mut out, 1, filter, qos);
        self.stream.write_all(&out).await?;
        let codes = timeout(
            HANDSHAKE_TIMEOUT,
            self.expect(|p| match p {
                Packet::SubAck { codes } => Some(codes.to_vec()),
                _ => None,
            }),
        )
        .await
        .context("timed out waiting for SUBACK")??;
        ensure!(
            codes.len() == 1 && codes[0] <= 2,
            "SUBACK refused: {codes:?}"
        );
        Ok(())
    }

    /// Reads until `pick` accepts a packet; other packets are discarded.
    async fn expect<T>(&mut self, mut pick: impl FnMut(Packet<'_>) -> Option<T>) -> Result<T> {
        loop {
            let mut found = None;
            self.drain(|p| {
                if found.is_none() {
                    found = pick(p);
                }
            })?;
            if let Some(v) = found {
                return Ok(v);
            }
            if !self.fill().await? {
                bail!("connection closed by broker");
            }
        }
    }

    /// Reads more bytes into the buffer. `Ok(false)` on EOF.
    pub async fn fill(&mut self) -> Result<bool> {
        if self.start > 0 && self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n > 0)
    }

    /// Calls `f` on every complete packet in the buffer.
    pub fn drain(&mut self, mut f: impl FnMut(Packet<'_>)) -> Result<()> {
        while let Some((p, n)) = parse(&self.buf[self.start..self.end])? {
            f(p);
            self.start += n;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(())
    }

    /// Sends DISCONNECT (best effort).
    pub async fn disconnect(mut self) {
        let mut out = Vec::with_capacity(2);
        encode_disconnect(&mut out);
        let _ = timeout(Duration::from_secs(1), self.stream.write_all(&out)).await;
        let _ = self.stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_roundtrip() {
        let mut out = Vec::new();
        let at = encode_publish(&mut out, "a/b", 1, 7, &[9; 200]);
        assert_eq!(out.len() - at, 200);
        let (p, n) = parse(&out).unwrap().unwrap();
        assert_eq!(n, out.len());
        match p {
            Packet::Publish { qos, pid, payload } => {
                assert_eq!((qos, pid, payload.len()), (1, 7, 200));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&out[..out.len() - 1]).unwrap().is_none());
    }

    #[test]
    fn connect_with_credentials() {
        let login = Credentials {
            username: "bench".into(),
            password: "pw".into(),
        };
        let mut out = Vec::new();
        encode_connect(&mut out, "c1", 60, Some(&login));
        assert_eq!(out[0], 0x10);
        assert_eq!(usize::from(out[1]), out.len() - 2);
        assert_eq!(out[9], 0xC2);
        assert!(out.ends_with(b"\x00\x05bench\x00\x02pw"));
        let mut anon = Vec::new();
        encode_connect(&mut anon, "c1", 60, None);
        assert_eq!(anon[9], 0x02);
        assert_eq!(usize::from(anon[1]), anon.len() - 2);
    }

    #[test]
    fn remaining_length_encoding() {
        for len in [0usize, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
            let mut out = Vec::new();
            put_remaining_len(&mut out, len);
            let mut buf = vec![0xF0];
            buf.extend_from_slice(&out);
            buf.resize(buf.len() + len, 0);
            let (_, n) = parse(&buf).unwrap().unwrap();
            assert_eq!(n, buf.len());
        }
    }
}
