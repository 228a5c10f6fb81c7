"""Transform chains (`[[transform]]`): each message whose topic matches a
chain runs through its components before it is routed or retained; a
failing component drops the message (`on_error = "drop"`, the default) or is
skipped (`"pass"`), and the broker keeps serving. Policies reload on SIGHUP:
the new set is loaded whole first, a bad one leaves the old set in force,
and no connection is dropped.

The components are the real ones guests/build puts in target/wasm/."""

import json
import subprocess
import time

import pytest
from paho.mqtt.packettypes import PacketTypes

from conftest import firehose_bin, wasm_component
from helpers import V5, props, prove_live_then_quiet, uniq, wait_log

pytestmark = pytest.mark.firehose_only

REDACTED = "ansible/e2e/redacted"
REWRITTEN = "ansible/e2e/rewritten"
FAULTY = "ansible/e2e/faulty"

REDACT_CHAIN = {"name": "redact", "topics": [REDACTED + "/#"],
                "components": [{"component": "redact",
                                "config": {"fields": json.dumps(["email", "secret"])}}]}

EVENT = {"type": "comment-added", "author": {"name": "Ada", "email": "ada@example.org"},
         "secret": "s3", "comment": "LGTM"}


@pytest.mark.transforms(REDACT_CHAIN)
def test_redact_removes_fields_before_routing_and_retaining(broker, clients):
    assert "transform chain loaded" in broker.log_text()
    topic = uniq(REDACTED)
    sub = clients.anonymous(version=V5)
    sub.subscribe(topic, 1)
    pub = clients.publisher(version=V5)
    p = props(PacketTypes.PUBLISH, ContentType="application/json", MessageExpiryInterval=300,
              ResponseTopic="reply/here", UserProperty=[("source", "e2e")])
    assert pub.publish(topic, json.dumps(EVENT).encode(), qos=1, retain=True, properties=p) == 0
    m = sub.wait_for(topic)
    got = json.loads(m.payload)
    assert got == {"type": "comment-added", "author": {"name": "Ada"}, "comment": "LGTM"}
    assert m.properties.ContentType == "application/json"
    assert m.properties.ResponseTopic == "reply/here", "kept by the host though WIT has no field"
    assert ("source", "e2e") in m.properties.UserProperty
    # What is retained is the redacted message, too.
    late = clients.anonymous(version=V5)
    late.subscribe(topic, 1)
    assert json.loads(late.wait_for(topic).payload) == got
    # Topics outside the chain are untouched.
    plain = uniq()
    sub.subscribe(plain, 1)
    pub.publish(plain, json.dumps(EVENT).encode(), qos=1)
    assert json.loads(sub.wait_for(plain).payload) == EVENT


@pytest.mark.transforms({"name": "rewrite-then-redact", "topics": [REWRITTEN + "/#"],
                         "components": [{"component": "topic-rewrite",
                                         "config": {"prefix": "public/"}},
                                        {"component": "redact"}]})
def test_a_chain_runs_its_components_in_order(broker, clients):
    topic = uniq(REWRITTEN)
    sub = clients.anonymous()
    sub.subscribe("public/" + topic, 1)
    sub.subscribe(topic, 1)
    pub = clients.publisher()
    pub.publish(topic, json.dumps(EVENT).encode(), qos=1)
    m = sub.wait_for("public/" + topic)
    assert json.loads(m.payload) == {"type": "comment-added", "author": {"name": "Ada"},
                                     "secret": "s3", "comment": "LGTM"}
    control = uniq()
    sub.subscribe(control, 1)
    prove_live_then_quiet(sub, pub, control, lambda msg: msg.topic == topic)


def faulty_chain(fault: str) -> dict:
    return {"name": "faulty", "topics": [FAULTY + "/#"],
            "components": [{"component": f"fault-transform-{fault}",
                            "limits": {"deadline_ms": 20, "memory_mib": 8}}]}


@pytest.mark.parametrize("fault", [
    pytest.param(fault, marks=pytest.mark.transforms(faulty_chain(fault)))
    for fault in ("panic", "loop", "alloc")])
