"""The public may read but never publish; publishers only within their prefix.

Every "nothing arrives" assertion is paired with a control message from the
authenticated publisher that does arrive, so no test can pass vacuously.
"""

import pytest

import mqtt_raw as raw
from helpers import (QUIET, V311, V5, mosquitto_pub, mosq_target, prove_live_then_quiet, uniq, props,
                     PacketTypes)

def raw_qos2_reason(broker, topic, username=None, password=None):
    """Publish QoS 2 over a raw v5 socket; return the PUBREC reason code (0 if absent)."""
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        assert c.mqtt_connect(version=5, client_id="", username=username,
                              password=password.encode() if password else None) == 0
        c.send(raw.publish(topic, b"q2", qos=2, packet_id=7))
        _, body = c.expect(raw.PUBREC)
        reason = body[2] if len(body) > 2 else 0
        if reason < 0x80:  # a refusing PUBREC ends the exchange
            c.send(raw.pubrel(7))
            c.expect(raw.PUBCOMP)
        c.send(raw.disconnect())
        return reason
    finally:
        c.close()


ANON_PUB_CASES = [
    ("mqttv311", 0), ("mqttv311", 1), ("mqttv311", 2),
    ("mqttv5", 0), ("mqttv5", 1), ("mqttv5", 2),
    ("mqttv31", 0), ("mqttv31", 1),
]


@pytest.mark.parametrize("version,qos", ANON_PUB_CASES, ids=[f"{v}-q{q}" for v, q in ANON_PUB_CASES])
def test_anonymous_publish_is_acknowledged_and_never_delivered(broker, clients, version, qos):
    base = uniq()
    sub = clients.anonymous()
    assert sub.subscribe("#", 2) == [2]
    pub = clients.publisher()
    anon_topic = base + "/anonymous"

    r = mosquitto_pub([*mosq_target(broker), "-V", version, "-q", str(qos), "-t", anon_topic,
                       "-m", "must-not-arrive"])
    out = r.stdout
    assert "Connection Refused" not in out and "Connection error" not in out, out
    assert "received CONNACK (0)" in out, out
    if qos == 1:
        assert "received PUBACK" in out, f"QoS 1 publish not acknowledged:\n{out}"
    if qos == 2:
        assert "received PUBREC" in out, f"QoS 2 publish not acknowledged:\n{out}"
    if version == "mqttv5" and qos > 0:
        # Refused the way Mosquitto refuses with an ACL: reason 0x87 in PUBACK / PUBREC
        # (mosquitto_pub prints the code for PUBACK only, "Not authorized" for both).
        assert "Not authorized" in out, out
        if qos == 1:
            assert "RC:135" in out, out
    else:
        assert "Not authorized" not in out, out
        if qos == 2:
            assert "received PUBCOMP" in out, out

    prove_live_then_quiet(sub, pub, base + "/control", lambda m: m.topic == anon_topic)


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_anonymous_publisher_stays_connected_after_refusal(broker, clients, version):
    base = uniq()
    anon = clients.anonymous(version=version)
    # Subscribed to its own topics first: an accepted publish would come back to it.
    assert anon.subscribe(base + "/#", 1) == [1]
    if version == V5:
        assert anon.publish(base + "/a1", b"x", qos=1) == 0x87
        # paho ignores a PUBREC's reason code: check it on a raw socket below.
        anon.publish(base + "/a2", b"x", qos=2)
        assert raw_qos2_reason(broker, base + "/a2raw") == 0x87
    else:
        assert anon.publish(base + "/a1", b"x", qos=1) == 0
        assert anon.publish(base + "/a2", b"x", qos=2) == 0
    anon.publish(base + "/a0", b"x", qos=0)
    # Still connected: it receives the publisher's messages, and none of its own.
    pub = clients.publisher()
    prove_live_then_quiet(anon, pub, base + "/control", lambda m: m.topic != base + "/control")
    assert anon.c.is_connected()


