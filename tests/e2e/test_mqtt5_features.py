"""MQTT 5 features (and sessions of both versions) with paho-mqtt and raw sockets."""

import time

import pytest

import mqtt_raw as raw
from helpers import (QUIET, V311, V5, PacketTypes, SubscribeOptions, prove_live_then_quiet, props,
                     uniq)


def test_v5_publish_properties_pass_through(broker, clients):
    base = uniq()
    sub = clients.anonymous()
    sub.subscribe(base, 1)
    pub = clients.publisher()
    user_props = [("a", "1"), ("b", "zwei"), ("a", "3"), ("ünï", "cödé")]
    p = props(PacketTypes.PUBLISH, UserProperty=user_props, ContentType="application/json",
              ResponseTopic=base + "/reply", CorrelationData=b"\x00\x01corr\xff",
              PayloadFormatIndicator=1)
    pub.publish(base, b'{"x": 1}', qos=1, properties=p)
    m = sub.wait_for(base)
    got = m.properties
    assert m.payload == b'{"x": 1}'
    assert got.UserProperty == user_props, "user properties, in order"
    assert got.ContentType == "application/json"
    assert got.ResponseTopic == base + "/reply"
    assert got.CorrelationData == b"\x00\x01corr\xff"
    assert got.PayloadFormatIndicator == 1


def test_v5_properties_reach_a_v311_subscriber_as_plain_message(broker, clients):
    base = uniq()
    sub = clients.anonymous(version=V311)
    sub.subscribe(base, 1)
    pub = clients.publisher()
    pub.publish(base, b"plain", qos=1, properties=props(PacketTypes.PUBLISH, ContentType="text/plain",
                                                         UserProperty=[("k", "v")]))
    assert sub.wait_for(base).payload == b"plain"


def test_v5_subscription_identifiers_arrive(broker, clients):
    base = uniq()
    sub = clients.anonymous()
    assert sub.subscribe(base + "/a/#", 1,
                         properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7)) == [1]
    assert sub.subscribe(base + "/b/#", 1,
                         properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=268435455)) == [1]
    assert sub.subscribe(base + "/c/#", 1) == [1]
    pub = clients.publisher()
    pub.publish(base + "/a/1", b"a", qos=1)
    pub.publish(base + "/b/1", b"b", qos=1)
    pub.publish(base + "/c/1", b"c", qos=1)
    got = {m.topic: m for m in sub.wait_messages(3)}
    assert got[base + "/a/1"].properties.SubscriptionIdentifier == [7]
    assert got[base + "/b/1"].properties.SubscriptionIdentifier == [268435455]
    assert not hasattr(got[base + "/c/1"].properties, "SubscriptionIdentifier"), \
        "no identifier on a subscription made without one"


def test_v5_no_local_suppresses_own_messages_only(broker, clients):
    base = uniq()
    me = clients.publisher()
    assert me.subscribe(base + "/#", options=SubscribeOptions(qos=1, noLocal=True)) == [1]
    other = clients.publisher()  # same user, another connection: not "local"
    me.publish(base + "/mine", b"mine", qos=1)
    other.publish(base + "/theirs", b"theirs", qos=1)
    seen = []
    assert me.wait_for(base + "/theirs", others=seen).payload == b"theirs"
    seen += me.drain(QUIET)
    assert [m.topic for m in me.history if m.topic == base + "/mine"] == [], "no-local delivered own message"


def test_v5_retain_as_published_keeps_retain_flag(broker, clients):
    base = uniq()
    rap = clients.anonymous()
    rap.subscribe(base + "/#", options=SubscribeOptions(qos=1, retainAsPublished=True))
    plain = clients.anonymous()
    plain.subscribe(base + "/#", options=SubscribeOptions(qos=1, retainAsPublished=False))
    pub = clients.publisher()
    pub.publish(base + "/r", b"live-retained", qos=1, retain=True)
    pub.publish(base + "/n", b"live-plain", qos=1, retain=False)
    a = {m.topic: m.retain for m in rap.wait_messages(2)}
    b = {m.topic: m.retain for m in plain.wait_messages(2)}
    assert a == {base + "/r": True, base + "/n": False}, "retain-as-published"
    assert b == {base + "/r": False, base + "/n": False}, "live messages lose the retain flag by default"
    pub.publish(base + "/r", b"", qos=1, retain=True)


