"""Malformed and out-of-order packets, connect timeout and keep alive, on raw sockets.

Each bad connection must be closed (after a DISCONNECT with the right reason code
where MQTT 5 has one; the code is asserted when a DISCONNECT is present), the
broker must stay up, and a concurrent subscriber must keep receiving.
"""

import time

import pytest

import mqtt_raw as raw
from conftest import firehose_bin
from helpers import uniq

MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
TOPIC_NAME_INVALID = 0x90
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95


def _dup_content_type() -> bytes:
    return raw.publish("ansible/dup", b"x", qos=0, version=5,
                       properties=raw.prop_str(raw.P_CONTENT_TYPE, "a") + raw.prop_str(raw.P_CONTENT_TYPE, "b"))


def _huge_publish_header() -> bytes:
    # Claims 200 MB; sends a handful of bytes. Must not be allocated or waited for.
    return bytes([0x30]) + raw.varint(200 * 1024 * 1024) + b"\x00\x0bansible/big" + b"x" * 64


# (id, version, authenticated, bytes after CONNECT, allowed v5 DISCONNECT reasons)
CASES = [
    ("subscribe-reserved-flags-v5", 5, False,
     lambda: raw.subscribe(1, [("ansible/#", 0)], version=5, flags=0x00), {MALFORMED}),
    ("subscribe-reserved-flags-v311", 4, False,
     lambda: raw.subscribe(1, [("ansible/#", 0)], version=4, flags=0x00), None),
    ("subscribe-no-filters-v5", 5, False,
     lambda: raw.packet(0x82, b"\x00\x01\x00"), {MALFORMED, PROTOCOL_ERROR}),
    ("subscribe-options-reserved-bits-v5", 5, False,
     lambda: raw.subscribe(1, [("ansible/#", 0xC0)], version=5), {MALFORMED, PROTOCOL_ERROR}),
    ("subscribe-qos3-v311", 4, False,
     lambda: raw.subscribe(1, [("ansible/#", 3)], version=4), None),
    ("publish-bad-utf8-topic-v5", 5, True,
     lambda: raw.publish(b"ansible/\xff\xfe", b"x", version=5), {MALFORMED, TOPIC_NAME_INVALID}),
    ("publish-bad-utf8-topic-v311", 4, True,
     lambda: raw.publish(b"ansible/\xc3\x28", b"x", version=4), None),
    ("publish-nul-in-topic-v5", 5, True,
     lambda: raw.publish(b"ansible/a\x00b", b"x", version=5), {MALFORMED, TOPIC_NAME_INVALID}),
    ("publish-wildcard-topic-plus-v5", 5, True,
     lambda: raw.publish("ansible/+/x", b"x", version=5), {MALFORMED, PROTOCOL_ERROR, TOPIC_NAME_INVALID}),
    ("publish-wildcard-topic-hash-v311", 4, True,
     lambda: raw.publish("ansible/#", b"x", version=4), None),
    ("publish-qos3-v5", 5, True,
     lambda: raw.packet(0x36, raw.utf8("ansible/q3") + b"\x00\x01\x00x"), {MALFORMED}),
    ("publish-qos1-packet-id-zero-v5", 5, True,
     lambda: raw.publish("ansible/pid0", b"x", qos=1, packet_id=0, version=5), {MALFORMED, PROTOCOL_ERROR}),
    ("publish-with-subscription-identifier-v5", 5, True,
     lambda: raw.publish("ansible/subid", b"x", version=5,
                         properties=raw.prop_varint(raw.P_SUBSCRIPTION_ID, 5)), {MALFORMED, PROTOCOL_ERROR}),
    ("publish-duplicated-property-v5", 5, True, _dup_content_type, {MALFORMED, PROTOCOL_ERROR}),
    ("publish-topic-alias-zero-v5", 5, True,
     lambda: raw.publish("ansible/alias0", b"x", version=5, properties=raw.prop_u16(raw.P_TOPIC_ALIAS, 0)),
     {TOPIC_ALIAS_INVALID, PROTOCOL_ERROR}),
    ("publish-unknown-topic-alias-v5", 5, True,
     lambda: raw.publish("", b"x", version=5, properties=raw.prop_u16(raw.P_TOPIC_ALIAS, 5)),
     {TOPIC_ALIAS_INVALID, PROTOCOL_ERROR}),
    ("publish-empty-topic-no-alias-v5", 5, True,
     lambda: raw.publish("", b"x", version=5), {MALFORMED, PROTOCOL_ERROR, TOPIC_NAME_INVALID}),
    ("publish-property-length-overruns-v5", 5, True,
     lambda: raw.packet(0x30, raw.utf8("ansible/p") + raw.varint(50) + b"\x01\x01"), {MALFORMED}),
    ("publish-remaining-length-200MB-v5", 5, True, _huge_publish_header, {PACKET_TOO_LARGE, MALFORMED}),
    ("publish-remaining-length-200MB-v311", 4, True, _huge_publish_header, None),
    ("remaining-length-five-bytes-v5", 5, True,
     lambda: bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]), {MALFORMED}),
    ("second-connect-v5", 5, False, lambda: raw.connect(version=5, client_id="again"), {PROTOCOL_ERROR}),
    ("second-connect-v311", 4, False, lambda: raw.connect(version=4, client_id="again"), None),
    ("pubrel-reserved-flags-v5", 5, True, lambda: raw.packet(0x60, b"\x00\x01"), {MALFORMED}),
    ("packet-type-zero-v5", 5, False, lambda: raw.packet(0x00, b""), {MALFORMED, PROTOCOL_ERROR}),
    ("server-only-packet-connack-v311", 4, False, lambda: raw.packet(0x20, b"\x00\x00"), None),
    ("unsubscribe-reserved-flags-v5", 5, False,
     lambda: raw.packet(0xA0, b"\x00\x01\x00" + raw.utf8("a")), {MALFORMED}),
]


