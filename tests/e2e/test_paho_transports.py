"""paho-mqtt (MQTT 3.1.1 and 5) over tcp, tls, websockets (/mqtt) and websockets+TLS."""

import base64
import os
import socket
import ssl

import pytest

from helpers import TRANSPORTS, V311, V5, uniq

VERSIONS = [V311, V5]
VIDS = ["v311", "v5"]


@pytest.mark.parametrize("version", VERSIONS, ids=VIDS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_anonymous_paho_subscriber_receives_authenticated_publish(broker, clients, transport, version):
    base = uniq()
    sub = clients.anonymous(transport=transport, version=version)
    assert sub.subscribe(base + "/#", 1) == [1]
    pub = clients.publisher(transport=transport, version=version)
    assert pub.publish(base + "/hello", b"hello over " + transport.encode(), qos=1) < 0x80
    m = sub.wait_for(base + "/hello")
    assert m.payload == b"hello over " + transport.encode()


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", VERSIONS, ids=VIDS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_qos_end_to_end_with_granted_qos(broker, clients, transport, version, qos):
    base = uniq()
    sub = clients.anonymous(transport=transport, version=version)
    assert sub.subscribe(base + "/#", qos) == [qos], "granted QoS"
    pub = clients.publisher(transport=transport, version=version)
    sent = [f"m{i}-q{qos}".encode() for i in range(10)]
    for i, p in enumerate(sent):
        assert pub.publish(f"{base}/n", p, qos=qos) < 0x80
    got = sub.wait_messages(len(sent))
    assert [m.payload for m in got] == sent, "all messages, in order"
    assert {m.qos for m in got} == {qos}
    assert not any(m.retain for m in got)
    sub.drain(0.5)
    assert len(sub.history) == len(sent), "QoS 1/2 must not be duplicated here"


@pytest.mark.parametrize("version", VERSIONS, ids=VIDS)
def test_delivery_qos_is_the_minimum_of_publish_and_subscription(broker, clients, version):
    base = uniq()
    sub = clients.anonymous(version=version)
    assert sub.subscribe([(base + "/low/#", 0), (base + "/high/#", 2)]) == [0, 2]
    pub = clients.publisher(version=version)
    pub.publish(base + "/low/x", b"a", qos=2)
    pub.publish(base + "/high/x", b"b", qos=1)
    got = {m.topic: m.qos for m in sub.wait_messages(2)}
    assert got == {base + "/low/x": 0, base + "/high/x": 1}


@pytest.mark.parametrize("version", VERSIONS, ids=VIDS)
def test_wildcards_plus_and_hash_match_levels(broker, clients, version):
    base = uniq()
    sub = clients.anonymous(version=version)
    assert sub.subscribe([(base + "/+/state", 1), (base + "/tree/#", 1)]) == [1, 1]
    pub = clients.publisher(version=version)
    topics = [base + "/a/state", base + "/a/b/state", base + "/tree", base + "/tree/x/y",
              base + "/b/state", base + "/treehouse"]
    for t in topics:
        pub.publish(t, t.encode(), qos=1)
    pub.publish(base + "/control/state", b"c", qos=1)
    seen = []
    sub.wait_for(base + "/control/state", others=seen)
    seen += sub.drain(0.5)
    assert sorted(m.topic for m in seen) == sorted(
        [base + "/a/state", base + "/tree", base + "/tree/x/y", base + "/b/state"])


@pytest.mark.parametrize("transport", ["tls", "wss"])
def test_paho_over_tls_verifies_localhost_name(broker, clients, transport):
    base = uniq()
    sub = clients.new(transport=transport, host="localhost")
    sub.connect()
    sub.subscribe(base, 1)
    pub = clients.publisher(transport=transport, host="localhost")
    pub.publish(base, b"named", qos=1)
    assert sub.wait_for(base).payload == b"named"


def test_websocket_listener_accepts_other_paths(broker, clients):
    """The draft: path /mqtt, any path accepted."""
    c = clients.new(transport="ws")
    c.c.ws_set_options(path="/")
    c.connect()
    assert c.subscribe("#", 0) == [0]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_large_payload_arrives_intact(broker, clients, transport):
    base = uniq()
    sub = clients.anonymous(transport=transport)
    sub.subscribe(base, 1)
    pub = clients.publisher(transport=transport)
    payload = bytes((i * 7) % 256 for i in range(200_000))
    pub.publish(base, payload, qos=1)
    assert sub.wait_for(base).payload == payload


def _ws_handshake(broker, tls: bool, protocols: str = "mqtt", path: str = "/mqtt") -> str:
    port = broker.wss_port if tls else broker.ws_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls:
        sock = ssl.create_default_context(cafile=str(broker.ca)).wrap_socket(sock, server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           f"Sec-WebSocket-Protocol: {protocols}\r\n\r\n")
    try:
        sock.sendall(req.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")
    finally:
        sock.close()


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_websocket_upgrade_selects_mqtt_subprotocol(broker, tls):
    """Browsers (MQTT.js) drop the connection unless the server echoes `mqtt`."""
    resp = _ws_handshake(broker, tls)
    status = resp.split("\r\n", 1)[0]
    assert " 101 " in status + " ", resp
    headers = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip()
               for ln in resp.split("\r\n")[1:] if ":" in ln}
    assert headers.get("sec-websocket-protocol") == "mqtt", resp


def test_websocket_upgrade_picks_mqtt_among_offered_subprotocols(broker):
    resp = _ws_handshake(broker, False, protocols="mqttv3.1, mqtt")
    assert " 101 " in resp.split("\r\n", 1)[0] + " ", resp
    assert "sec-websocket-protocol: mqtt" in resp.lower(), resp


def test_fan_out_reaches_every_subscriber_in_order(broker, clients):
    """1 publisher -> 50 raw subscribers: every message to every one, in publish order."""
    import mqtt_raw as raw

    base = uniq()
    subs = []
    try:
        for i in range(50):
            s = raw.RawClient(broker.host, broker.mqtt_port)
            assert s.mqtt_connect(version=4, client_id=f"fan-{i}-{base[-6:]}") == 0
            assert s.mqtt_subscribe([(base + "/#", 0)], version=4) == [0]
            subs.append(s)
        pub = clients.publisher()
        n = 300
        for i in range(n):
            pub.publish_nowait(base + "/f", f"{i:05d}".encode(), qos=0)
        pub.publish(base + "/f", b"end", qos=0)  # same topic and QoS: ordered after the rest
        for k, s in enumerate(subs):
            got = []
            while True:
                t, flags, body = s.recv_packet(10)
                assert t == raw.PUBLISH
                m = raw.parse_publish(flags, body, version=4)
                if m["payload"] == b"end":
                    break
                got.append(m["payload"])
            assert got == [f"{i:05d}".encode() for i in range(n)], f"subscriber {k}: {len(got)} of {n}"
    finally:
        for s in subs:
            s.close()