def test_v5_retain_handling(broker, clients):
    base = uniq()
    pub = clients.publisher()
    pub.publish(base + "/r", b"retained", qos=1, retain=True)

    rh0 = clients.anonymous()
    rh0.subscribe(base + "/#", options=SubscribeOptions(qos=1, retainHandling=0))
    m = rh0.wait_for(base + "/r")
    assert m.retain and m.payload == b"retained"
    # RH 0 again on the existing subscription: sent again.
    rh0.subscribe(base + "/#", options=SubscribeOptions(qos=1, retainHandling=0))
    assert rh0.wait_for(base + "/r").payload == b"retained"

    rh1 = clients.anonymous()
    rh1.subscribe(base + "/#", options=SubscribeOptions(qos=1, retainHandling=1))
    assert rh1.wait_for(base + "/r").payload == b"retained", "RH 1: sent on a new subscription"
    rh1.subscribe(base + "/#", options=SubscribeOptions(qos=1, retainHandling=1))

    rh2 = clients.anonymous()
    rh2.subscribe(base + "/#", options=SubscribeOptions(qos=1, retainHandling=2))
    # RH 1 on an existing subscription and RH 2 never get the retained message;
    # a live control message still arrives.
    for c in (rh1, rh2):
        prove_live_then_quiet(c, pub, base + "/control", lambda m: False)
    assert [m.topic for m in rh1.history].count(base + "/r") == 1, \
        "RH 1: not sent again on an existing subscription"
    assert [m.topic for m in rh2.history].count(base + "/r") == 0, "RH 2: never sent"
    pub.publish(base + "/r", b"", qos=1, retain=True)


def test_v5_shared_subscription_splits_messages(broker, clients):
    base = uniq()
    members = [clients.anonymous() for _ in range(2)]
    for m in members:
        assert m.subscribe(f"$share/g/{base}/#", 1) == [1]
    everyone = clients.anonymous()
    everyone.subscribe(base + "/#", 1)
    pub = clients.publisher()
    sent = [f"s{i}".encode() for i in range(40)]
    for p in sent:
        pub.publish(base + "/work", p, qos=1)
    assert [m.payload for m in everyone.wait_messages(len(sent))] == sent, "a plain subscriber gets all"
    got = [[], []]
    deadline = time.monotonic() + 10
    while sum(map(len, got)) < len(sent) and time.monotonic() < deadline:
        for i, m in enumerate(members):
            got[i] += [x.payload for x in m.drain(0.05)]
    for i, m in enumerate(members):
        got[i] += [x.payload for x in m.drain(QUIET / 2)]
    total = got[0] + got[1]
    assert len(total) == len(sent), f"each message to exactly one member: {len(got[0])}+{len(got[1])}"
    assert sorted(total) == sorted(sent)
    assert got[0] and got[1], f"both members get a share: {len(got[0])} / {len(got[1])}"


def test_v311_shared_subscription_splits_messages(broker, clients):
    base = uniq()
    members = [clients.anonymous(version=V311) for _ in range(2)]
    for m in members:
        assert m.subscribe(f"$share/grp/{base}/#", 1) == [1]
    pub = clients.publisher()
    sent = [f"s{i}".encode() for i in range(20)]
    for p in sent:
        pub.publish(base + "/w", p, qos=1)
    time.sleep(0.5)
    got = [[x.payload for x in m.drain(QUIET)] for m in members]
    assert sorted(got[0] + got[1]) == sorted(sent)