@pytest.fixture
def watcher(broker, clients):
    """A subscriber on `#` plus the publisher: checks that the broker still delivers."""
    sub = clients.anonymous()
    assert sub.subscribe("#", 1) == [1]
    pub = clients.publisher()

    def still_delivering():
        topic = uniq() + "/alive"
        pub.publish(topic, b"alive", qos=1)
        assert sub.wait_for(topic, timeout=5).payload == b"alive"
        assert broker.alive(), "broker died"

    still_delivering()
    return still_delivering


def _connect(broker, version, auth, client_id):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    kw = dict(version=version, client_id=client_id)
    if auth:
        kw.update(username=broker.user, password=broker.password.encode())
    assert c.mqtt_connect(**kw) == 0
    return c


@pytest.mark.parametrize("case_id,version,auth,make,allowed", CASES, ids=[c[0] for c in CASES])
def test_malformed_packet_closes_only_that_connection(broker, watcher, case_id, version, auth, make, allowed):
    bystander = _connect(broker, version, False, "bystander-" + case_id[:10])
    c = _connect(broker, version, auth, "bad-" + case_id[:18])
    try:
        c.try_send(make())
        packets, closed, elapsed = c.read_until_closed(6)
        assert closed, f"{case_id}: connection still open after 6 s; got {[raw.NAMES.get(p[0]) for p in packets]}"
        reason = raw.disconnect_reason(packets)
        if version == 5 and reason is not None:
            assert reason in allowed, f"{case_id}: DISCONNECT reason {reason:#04x}, expected one of " \
                                      f"{sorted(hex(a) for a in allowed)}"
        if version != 5:
            assert reason is None, "MQTT 3.1.1 has no server DISCONNECT"
        # Nothing but an optional DISCONNECT may precede the close.
        kinds = {raw.NAMES.get(p[0]) for p in packets}
        assert kinds <= {"DISCONNECT"}, f"{case_id}: unexpected packets {kinds}"
        watcher()
        bystander.send(raw.pingreq())
        bystander.expect(raw.PINGRESP)
    finally:
        c.close()
        bystander.close()


