"""A tiny MQTT 3.1 / 3.1.1 / 5.0 packet writer and reader over a raw socket.

The end-to-end tests use it where a real client library would refuse to send
what we need (malformed packets, a will with an abrupt drop, a subscriber that
never reads). Every read has a timeout: nothing here can hang a test.
"""

from __future__ import annotations

import socket
import struct
import time

# Packet types (upper nibble of the first byte).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    8, 9, 10, 11, 12, 13, 14)
AUTH = 15

NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
    6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
    11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}

# MQTT 5 property identifiers used by the tests.
P_PAYLOAD_FORMAT = 0x01
P_MESSAGE_EXPIRY = 0x02
P_CONTENT_TYPE = 0x03
P_RESPONSE_TOPIC = 0x08
P_CORRELATION_DATA = 0x09
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_WILL_DELAY = 0x18
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS = 0x23
P_USER_PROPERTY = 0x26
P_MAXIMUM_PACKET_SIZE = 0x27


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def utf8(s) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


binary = utf8


def prop_byte(pid: int, v: int) -> bytes:
    return bytes([pid, v])


def prop_u16(pid: int, v: int) -> bytes:
    return bytes([pid]) + struct.pack("!H", v)


def prop_u32(pid: int, v: int) -> bytes:
    return bytes([pid]) + struct.pack("!I", v)


def prop_varint(pid: int, v: int) -> bytes:
    return bytes([pid]) + varint(v)


def prop_str(pid: int, v) -> bytes:
    return bytes([pid]) + utf8(v)


def props(*items: bytes) -> bytes:
    body = b"".join(items)
    return varint(len(body)) + body


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + varint(len(body)) + body


def connect(version: int = 5, client_id: str = "", keepalive: int = 60,
            clean: bool = True, username=None, password=None, will=None,
            properties: bytes = b"", will_properties: bytes = b"") -> bytes:
    """version: 3 (MQTT 3.1, MQIsdp), 4 (3.1.1) or 5.

    will: dict(topic=..., payload=b"...", qos=0, retain=False)
    """
    if version == 3:
        vh = utf8("MQIsdp") + bytes([3])
    else:
        vh = utf8("MQTT") + bytes([version])
    flags = 0
    if clean:
        flags |= 0x02
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    vh += bytes([flags]) + struct.pack("!H", keepalive)
    if version == 5:
        vh += props(properties)
    payload = utf8(client_id)
    if will is not None:
        if version == 5:
            payload += props(will_properties)
        payload += utf8(will["topic"]) + binary(will["payload"])
    if username is not None:
        payload += utf8(username)
    if password is not None:
        payload += binary(password)
    return packet(CONNECT << 4, vh + payload)


def subscribe(packet_id: int, filters, version: int = 5, properties: bytes = b"",
              flags: int = 0x02) -> bytes:
    """filters: list of (filter, options byte) pairs."""
    body = struct.pack("!H", packet_id)
    if version == 5:
        body += props(properties)
    for f, opts in filters:
        body += utf8(f) + bytes([opts])
    return packet((SUBSCRIBE << 4) | flags, body)


def publish(topic, payload: bytes = b"", qos: int = 0, retain: bool = False,
            packet_id: int = 1, version: int = 5, properties: bytes = b"",
            dup: bool = False) -> bytes:
    """topic may be str or raw bytes (to send invalid UTF-8)."""
    first = (PUBLISH << 4) | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = utf8(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == 5:
        body += props(properties)
    return packet(first, body + payload)


def puback(packet_id: int) -> bytes:
    return packet(PUBACK << 4, struct.pack("!H", packet_id))


def pubrel(packet_id: int) -> bytes:
    return packet((PUBREL << 4) | 0x02, struct.pack("!H", packet_id))


def disconnect(version: int = 5, reason: int = 0) -> bytes:
    if version == 5 and reason:
        return packet(DISCONNECT << 4, bytes([reason]))
    return packet(DISCONNECT << 4, b"")


def pingreq() -> bytes:
    return packet(PINGREQ << 4, b"")


class Closed(Exception):
    """The peer closed the connection."""


class RawClient:
    """A blocking socket speaking raw MQTT. Every wait is bounded."""

    def __init__(self, host: str, port: int, timeout: float = 5.0, rcvbuf: int | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def try_send(self, data: bytes) -> bool:
        """Send, tolerating a peer that already closed. Returns False if it had."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError("timed out waiting for data") from e
        except ConnectionResetError as e:
            self.closed = True
            raise Closed("connection reset") from e
        if not chunk:
            self.closed = True
            raise Closed("connection closed")
        self.buf += chunk

    def recv_packet(self, timeout: float = 5.0):
        """Returns (type, flags, body). Raises Closed or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if complete and len(self.buf) >= i + length:
                    first = self.buf[0]
                    body = self.buf[i:i + length]
                    self.buf = self.buf[i + length:]
                    return first >> 4, first & 0x0F, body
            self._fill(deadline)

    def expect(self, ptype: int, timeout: float = 5.0):
        t, flags, body = self.recv_packet(timeout)
        assert t == ptype, f"expected {NAMES[ptype]}, got {NAMES.get(t, t)} body={body!r}"
        return flags, body

    def mqtt_connect(self, timeout: float = 5.0, **kw) -> int:
        """Send CONNECT, wait for CONNACK, return the return/reason code."""
        self.send(connect(**kw))
        _, body = self.expect(CONNACK, timeout)
        return body[1]

    def mqtt_subscribe(self, filters, version: int = 5, packet_id: int = 1,
                       properties: bytes = b"", timeout: float = 5.0) -> list[int]:
        self.send(subscribe(packet_id, filters, version=version, properties=properties))
        _, body = self.expect(SUBACK, timeout)
        rest = body[2:]
        if version == 5:
            n, i = _read_varint(rest, 0)
            rest = rest[i + n:]
        return list(rest)

    def read_until_closed(self, timeout: float = 5.0):
        """Read packets until the peer closes. Returns (packets, closed, elapsed).

        closed is False if the connection was still open at the deadline."""
        start = time.monotonic()
        deadline = start + timeout
        packets = []
        while True:
            try:
                packets.append(self.recv_packet(max(0.0, deadline - time.monotonic())))
            except Closed:
                return packets, True, time.monotonic() - start
            except TimeoutError:
                return packets, False, time.monotonic() - start

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Close with a TCP RST: an abrupt network drop, no DISCONNECT."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


def _read_varint(data: bytes, i: int):
    mult, value = 1, 0
    start = i
    while True:
        b = data[i]
        value += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            return value, i - start


def parse_publish(flags: int, body: bytes, version: int = 5):
    """Returns dict(topic, payload, qos, retain, packet_id, properties_raw)."""
    qos = (flags >> 1) & 3
    tlen = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + tlen]
    i = 2 + tlen
    pid = None
    if qos:
        pid = struct.unpack("!H", body[i:i + 2])[0]
        i += 2
    praw = b""
    if version == 5:
        n, k = _read_varint(body, i)
        praw = body[i + k:i + k + n]
        i += k + n
    return dict(topic=topic, payload=body[i:], qos=qos, retain=bool(flags & 1),
                packet_id=pid, properties_raw=praw)


def disconnect_reason(packets) -> int | None:
    """The reason code of a DISCONNECT among packets (0 if it has none), else None."""
    for t, _, body in packets:
        if t == DISCONNECT:
            return body[0] if body else 0
    return None