def test_v5_retained_message_expires(broker, clients):
    base = uniq()
    pub = clients.publisher()
    pub.publish(base + "/short", b"expires", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish(base + "/long", b"stays", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=600))
    early = clients.anonymous()
    early.subscribe(base + "/#", 1)
    assert sorted(m.topic for m in early.wait_messages(2)) == [base + "/long", base + "/short"]
    time.sleep(2.2)
    late = clients.anonymous()
    late.subscribe(base + "/#", 1)
    m = late.wait_for(base + "/long")
    assert 0 < m.properties.MessageExpiryInterval <= 600, "remaining expiry is forwarded"
    late.drain(QUIET)
    assert [x.topic for x in late.history if x.topic != base + "/long"] == [], \
        "expired retained message delivered"
    pub.publish(base + "/long", b"", qos=1, retain=True)


def test_v5_message_expiry_drops_queued_offline_message(broker, clients):
    base = uniq()
    cid = "exp-" + base[-10:]
    sub = clients.new(client_id=cid, clean=True,
                      connect_properties=props(PacketTypes.CONNECT, SessionExpiryInterval=300))
    sub.connect()
    sub.subscribe(base + "/#", 1)
    sub.disconnect()
    pub = clients.publisher()
    pub.publish(base + "/short", b"gone", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish(base + "/long", b"kept", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=300))
    time.sleep(2.2)
    back = clients.new(client_id=cid, clean=False,
                       connect_properties=props(PacketTypes.CONNECT, SessionExpiryInterval=300))
    back.connect()
    assert back.session_present
    assert back.wait_for(base + "/long").payload == b"kept"
    back.drain(QUIET)
    assert [m.topic for m in back.history if m.topic != base + "/long"] == [], \
        "expired queued message delivered"


def _offline_qos1(clients, base, version, transport="tcp"):
    cid = f"persist-{version}-{base[-8:]}"
    kw = dict(client_id=cid, version=version, transport=transport)
    if version == V5:
        kw["connect_properties"] = props(PacketTypes.CONNECT, SessionExpiryInterval=300)
    # v5: clean start with a session expiry; 3.1.1: clean session 0 from the start.
    first = clients.new(clean=(version == V5), **kw)
    first.connect()
    assert first.subscribe(base + "/#", 1) == [1]
    first.disconnect()
    pub = clients.publisher()
    sent = [f"offline-{i}".encode() for i in range(5)]
    for p in sent:
        pub.publish(base + "/q", p, qos=1)
    pub.publish(base + "/q0", b"qos0-offline", qos=0)
    again = clients.new(clean=False, **kw)
    again.connect()
    return again, sent


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
@pytest.mark.parametrize("transport", ["tcp", "wss"])
def test_persistent_session_receives_qos1_published_while_offline(broker, clients, version, transport):
    base = uniq()
    again, sent = _offline_qos1(clients, base, version, transport)
    assert again.session_present, "session must be present on reconnect"
    got = [m for m in again.wait_messages(len(sent)) if m.topic == base + "/q"]
    assert [m.payload for m in got] == sent
    assert all(m.qos == 1 for m in got)
    # The subscription survived too: a live message still arrives.
    pub = clients.publisher()
    pub.publish(base + "/live", b"live", qos=1)
    assert again.wait_for(base + "/live").payload == b"live"


def test_v5_session_expiry_zero_discards_session(broker, clients):
    base = uniq()
    cid = "noexp-" + base[-8:]
    first = clients.new(client_id=cid, clean=True,
                        connect_properties=props(PacketTypes.CONNECT, SessionExpiryInterval=0))
    first.connect()
    first.subscribe(base + "/#", 1)
    first.disconnect()
    pub = clients.publisher()
    pub.publish(base + "/q", b"lost", qos=1)
    again = clients.new(client_id=cid, clean=False)
    again.connect()
    assert not again.session_present
    again.subscribe(base + "/#", 1)
    prove_live_then_quiet(again, pub, base + "/control", lambda m: m.topic == base + "/q")


