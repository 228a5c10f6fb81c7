"""An ACL policy component (`[acl]`) decides every connect, subscribe and
publish in place of the built-in grants; a policy that fails denies, and the
broker keeps serving.

The components are the real ones guests/build puts in target/wasm/."""

import json
import time

import pytest

from helpers import V5, prove_live_then_quiet, uniq

pytestmark = pytest.mark.firehose_only

# The policy grants `publisher` gerrit/# where the built-in grants of the
# test config give it ansible/#: what arrives shows who decided.
PUBLISHERS = json.dumps({"publisher": ["gerrit/#"]})


@pytest.mark.acl("public-read", config={"publishers": PUBLISHERS})
def test_public_read_policy_keeps_the_bus_read_only(broker, clients):
    assert "ACL policy loaded" in broker.log_text()
    inside = uniq("gerrit/e2e")
    builtin_only = uniq("ansible/e2e")
    sub = clients.anonymous()
    sub.subscribe("#", 1)
    assert sub.subscribe("$SYS/#") == [0x87], "the policy refuses $-topics"
    anon = clients.anonymous(version=V5)
    assert anon.publish(inside + "/anon", b"no", qos=1) == 0x87
    pub = clients.publisher(version=V5)
    assert pub.publish(builtin_only + "/x", b"no", qos=1) == 0x87
    assert pub.publish(inside + "/ok", b"yes", qos=1) < 0x80
    assert sub.wait_for(inside + "/ok").payload == b"yes"
    prove_live_then_quiet(sub, pub, inside + "/control",
                          lambda m: m.topic in (inside + "/anon", builtin_only + "/x"))
    assert anon.c.is_connected(), "a refused publish must not close the connection"


@pytest.mark.acl("public-read", config={"publishers": PUBLISHERS})
def test_a_wrong_password_never_reaches_the_policy(broker, clients):
    bad = clients.new(username=broker.user, password="wrong", version=V5)
    assert bad.connect(expect_success=False) == 0x86


@pytest.mark.acl("deny-topics", config={"deny": json.dumps(["secret/#"])})
def test_deny_topics_policy_refuses_overlapping_subscriptions(broker, clients):
    sub = clients.anonymous()
    assert sub.subscribe("secret/x") == [0x87]
    assert sub.subscribe("#") == [0x87], "# overlaps secret/#"
    assert sub.subscribe("open/#") == [0]


@pytest.mark.acl("fault-loop", limits={"deadline_ms": 20})
def test_a_policy_that_loops_denies_within_its_deadline_and_the_broker_keeps_serving(broker, clients):
    topic = uniq()
    sub = clients.anonymous()
    sub.subscribe(topic, 1)
    pub = clients.publisher(version=V5)
    for i in range(3):
        started = time.monotonic()
        assert pub.publish(topic, b"looped %d" % i, qos=1) == 0x87
        assert time.monotonic() - started < 2.0
    assert sub.drain(1.0) == [], "a message the policy never allowed was delivered"
    assert "ACL policy failed; denied" in broker.log_text()
    late = clients.anonymous()
    assert late.subscribe(topic, 1) == [1], "subscribing still works: only check-publish loops"
    assert broker.alive()


@pytest.mark.acl("fault-alloc")
def test_a_policy_that_eats_memory_is_trapped_and_denies(broker, clients):
    pub = clients.publisher(version=V5)
    assert pub.publish(uniq(), b"x", qos=1) == 0x87
    assert pub.publish(uniq(), b"x", qos=1) == 0x87
    assert broker.alive()


@pytest.mark.acl("fault-panic")
def test_a_policy_that_panics_denies(broker, clients):
    pub = clients.publisher(version=V5)
    assert pub.publish(uniq(), b"x", qos=1) == 0x87
    assert broker.alive()