def test_anonymous_retained_publish_is_not_retained(broker, clients):
    base = uniq()
    pub = clients.publisher()
    assert pub.publish(base + "/control", b"retained-control", qos=1, retain=True) < 0x80
    for version, qos in (("mqttv311", 1), ("mqttv5", 1), ("mqttv5", 0)):
        r = mosquitto_pub([*mosq_target(broker), "-V", version, "-q", str(qos), "-r",
                           "-t", base + "/anon-" + version, "-m", "anon-retained"])
        assert "received CONNACK (0)" in r.stdout, r.stdout
    late = clients.anonymous()
    late.subscribe(base + "/#", 1)
    m = late.wait_for(base + "/control")
    assert m.payload == b"retained-control" and m.retain
    late.drain(QUIET)
    bad = [(o.topic, o.payload) for o in late.history if o.topic != base + "/control"]
    assert bad == [], f"anonymous retained publish was retained: {bad}"
    pub.publish(base + "/control", b"", qos=1, retain=True)


def test_anonymous_empty_retained_publish_does_not_clear_retained_message(broker, clients):
    base = uniq()
    pub = clients.publisher()
    assert pub.publish(base + "/state", b"keep-me", qos=1, retain=True) < 0x80
    for version in ("mqttv311", "mqttv5"):
        r = mosquitto_pub([*mosq_target(broker), "-V", version, "-q", "1", "-r",
                           "-t", base + "/state", "-n"])
        assert "received CONNACK (0)" in r.stdout, r.stdout
    late = clients.anonymous()
    late.subscribe(base + "/#", 1)
    m = late.wait_for(base + "/state")
    assert m.payload == b"keep-me" and m.retain
    pub.publish(base + "/state", b"", qos=1, retain=True)


@pytest.mark.parametrize("version", [3, 4, 5], ids=["v31", "v311", "v5"])
def test_anonymous_will_is_not_delivered_when_client_drops(broker, clients, version):
    base = uniq()
    sub = clients.anonymous()
    sub.subscribe(base + "/#", 1)

    anon = raw.RawClient(broker.host, broker.mqtt_port)
    rc = anon.mqtt_connect(version=version, client_id="anon-will-" + base[-6:], keepalive=30,
                           will=dict(topic=base + "/anon-will", payload=b"anon-died", qos=1))
    assert rc == 0, f"anonymous client with a will must be accepted (readers announce themselves), got {rc:#x}"

    # Control: the authenticated publisher's will IS delivered when it drops.
    auth = raw.RawClient(broker.host, broker.mqtt_port)
    rc = auth.mqtt_connect(version=version, client_id="auth-will-" + base[-6:], keepalive=30,
                           username=broker.user, password=broker.password.encode(),
                           will=dict(topic=base + "/auth-will", payload=b"auth-died", qos=1))
    assert rc == 0
    anon.abort()
    auth.abort()
    m = sub.wait_for(base + "/auth-will", timeout=10, others=(others := []))
    assert m.payload == b"auth-died"
    others += sub.drain(QUIET)
    assert [o for o in sub.history if o.topic == base + "/anon-will"] == [], "anonymous will was delivered"


def test_publisher_outside_its_prefix_is_refused_v5(broker, clients):
    base = uniq("gerrit/e2e")
    inside = uniq()
    sub = clients.anonymous()
    sub.subscribe("#", 2)
    pub = clients.publisher(version=V5)
    assert pub.publish(base + "/q1", b"no", qos=1) == 0x87
    pub.publish(base + "/q2", b"no", qos=2)  # paho ignores a PUBREC's reason code
    assert raw_qos2_reason(broker, base + "/q2raw", broker.user, broker.password) == 0x87
    pub.publish(base + "/q0", b"no", qos=0)
    assert pub.publish(base + "/retained", b"no", qos=1, retain=True) == 0x87
    # Inside the prefix: delivered (this is also the positive control).
    assert pub.publish(inside + "/ok", b"yes", qos=1) < 0x80
    m = sub.wait_for(inside + "/ok")
    assert m.payload == b"yes"
    prove_live_then_quiet(sub, pub, inside + "/control", lambda m: m.topic.startswith(base))
    assert pub.c.is_connected(), "a refused publish must not close the connection"
    assert pub.publish(inside + "/retained", b"kept", qos=1, retain=True) < 0x80
    late = clients.anonymous()
    late.subscribe([(base + "/#", 1), (inside + "/retained", 1)])
    assert late.wait_for(inside + "/retained").payload == b"kept"
    late.drain(QUIET)
    assert [m.topic for m in late.history if m.topic.startswith(base)] == [], \
        "a refused retained publish was retained"
    pub.publish(inside + "/retained", b"", qos=1, retain=True)