def test_v311_clean_session_discards_previous_session(broker, clients):
    base = uniq()
    cid = "clean-" + base[-8:]
    first = clients.new(client_id=cid, version=V311, clean=False)
    first.connect()
    first.subscribe(base + "/#", 1)
    first.disconnect()
    pub = clients.publisher()
    pub.publish(base + "/q", b"lost", qos=1)
    again = clients.new(client_id=cid, version=V311, clean=True)
    again.connect()
    assert not again.session_present
    again.subscribe(base + "/#", 1)
    prove_live_then_quiet(again, pub, base + "/control", lambda m: m.topic == base + "/q")


def _will_client(broker, base, cid, delay, session_expiry=30):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    rc = c.mqtt_connect(version=5, client_id=cid, keepalive=30, username=broker.user,
                        password=broker.password.encode(),
                        properties=raw.prop_u32(raw.P_SESSION_EXPIRY, session_expiry),
                        will=dict(topic=base + "/will", payload=b"gone", qos=1),
                        will_properties=raw.prop_u32(raw.P_WILL_DELAY, delay))
    assert rc == 0
    return c


def test_v5_will_delay_for_authenticated_client(broker, clients):
    base = uniq()
    sub = clients.anonymous()
    sub.subscribe(base + "/#", 1)
    c = _will_client(broker, base, "wd-" + base[-8:], delay=2)
    t0 = time.monotonic()
    c.abort()
    m = sub.wait_for(base + "/will", timeout=8)
    elapsed = time.monotonic() - t0
    assert m.payload == b"gone"
    assert elapsed >= 1.5, f"will sent after {elapsed:.2f}s, before its 2 s delay"


def test_v5_will_without_delay_is_sent_at_once_and_not_on_clean_disconnect(broker, clients):
    base = uniq()
    sub = clients.anonymous()
    sub.subscribe(base + "/#", 1)
    polite = _will_client(broker, base + "/polite", "wp-" + base[-8:], delay=0)
    polite.send(raw.disconnect(5, 0))
    polite.close()
    rude = _will_client(broker, base, "wr-" + base[-8:], delay=0)
    t0 = time.monotonic()
    rude.abort()
    seen = []
    sub.wait_for(base + "/will", timeout=5, others=seen)
    assert time.monotonic() - t0 < 3
    seen += sub.drain(QUIET)
    assert [m.topic for m in sub.history if "polite" in m.topic] == [], "will sent after a normal DISCONNECT"


def test_v5_will_delay_cancelled_by_reconnect(broker, clients):
    base = uniq()
    sub = clients.anonymous()
    sub.subscribe(base + "/#", 1)
    cid = "wc-" + base[-8:]
    c = _will_client(broker, base, cid, delay=3)
    c.abort()
    time.sleep(0.5)
    back = raw.RawClient(broker.host, broker.mqtt_port)
    assert back.mqtt_connect(version=5, client_id=cid, clean=False, username=broker.user,
                             password=broker.password.encode(),
                             properties=raw.prop_u32(raw.P_SESSION_EXPIRY, 30)) == 0
    pub = clients.publisher()
    try:
        time.sleep(3.5)
        prove_live_then_quiet(sub, pub, base + "/control", lambda m: m.topic == base + "/will")
    finally:
        back.send(raw.disconnect(5, 0))
        back.close()


def test_v5_topic_alias_from_client_is_delivered_with_full_topic(broker, clients):
    base = uniq()
    sub = clients.anonymous()
    sub.subscribe(base + "/#", 1)
    v311 = clients.anonymous(version=V311)
    v311.subscribe(base + "/#", 1)
    pub = clients.publisher()
    assert pub.connack_properties.TopicAliasMaximum >= 1
    pub.publish(base + "/aliased", b"first", qos=1, properties=props(PacketTypes.PUBLISH, TopicAlias=1))
    pub.publish("", b"second", qos=1, properties=props(PacketTypes.PUBLISH, TopicAlias=1))
    pub.publish("", b"third", qos=0, properties=props(PacketTypes.PUBLISH, TopicAlias=1))
    for s in (sub, v311):
        got = s.wait_messages(3)
        assert [(m.topic, m.payload) for m in got] == [
            (base + "/aliased", b"first"), (base + "/aliased", b"second"), (base + "/aliased", b"third")]