FIRST_PACKETS = [
    ("pingreq", raw.pingreq()),
    ("publish", raw.publish("ansible/x", b"x", version=4)),
    ("subscribe", raw.subscribe(1, [("#", 0)], version=4)),
    ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("connect-claiming-200MB", bytes([0x10]) + raw.varint(200 * 1024 * 1024) + b"\x00\x04MQTT\x05"),
    ("connect-bad-protocol-name", raw.packet(0x10, raw.utf8("MQTX") + b"\x04\x02\x00\x3c" + raw.utf8("x"))),
    ("connect-reserved-flag", raw.packet(0x10, raw.utf8("MQTT") + b"\x04\x03\x00\x3c" + raw.utf8("x"))),
    ("connect-password-without-username-v311",
     raw.packet(0x10, raw.utf8("MQTT") + b"\x04\x42\x00\x3c" + raw.utf8("x") + raw.utf8("pw"))),
]


@pytest.mark.parametrize("case_id,data", FIRST_PACKETS, ids=[c[0] for c in FIRST_PACKETS])
def test_first_packet_that_is_not_a_valid_connect_closes_the_connection(broker, watcher, case_id, data):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        c.try_send(data)
        packets, closed, elapsed = c.read_until_closed(6)
        assert closed, f"{case_id}: still open after 6 s"
        # Never a successful CONNACK; a refusing CONNACK (e.g. bad protocol) is allowed.
        for t, _, body in packets:
            assert t == raw.CONNACK and len(body) >= 2 and body[1] != 0, \
                f"{case_id}: unexpected {raw.NAMES.get(t)} {body!r}"
        watcher()
    finally:
        c.close()


def test_unsupported_protocol_level_is_refused(broker, watcher):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        c.send(raw.packet(0x10, raw.utf8("MQTT") + b"\x06\x02\x00\x3c" + raw.utf8("x")))
        packets, closed, _ = c.read_until_closed(6)
        assert closed
        for t, _, body in packets:
            assert t == raw.CONNACK and body[1] in (0x01, 0x84), f"CONNACK {body!r}"
        watcher()
    finally:
        c.close()


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_claimed_200MB_packets_are_not_allocated(broker, watcher):
    # Log in first: password checks have their own memory cost (see the next test),
    # the baseline is taken once every client is connected.
    authed = [_connect(broker, 5, True, f"big-{i}") for i in range(20)]
    socks = list(authed)
    try:
        before = _rss_kb(broker.proc.pid)
        for i in range(20):
            c = raw.RawClient(broker.host, broker.mqtt_port)
            c.try_send(bytes([0x10]) + raw.varint(200 * 1024 * 1024) + b"\x00\x04MQTT\x05" + b"\x00" * 1000)
            socks.append(c)
        for c in authed:
            c.try_send(_huge_publish_header())
        for c in socks:
            _, closed, _ = c.read_until_closed(6)
            assert closed
        after = _rss_kb(broker.proc.pid)
        assert after - before < 32 * 1024, f"RSS grew from {before} kB to {after} kB"
        watcher()
    finally:
        for c in socks:
            c.close()


def test_password_checks_do_not_grow_memory(broker, watcher):
    """Failed and successful logins must not leave their hashing memory behind:
    a stranger can make as many attempts as they like."""
    before = _rss_kb(broker.proc.pid)
    for i in range(40):
        c = raw.RawClient(broker.host, broker.mqtt_port)
        try:
            pw = broker.password.encode() if i % 2 else b"wrong-password"
            c.mqtt_connect(version=4, client_id=f"pw-{i}", username=broker.user, password=pw)
        finally:
            c.close()
    after = _rss_kb(broker.proc.pid)
    assert after - before < 64 * 1024, \
        f"RSS grew from {before} kB to {after} kB over 40 password checks"
    watcher()