def test_a_failing_transform_drops_by_default_and_the_broker_keeps_serving(broker, clients, fault):
    topic = uniq(FAULTY)
    sub = clients.anonymous()
    sub.subscribe("#", 1)
    pub = clients.publisher(version=V5)
    for i in range(3):
        started = time.monotonic()
        assert pub.publish(topic, b"secret %d" % i, qos=1) == 0, "accepted, then dropped"
        assert time.monotonic() - started < 3.0
    prove_live_then_quiet(sub, pub, uniq(), lambda m: m.topic == topic)
    wait_log(broker, "transform failed", alive=True)
    other = clients.anonymous()
    assert other.subscribe(uniq(), 1) == [1], "other clients are served"
    assert broker.alive()


@pytest.mark.transforms({"name": "faulty", "topics": [FAULTY + "/#"], "on_error": "pass",
                         "components": [{"component": "fault-transform-panic"},
                                        {"component": "redact"}]})
def test_on_error_pass_skips_the_failing_component(broker, clients):
    topic = uniq(FAULTY)
    sub = clients.anonymous()
    sub.subscribe(topic, 1)
    pub = clients.publisher()
    pub.publish(topic, json.dumps(EVENT).encode(), qos=1)
    got = json.loads(sub.wait_for(topic).payload)
    assert "email" not in got["author"], "the rest of the chain still ran"


@pytest.mark.transforms(REDACT_CHAIN)
def test_sighup_reloads_policies_without_dropping_connections(broker, clients):
    topic = uniq(REDACTED)
    sub = clients.anonymous(version=V5)
    sub.subscribe(topic, 1)
    pub = clients.publisher(version=V5)
    assert pub.publish(topic, json.dumps(EVENT).encode(), qos=1) == 0
    assert "email" not in json.loads(sub.wait_for(topic).payload)["author"]

    # 1. A bad set (one missing component) is refused whole: redaction stays.
    broker.transforms = [REDACT_CHAIN, {"name": "broken", "topics": ["x/#"],
                                        "components": [{"component": "redact"}]}]
    broker.rewrite_config()
    text = broker.config.read_text().replace(str(wasm_component("redact")),
                                             str(broker.tmp / "missing.wasm"), 1)
    broker.config.write_text(text)
    broker.sighup()
    wait_log(broker, "policies not reloaded", alive=True)
    assert "missing.wasm" in broker.log_text()
    assert pub.publish(topic, json.dumps(EVENT).encode(), qos=1) == 0
    assert "email" not in json.loads(sub.wait_for(topic).payload)["author"]

    # 2. A good set without the chain, and an ACL that no longer lets the
    # publisher write there: remembered publish decisions are forgotten.
    broker.transforms = []
    broker.acl = {"component": "public-read",
                  "config": {"publishers": json.dumps({broker.user: ["ansible/e2e/other/#"]})}}
    broker.rewrite_config()
    broker.sighup()
    wait_log(broker, "policies reloaded", alive=True)
    assert pub.publish(topic, json.dumps(EVENT).encode(), qos=1) == 0x87
    allowed = uniq("ansible/e2e/other")
    sub.subscribe(allowed, 1)
    assert pub.publish(allowed, json.dumps(EVENT).encode(), qos=1) == 0
    assert json.loads(sub.wait_for(allowed).payload) == EVENT, "no redaction any more"
    assert sub.c.is_connected() and pub.c.is_connected(), "a reload drops no connection"