def test_v5_maximum_packet_size_of_subscriber_is_respected(broker, clients):
    base = uniq()
    sub = clients.new(connect_properties=props(PacketTypes.CONNECT, MaximumPacketSize=200))
    sub.connect()
    sub.subscribe(base + "/#", 1)
    pub = clients.publisher()
    pub.publish(base + "/big", b"B" * 1000, qos=1)
    pub.publish(base + "/small", b"small", qos=1)
    seen = []
    assert sub.wait_for(base + "/small", others=seen).payload == b"small"
    seen += sub.drain(0.5)
    assert [m.topic for m in sub.history if m.topic != base + "/small"] == [], \
        "a packet larger than the client's maximum was sent"
    assert sub.c.is_connected()


def test_v5_connack_announces_server_limits(broker, clients):
    c = clients.anonymous()
    p = c.connack_properties
    assert getattr(p, "TopicAliasMaximum", 0) >= 1
    # Maximum packet size is announced if the server has one (firehose: 1 MiB).
    if broker.kind == "firehose":
        assert p.MaximumPacketSize == 1048576
        assert p.ReceiveMaximum == 32


def test_v5_server_respects_client_receive_maximum(broker, clients):
    """A subscriber with receive maximum 2 that does not acknowledge gets 2 in flight."""
    base = uniq()
    s = raw.RawClient(broker.host, broker.mqtt_port)
    assert s.mqtt_connect(version=5, client_id="rm-" + base[-8:],
                          properties=raw.prop_u16(raw.P_RECEIVE_MAXIMUM, 2)) == 0
    assert s.mqtt_subscribe([(base + "/#", 1)]) == [1]
    pub = clients.publisher()
    for i in range(6):
        pub.publish(base + "/q", f"m{i}".encode(), qos=1)
    got = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            t, flags, body = s.recv_packet(0.3)
        except TimeoutError:
            continue
        assert t == raw.PUBLISH
        got.append(raw.parse_publish(flags, body))
    assert len(got) == 2, f"{len(got)} unacknowledged QoS 1 messages in flight, receive maximum is 2"
    # Acknowledge: the rest flows, in order.
    for g in got:
        s.send(raw.puback(g["packet_id"]))
    while len(got) < 6:
        t, flags, body = s.recv_packet(5)
        assert t == raw.PUBLISH
        g = raw.parse_publish(flags, body)
        got.append(g)
        s.send(raw.puback(g["packet_id"]))
    assert [g["payload"] for g in got] == [f"m{i}".encode() for i in range(6)]
    s.close()


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_session_takeover_disconnects_the_old_connection(broker, version):
    cid = "takeover-" + uniq()[-8:]
    old = raw.RawClient(broker.host, broker.mqtt_port)
    assert old.mqtt_connect(version=version, client_id=cid) == 0
    new = raw.RawClient(broker.host, broker.mqtt_port)
    assert new.mqtt_connect(version=version, client_id=cid) == 0
    packets, closed, _ = old.read_until_closed(5)
    assert closed, "the old connection must be closed on takeover"
    if version == 5:
        reason = raw.disconnect_reason(packets)
        assert reason in (None, 0x8E), f"takeover DISCONNECT reason {reason:#x}, expected 0x8E"
    new.send(raw.pingreq())
    new.expect(raw.PINGRESP)
    new.close()
    old.close()


def test_v5_assigned_client_identifier_for_empty_client_id(broker):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    c.send(raw.connect(version=5, client_id=""))
    _, body = c.expect(raw.CONNACK)
    assert body[1] == 0
    assert bytes([0x12]) in body[2:], "CONNACK must carry an Assigned Client Identifier (0x12)"
    c.close()


