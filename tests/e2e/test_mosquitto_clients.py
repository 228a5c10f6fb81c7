"""Debian's mosquitto_sub / mosquitto_pub against the broker, over tcp and tls."""

import pytest

from helpers import MosqSub, mosquitto_pub, mosq_auth, mosq_target, uniq, QUIET

VERSIONS = ["mqttv5", "mqttv311", "mqttv31"]
ENDPOINTS = [("tcp", "127.0.0.1"), ("tcp", "localhost"), ("tls", "127.0.0.1"), ("tls", "localhost")]

# Every byte value, so nothing in the path may re-encode the payload.
BINARY_PAYLOAD = bytes(range(256)) + "ünïcödé ✓".encode() + b"\r\n\x00end"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transport,host", ENDPOINTS, ids=[f"{t}-{h}" for t, h in ENDPOINTS])
def test_authenticated_publish_reaches_anonymous_mosquitto_sub_byte_exact(
        broker, tmp_path, transport, host, version):
    topic = uniq()
    sub = MosqSub([*mosq_target(broker, transport, host), "-V", version, "-q", "1", "-t", topic + "/#"])
    try:
        sub.wait_subscribed()
        f = tmp_path / "payload.bin"
        f.write_bytes(BINARY_PAYLOAD)
        r = mosquitto_pub([*mosq_target(broker, transport, host), "-V", version, *mosq_auth(broker),
                           "-q", "1", "-t", topic + "/binary", "-f", str(f)])
        assert r.returncode == 0, r.stdout
        assert "not authori" not in r.stdout.lower(), r.stdout
        got_topic, payload, retain = sub.wait_for(topic + "/binary")
        assert payload == BINARY_PAYLOAD
        assert not retain
    finally:
        sub.stop()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_hash_subscriber_does_not_receive_dollar_topics(broker, clients, transport):
    tag = uniq("x").split("/")[1]
    dollar_topic = f"$test/{tag}"
    control = uniq()
    sub = MosqSub([*mosq_target(broker, transport), "-t", "#"])
    try:
        sub.wait_subscribed()
        # Proof that the `$` message is routed at all: a `$test/#` subscriber gets it.
        op = clients.operator()
        assert op.subscribe("$test/#", 1) == [1]
        assert op.publish(dollar_topic, b"dollar", qos=1) == 0
        m = op.wait_for(dollar_topic)
        assert m.payload == b"dollar"
        op.publish(control, b"control", qos=1)
        others = []
        _, payload, _ = sub.wait_for(control, others=others)
        assert payload == b"control"
        others += sub.drain(QUIET)
        assert [m for m in sub.history if m[0].startswith("$")] == [], \
            f"`#` matched $-topics: {sub.history}"
    finally:
        sub.stop()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_retained_message_reaches_late_subscriber_and_empty_retained_publish_clears_it(
        broker, transport):
    base = uniq()
    target = mosq_target(broker, transport)
    r = mosquitto_pub([*target, *mosq_auth(broker), "-q", "1", "-r", "-t", base + "/state",
                       "-m", "retained-v1"])
    assert r.returncode == 0, r.stdout

    late = MosqSub([*target, "-t", base + "/#"])
    try:
        late.wait_subscribed()
        topic, payload, retain = late.wait_for(base + "/state")
        assert payload == b"retained-v1"
        assert retain, "a retained message delivered on subscribe must carry the retain flag"
    finally:
        late.stop()

    # An empty retained publish clears it.
    r = mosquitto_pub([*target, *mosq_auth(broker), "-q", "1", "-r", "-t", base + "/state", "-n"])
    assert r.returncode == 0, r.stdout
    # Control: another retained message under the same filter must still arrive.
    r = mosquitto_pub([*target, *mosq_auth(broker), "-q", "1", "-r", "-t", base + "/control",
                       "-m", "still-here"])
    assert r.returncode == 0, r.stdout

    later = MosqSub([*target, "-t", base + "/#"])
    try:
        later.wait_subscribed()
        others = []
        _, payload, retain = later.wait_for(base + "/control", others=others)
        assert payload == b"still-here" and retain
        others += later.drain(QUIET)
        assert [m for m in later.history if m[0] == base + "/state"] == [], \
            f"cleared retained message still delivered: {later.history}"
    finally:
        later.stop()
    mosquitto_pub([*target, *mosq_auth(broker), "-q", "1", "-r", "-t", base + "/control", "-n"])


@pytest.mark.parametrize("version", VERSIONS)
def test_mosquitto_sub_with_wrong_password_is_refused(broker, version):
    sub = MosqSub([*mosq_target(broker), "-V", version, "-u", broker.user, "-P", "wrong-password",
                   "-t", "#"], timeout=10)
    try:
        sub.p.wait(15)
    finally:
        sub.stop()
    out = "\n".join(sub.lines)
    assert sub.p.returncode != 0, out
    assert not sub.subscribed.is_set(), out
    assert ("not authori" in out.lower() or "bad user name or password" in out.lower()), out
