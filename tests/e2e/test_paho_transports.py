"""paho-mqtt (MQTT 3.1.1 and 5) over tcp, tls, websockets (/mqtt) and websockets+TLS."""

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
    assert sub.drain(0.5) == [], "QoS 1/2 must not be duplicated here"


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


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_paho_over_tls_verifies_localhost_name(broker, clients, transport):
    if transport in ("tcp", "ws"):
        pytest.skip("TLS only")
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