@pytest.mark.firehose_only
def test_silent_socket_is_closed_after_connect_timeout(broker, watcher):
    # The fixture's config sets connect_timeout_secs = 2.
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        packets, closed, elapsed = c.read_until_closed(8)
        assert closed, "a socket that sent nothing was still open after 8 s"
        assert 1.5 <= elapsed <= 4.5, f"closed after {elapsed:.2f}s, connect timeout is 2 s"
        assert packets == []
        watcher()
    finally:
        c.close()


@pytest.mark.firehose_only
def test_partial_connect_is_closed_after_connect_timeout(broker, watcher):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        c.send(raw.connect(version=4, client_id="partial")[:6])
        packets, closed, elapsed = c.read_until_closed(8)
        assert closed and 1.5 <= elapsed <= 4.5, f"closed={closed} after {elapsed:.2f}s"
        watcher()
    finally:
        c.close()


@pytest.mark.firehose_only
@pytest.mark.parametrize("transport_port", ["mqtts_port", "ws_port", "wss_port"])
def test_silent_socket_on_other_listeners_is_closed_after_connect_timeout(broker, transport_port):
    """No TLS handshake / websocket upgrade either: the same deadline applies."""
    c = raw.RawClient(broker.host, getattr(broker, transport_port))
    try:
        _, closed, elapsed = c.read_until_closed(8)
        assert closed and elapsed <= 4.5, f"closed={closed} after {elapsed:.2f}s"
    finally:
        c.close()


@pytest.mark.firehose_only
def test_flood_of_half_open_sockets_does_not_block_clients(broker, watcher):
    socks = [raw.RawClient(broker.host, broker.mqtt_port) for _ in range(300)]
    try:
        t0 = time.monotonic()
        watcher()
        assert time.monotonic() - t0 < 3
        time.sleep(4.5)
        open_ = 0
        for c in socks:
            _, closed, _ = c.read_until_closed(0.05)
            open_ += not closed
        assert open_ == 0, f"{open_} of {len(socks)} half-open sockets still open after the connect timeout"
        watcher()
    finally:
        for c in socks:
            c.close()


@pytest.mark.parametrize("version", [3, 4, 5], ids=["v31", "v311", "v5"])
def test_keep_alive_expiry_disconnects_silent_client(broker, watcher, version):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        assert c.mqtt_connect(version=version, client_id="ka1-silent", keepalive=1) == 0
        packets, closed, elapsed = c.read_until_closed(6)
        assert closed, "client silent past 1.5x keep alive still connected"
        assert 1.0 <= elapsed <= 3.5, f"disconnected after {elapsed:.2f}s with keep alive 1 s"
        if version == 5:
            reason = raw.disconnect_reason(packets)
            assert reason in (None, 0x8D), f"DISCONNECT reason {reason:#x}, expected 0x8D"
        watcher()
    finally:
        c.close()


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_keep_alive_pings_keep_client_connected(broker, version):
    c = raw.RawClient(broker.host, broker.mqtt_port)
    try:
        assert c.mqtt_connect(version=version, client_id="ka1-pinging", keepalive=1) == 0
        for _ in range(8):
            time.sleep(0.5)
            c.send(raw.pingreq())
            c.expect(raw.PINGRESP, timeout=2)
    finally:
        c.close()


@pytest.mark.firehose_only
def test_broker_binary_never_panicked(broker, watcher):
    """After a burst of every malformed case, the log holds no panic."""
    for case_id, version, auth, make, _ in CASES:
        c = _connect(broker, version, auth, "burst-" + case_id[:16])
        c.try_send(make())
        c.read_until_closed(6)
        c.close()
    watcher()
    log = broker.log_text()
    assert "panicked" not in log and "RUST_BACKTRACE" not in log, log[-3000:]
    assert firehose_bin().exists()