def test_a_broker_with_a_bad_transform_refuses_to_start(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(
        "data_dir = '%s'\n[[listener]]\nname = \"mqtt\"\nkind = \"mqtt\"\naddress = \"127.0.0.1:0\"\n"
        "[[transform]]\nname = \"wrong-world\"\ntopics = [\"#\"]\n"
        "[[transform.component]]\npath = '%s'\n" % (tmp_path / "data", wasm_component("public-read")))
    r = subprocess.run([str(firehose_bin()), "serve", "--config", str(config)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "transform[0].component[0]" in r.stderr, r.stderr
    assert "acl-policy" in r.stderr and "transform-policy" in r.stderr, r.stderr


def test_policy_try_runs_a_policy_without_a_broker():
    r = subprocess.run(
        [str(firehose_bin()), "policy", "try", str(wasm_component("public-read")),
         "--set", 'publishers={ ansible = ["ansible/#"] }',
         "connect", "subscribe $SYS/#", "publish ansible/x hi user=ansible", "publish ansible/x hi"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "connect (anonymous) -> allow",
        "subscribe $SYS/# (anonymous) -> deny: subscribing to `$` topics is not allowed: `$SYS/#`",
        "publish ansible/x (user=ansible) -> allow",
        "publish ansible/x (anonymous) -> deny: anonymous clients may not publish",
    ]
    r = subprocess.run([str(firehose_bin()), "policy", "try", str(wasm_component("redact"))],
                       input='publish gerrit/x {"owner":{"email":"a@b.c","name":"A"}}\n',
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["publish gerrit/x (anonymous) -> replace with 1:",
                                     '    gerrit/x qos=0 retain=false {"owner":{"name":"A"}}']
    r = subprocess.run([str(firehose_bin()), "policy", "try",
                        str(wasm_component("fault-transform-loop")), "publish a/b x"],
                       capture_output=True, text=True, timeout=60)
    assert "FAILED" in r.stdout and "deadline" in r.stdout, r.stdout


@pytest.mark.transforms(REDACT_CHAIN)
def test_pipelined_publishes_keep_their_order_through_and_around_a_chain(broker, clients):
    """Messages of one read are transformed first and routed together: the
    order of one client's publishes holds across transformed and plain
    topics, and a SUBSCRIBE pipelined after a PUBLISH does not see it."""
    import mqtt_raw as raw

    transformed, plain = uniq(REDACTED), uniq()
    sub = clients.anonymous()
    sub.subscribe(transformed, 0)
    sub.subscribe(plain, 0)
    pub = raw.RawClient(broker.host, broker.mqtt_port)
    assert pub.mqtt_connect(version=5, client_id="pipelined-" + plain[-6:],
                            username=broker.user, password=broker.password.encode()) == 0
    sent = []
    batch = b""
    for i in range(40):
        topic = transformed if i % 3 else plain
        body = {"n": i, "email": "x@example.org"}
        sent.append((topic, i))
        batch += raw.publish(topic, json.dumps(body).encode(), qos=0)
    # The publisher subscribes to the transformed topic right after: the
    # messages it published before must not come back to it.
    batch += raw.subscribe(1, [(transformed, 0)])
    batch += raw.publish(transformed, json.dumps({"n": 40}).encode(), qos=1, packet_id=2)
    pub.send(batch)

    got = []
    deadline = time.monotonic() + 10
    while len(got) < 41:
        assert time.monotonic() < deadline, f"only {len(got)} of 41 arrived"
        got += [(m.topic, json.loads(m.payload)) for m in sub.drain(0.2)]
    assert [(t, p["n"]) for t, p in got] == sent + [(transformed, 40)], "out of order"
    assert all("email" not in p for t, p in got if t == transformed), "redacted"
    assert all("email" in p for t, p in got if t == plain), "untouched"

    # The publisher gets SUBACK, PUBACK and its own last message only.
    own, acked = [], False
    deadline = time.monotonic() + 10
    while not (acked and own):
        assert time.monotonic() < deadline, f"acked={acked}, own={own}"
        ptype, flags, body = pub.recv_packet(timeout=5)
        if ptype == raw.PUBACK:
            acked = True
        elif ptype == raw.PUBLISH:
            own.append(json.loads(raw.parse_publish(flags, body)["payload"]))
    with pytest.raises(TimeoutError):
        ptype, flags, body = pub.recv_packet(timeout=1)
        own.append((ptype, body))
    assert own == [{"n": 40}], "a message published before the SUBSCRIBE came back"
    pub.close()