def test_publisher_outside_its_prefix_is_dropped_v311(broker, clients):
    base = uniq("gerrit/e2e")
    inside = uniq()
    sub = clients.anonymous(version=V311)
    sub.subscribe("#", 2)
    pub = clients.publisher(version=V311)
    assert pub.publish(base + "/q1", b"no", qos=1) < 0x80
    assert pub.publish(base + "/q2", b"no", qos=2) < 0x80
    pub.publish(base + "/q0", b"no", qos=0)
    assert pub.publish(inside + "/ok", b"yes", qos=1) < 0x80
    assert sub.wait_for(inside + "/ok").payload == b"yes"
    prove_live_then_quiet(sub, pub, inside + "/control", lambda m: m.topic.startswith(base))
    assert pub.c.is_connected()


def test_publisher_cannot_publish_to_a_prefix_lookalike(broker, clients):
    """`ansible/#` grants ansible and below, not `ansiblex/...`."""
    sub = clients.anonymous()
    sub.subscribe("#", 1)
    pub = clients.publisher(version=V5)
    look = uniq("ansiblex")
    assert pub.publish(look, b"no", qos=1) == 0x87
    prove_live_then_quiet(sub, pub, uniq() + "/control", lambda m: m.topic == look)


@pytest.mark.parametrize("version", [3, 4], ids=["v31", "v311"])
def test_wrong_password_is_refused_v3(broker, version):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        rc = c.mqtt_connect(version=version, client_id="wrongpw", username=broker.user,
                            password=b"wrong-password")
        assert rc in (4, 5), f"CONNACK return code {rc}, expected 4 (bad user/password) or 5"
        _, closed, _ = c.read_until_closed(5)
        assert closed, "connection not closed after a refused CONNACK"
    finally:
        c.close()


def test_unknown_user_is_refused_v311(broker):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        rc = c.mqtt_connect(version=4, client_id="nobody", username="nobody", password=b"x")
        assert rc in (4, 5)
    finally:
        c.close()


@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
def test_wrong_password_is_refused_v5(broker, clients, transport):
    c = clients.new(transport=transport, version=V5, username=broker.user, password="wrong-password")
    rc = c.connect(expect_success=False)
    assert rc in (0x86, 0x87), f"CONNACK reason {rc:#x}"
    assert c.wait_disconnected(5)


def test_wrong_password_is_refused_v5_raw(broker):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        rc = c.mqtt_connect(version=5, client_id="wrongpw5", username=broker.user,
                            password=b"wrong-password")
        assert rc in (0x86, 0x87), f"CONNACK reason {rc:#x}"
    finally:
        c.close()


# Mosquitto with an ACL grants the subscription and filters at delivery; firehose refuses it.
@pytest.mark.firehose_only
@pytest.mark.parametrize("version,refused", [(V5, 0x87), (V311, 0x80)], ids=["v5", "v311"])
def test_anonymous_subscribe_to_sys_is_refused(broker, clients, version, refused):
    c = clients.anonymous(version=version)
    assert c.subscribe("$SYS/#", 0) == [refused]
    assert c.subscribe("$test/#", 0) == [refused]
    # Mixed SUBSCRIBE: each filter judged on its own, the connection stays up.
    assert c.subscribe([("#", 1), ("$SYS/broker/#", 1)]) == [1, refused]
    pub = clients.publisher()
    prove_live_then_quiet(c, pub, uniq() + "/control", lambda m: m.topic.startswith("$"))


def test_anonymous_may_subscribe_to_any_public_filter(broker, clients):
    c = clients.anonymous()
    assert c.subscribe([("#", 0), ("+/+/x", 1), ("gerrit/#", 2), ("+", 0)]) == [0, 1, 2, 0]


def test_authenticated_v5_publish_with_props_inside_prefix_passes_acl(broker, clients):
    """The ACL looks at the topic, not at what else the packet carries."""
    base = uniq()
    sub = clients.anonymous()
    sub.subscribe(base + "/#", 1)
    pub = clients.publisher()
    p = props(PacketTypes.PUBLISH, ContentType="text/plain", UserProperty=[("k", "v")])
    assert pub.publish(base + "/p", b"hello", qos=1, properties=p) < 0x80
    assert sub.wait_for(base + "/p").payload == b"hello"