def test_v5_server_keep_alive_caps_client_keep_alive(broker):
    """max_keep_alive 65535 by default: a client asking 0 (no keep alive) is accepted."""
    c = raw.RawClient(broker.host, broker.mqtt_port)
    assert c.mqtt_connect(version=5, client_id="ka0", keepalive=0) == 0
    c.send(raw.pingreq())
    c.expect(raw.PINGRESP)
    c.close()


@pytest.mark.firehose_only
@pytest.mark.limits(max_queued_messages=10, max_inflight=5)
@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_offline_queue_is_bounded(broker, clients, version):
    """max_queued_messages bounds what waits for an offline session; the rest is dropped."""
    base = uniq()
    cid = f"bounded-{version}-{base[-6:]}"
    kw = dict(client_id=cid, version=version)
    if version == V5:
        kw["connect_properties"] = props(PacketTypes.CONNECT, SessionExpiryInterval=300)
    first = clients.new(clean=(version == V5), **kw)
    first.connect()
    first.subscribe(base + "/#", 1)
    first.disconnect()
    pub = clients.publisher()
    for i in range(100):
        pub.publish(base + "/q", f"{i:03d}".encode(), qos=1)
    again = clients.new(clean=False, **kw)
    again.connect()
    assert again.session_present
    again.drain(2.0)
    n = len(again.history)
    assert 1 <= n <= 15, f"{n} of 100 offline messages delivered; queue bound 10 (+5 inflight)"
    # The session still works after the overflow.
    pub.publish(base + "/live", b"live", qos=1)
    assert again.wait_for(base + "/live").payload == b"live"


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_qos2_duplicate_publish_is_delivered_exactly_once(broker, clients, version):
    base = uniq()
    sub = clients.anonymous()
    sub.subscribe(base + "/#", 2)
    c = raw.RawClient(broker.host, broker.mqtt_port)
    assert c.mqtt_connect(version=version, client_id="q2dup-" + base[-6:], username=broker.user,
                          password=broker.password.encode()) == 0
    c.send(raw.publish(base + "/once", b"exactly-once", qos=2, packet_id=42, version=version))
    c.expect(raw.PUBREC)
    # Resent with DUP before PUBREL (as after a lost PUBREC): must not deliver twice.
    c.send(raw.publish(base + "/once", b"exactly-once", qos=2, packet_id=42, version=version, dup=True))
    c.expect(raw.PUBREC)
    c.send(raw.pubrel(42))
    c.expect(raw.PUBCOMP)
    c.send(raw.disconnect(version))
    c.close()
    pub = clients.publisher()
    prove_live_then_quiet(sub, pub, base + "/control", lambda m: False)
    assert [m.topic for m in sub.history].count(base + "/once") == 1


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_unacknowledged_qos1_is_redelivered_with_dup_after_reconnect(broker, clients, version):
    base = uniq()
    cid = "redeliver-" + base[-6:]
    props5 = raw.prop_u32(raw.P_SESSION_EXPIRY, 300) if version == 5 else b""
    s = raw.RawClient(broker.host, broker.mqtt_port)
    assert s.mqtt_connect(version=version, client_id=cid, clean=(version == 5), properties=props5) == 0
    assert s.mqtt_subscribe([(base + "/#", 1)], version=version) == [1]
    pub = clients.publisher()
    pub.publish(base + "/q", b"ack-me", qos=1)
    flags, body = s.expect(raw.PUBLISH)
    first = raw.parse_publish(flags, body, version)
    assert first["payload"] == b"ack-me"
    s.abort()  # never acknowledged
    s2 = raw.RawClient(broker.host, broker.mqtt_port)
    s2.send(raw.connect(version=version, client_id=cid, clean=False, properties=props5))
    _, connack = s2.expect(raw.CONNACK)
    assert connack[0] & 1, "session present"
    flags, body = s2.expect(raw.PUBLISH)
    again = raw.parse_publish(flags, body, version)
    assert again["payload"] == b"ack-me"
    assert flags & 0x08, "a redelivered PUBLISH carries DUP"
    s2.send(raw.puback(again["packet_id"]))
    s2.send(raw.disconnect(version))
    s2.close()


