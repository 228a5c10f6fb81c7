"""One stalled subscriber must not slow delivery to the others."""

import socket
import threading
import time

import pytest

import mqtt_raw as raw
from helpers import uniq

N = 20_000
PAYLOAD_SIZE = 100
DEADLINE = 30.0
# The publisher never runs more than WINDOW messages ahead of what the healthy
# subscriber has received, so that the healthy one is never itself the slow
# consumer (QoS 0 beyond max_queued_qos0 may legitimately be dropped).
WINDOW = 500


class Counter:
    def __init__(self):
        self.n = 0
        self.bad = 0
        self.cv = threading.Condition()

    def on_message(self, client, userdata, msg):
        with self.cv:
            if len(msg.payload) != PAYLOAD_SIZE:
                self.bad += 1
            self.n += 1
            self.cv.notify_all()

    def wait_at_least(self, n, deadline):
        with self.cv:
            while self.n < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(min(left, 0.5))
            return True


@pytest.mark.parametrize("stalled_count", [1, 5])
def test_stalled_subscriber_does_not_slow_a_normal_subscriber(broker, clients, stalled_count):
    base = uniq()
    stalled = []
    for i in range(stalled_count):
        s = raw.RawClient(broker.host, broker.mqtt_port, rcvbuf=4096)
        assert s.mqtt_connect(version=4, client_id=f"stalled-{i}-{base[-6:]}") == 0
        assert s.mqtt_subscribe([("#", 0)], version=4) == [0]
        stalled.append(s)
        # From here on, it never reads again.

    normal = clients.new()
    counter = Counter()
    normal.c.on_message = counter.on_message
    normal.connect()
    assert normal.subscribe(base + "/#", 0) == [0]

    pub = clients.publisher()
    payload = b"p" * PAYLOAD_SIZE
    start = time.monotonic()
    deadline = start + DEADLINE
    for i in range(N):
        if i % 100 == 0 and i - WINDOW > 0:
            assert counter.wait_at_least(i - WINDOW, deadline), \
                f"normal subscriber stuck at {counter.n} of {i} sent after {time.monotonic() - start:.1f}s"
        pub.publish_nowait(base + "/load", payload, qos=0)
    ok = counter.wait_at_least(N, deadline)
    elapsed = time.monotonic() - start
    assert ok, f"normal subscriber got {counter.n} of {N} in {elapsed:.1f}s"
    assert counter.bad == 0
    assert counter.n == N, f"duplicates: {counter.n}"

    # The stalled sockets really are stuck: their receive buffers hold unread data.
    for s in stalled:
        s.sock.setblocking(False)
        try:
            pending = s.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            pending = b""
        assert pending, "the stalled subscriber was not sent anything: the test proved nothing"
    # The broker is still serving everybody else.
    probe = clients.anonymous()
    probe.subscribe(base + "/after", 1)
    pub.publish(base + "/after", b"after", qos=1)
    assert probe.wait_for(base + "/after", timeout=5).payload == b"after"
    for s in stalled:
        s.close()


def test_stalled_qos1_subscriber_does_not_block_qos1_delivery(broker, clients):
    """QoS 1 to a subscriber that never acknowledges: its inflight window fills, others go on."""
    base = uniq()
    s = raw.RawClient(broker.host, broker.mqtt_port, rcvbuf=4096)
    assert s.mqtt_connect(version=5, client_id="stalled-q1-" + base[-6:]) == 0
    assert s.mqtt_subscribe([(base + "/#", 1)]) == [1]
    normal = clients.anonymous()
    normal.subscribe(base + "/#", 1)
    pub = clients.publisher()
    n = 2000
    for i in range(n):
        pub.publish_nowait(base + "/q1", f"{i:06d}".encode(), qos=1)
    got = normal.wait_messages(n, timeout=30)
    assert [m.payload for m in got] == [f"{i:06d}".encode() for i in range(n)]
    s.close()