def test_v311_empty_client_id_without_clean_session_is_rejected(broker):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        assert c.mqtt_connect(version=4, client_id="", clean=False) == 2, "identifier rejected"
    finally:
        c.close()


def test_v5_client_exceeding_receive_maximum_is_disconnected(broker, clients):
    """receive_maximum = 32: a 33rd unacknowledged QoS 2 publish is a protocol violation (0x93)."""
    base = uniq()
    c = raw.RawClient(broker.host, broker.mqtt_port)
    _ = clients
    try:
        c.send(raw.connect(version=5, client_id="rm-excess", username=broker.user,
                           password=broker.password.encode()))
        _, connack = c.expect(raw.CONNACK)
        assert connack[1] == 0
        for pid in range(1, 40):
            if not c.try_send(raw.publish(base + "/q2", b"x", qos=2, packet_id=pid)):
                break
        packets, closed, _ = c.read_until_closed(5)
        recs = [p for p in packets if p[0] == raw.PUBREC]
        assert closed, f"still connected after 39 unreleased QoS 2 publishes ({len(recs)} PUBREC)"
        reason = raw.disconnect_reason(packets)
        assert reason in (None, 0x93), f"DISCONNECT reason {reason:#x}, expected 0x93"
        assert len(recs) <= 32
    finally:
        c.close()


def test_v5_publish_larger_than_server_maximum_is_refused_with_0x95(broker, clients):
    base = uniq()
    sub = clients.anonymous()
    sub.subscribe(base + "/#", 1)
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        assert c.mqtt_connect(version=5, client_id="too-big", username=broker.user,
                              password=broker.password.encode()) == 0
        c.try_send(raw.publish(base + "/big", b"B" * (1048576 + 100), qos=0))
        packets, closed, _ = c.read_until_closed(10)
        assert closed
        reason = raw.disconnect_reason(packets)
        assert reason in (None, 0x95), f"DISCONNECT reason {reason:#x}, expected 0x95"
    finally:
        c.close()
    pub = clients.publisher()
    prove_live_then_quiet(sub, pub, base + "/control", lambda m: m.topic == base + "/big")


@pytest.mark.firehose_only
@pytest.mark.limits(max_keep_alive=10)
def test_v5_server_keep_alive_is_announced_when_client_asks_more(broker):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        c.send(raw.connect(version=5, client_id="ka-cap", keepalive=600))
        _, body = c.expect(raw.CONNACK)
        assert body[1] == 0
        # Server Keep Alive (0x13) = 10
        assert b"\x13\x00\x0a" in body[2:], f"CONNACK properties {body[2:]!r} lack Server Keep Alive 10"
    finally:
        c.close()


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_unsubscribe_stops_delivery(broker, clients, version):
    base = uniq()
    sub = clients.anonymous(version=version)
    sub.subscribe([(base + "/a", 1), (base + "/b", 1)])
    sub.unsubscribe(base + "/a")
    pub = clients.publisher()
    pub.publish(base + "/a", b"after-unsubscribe", qos=1)
    prove_live_then_quiet(sub, pub, base + "/b", lambda m: m.topic == base + "/a")


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_retained_message_is_delivered_at_the_subscription_qos(broker, clients, version):
    base = uniq()
    pub = clients.publisher()
    pub.publish(base + "/r", b"r", qos=2, retain=True)
    low = clients.anonymous(version=version)
    low.subscribe(base + "/#", 1)
    m = low.wait_for(base + "/r")
    assert m.qos == 1 and m.retain
    pub.publish(base + "/r", b"", qos=1, retain=True)
