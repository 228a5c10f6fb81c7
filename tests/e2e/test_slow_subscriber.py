"""One stalled subscriber must not slow delivery to the others."""

import socket
import threading
import time

import pytest

import mqtt_raw as raw
from helpers import uniq

N = 20_000
DEADLINE = 30.0
# The publisher never runs more than WINDOW messages ahead of what the healthy
# subscriber has received, so that the healthy one is never itself the slow
# consumer (QoS 0 beyond max_queued_qos0 may legitimately be dropped).
WINDOW = 500


class Counter:
    def __init__(self, size):
        self.size = size
        self.n = 0
        self.bad = 0
        self.cv = threading.Condition()

    def on_message(self, client, userdata, msg):
        with self.cv:
            if len(msg.payload) != self.size:
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


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _drain_count(s: raw.RawClient, idle: float = 1.0) -> int:
    """Read what a stalled subscriber was sent, until `idle` seconds pass with nothing."""
    n = 0
    try:
        while True:
            t, _, _ = s.recv_packet(idle)
            n += t == raw.PUBLISH
    except (TimeoutError, raw.Closed):
        return n


# 100-byte payloads as the brief; 1000-byte ones carry 20 MB, more than the kernel
# socket buffers (tcp_wmem max 4 MB) can hide, so the broker's own queue must overflow.
@pytest.mark.parametrize("stalled_count,payload_size", [(1, 100), (5, 100), (2, 1000)],
                         ids=["1-stalled-100B", "5-stalled-100B", "2-stalled-1000B"])
def test_stalled_subscriber_does_not_slow_a_normal_subscriber(broker, clients, stalled_count, payload_size):
    base = uniq()
    stalled = []
    for i in range(stalled_count):
        s = raw.RawClient(broker.host, broker.mqtt_port, rcvbuf=4096)
        assert s.mqtt_connect(version=4, client_id=f"stalled-{i}-{base[-6:]}") == 0
        assert s.mqtt_subscribe([("#", 0)], version=4) == [0]
        stalled.append(s)
        # From here on, it never reads again (until the end of the test).

    normal = clients.new()
    counter = Counter(payload_size)
    normal.c.on_message = counter.on_message
    normal.connect()
    assert normal.subscribe(base + "/#", 0) == [0]

    pub = clients.publisher()
    payload = b"p" * payload_size
    rss_before = _rss_kb(broker.proc.pid)
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
    rss_growth = _rss_kb(broker.proc.pid) - rss_before

    # The stalled sockets really are stuck: their receive buffers hold unread data.
    for s in stalled:
        s.sock.setblocking(False)
        try:
            pending = s.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            pending = b""
        assert pending, "the stalled subscriber was not sent anything: the test proved nothing"
        s.sock.setblocking(True)
    # The broker is still serving everybody else.
    probe = clients.anonymous()
    probe.subscribe(base + "/after", 1)
    pub.publish(base + "/after", b"after", qos=1)
    assert probe.wait_for(base + "/after", timeout=5).payload == b"after"

    if payload_size >= 1000:
        # 20 MB cannot all have been buffered for a reader that never read: QoS 0 to
        # it must have been dropped (bounded queue), not kept in the broker's memory.
        got = [_drain_count(s) for s in stalled]
        assert all(g < N for g in got), f"stalled subscribers were sent {got} of {N}: nothing dropped"
        assert rss_growth < 128 * 1024, f"broker RSS grew {rss_growth} kB while subscribers stalled"
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
    n, batch = 3000, 100  # more than inflight + max_queued_messages (32 + 1000) of the stalled one
    got = []
    deadline = time.monotonic() + 30
    for start in range(0, n, batch):
        # Paced so the healthy subscriber's own queue never overflows.
        for i in range(start, start + batch):
            pub.publish_nowait(base + "/q1", f"{i:06d}".encode(), qos=1)
        got += normal.wait_messages(batch, timeout=max(0.1, deadline - time.monotonic()))
    assert [m.payload for m in got] == [f"{i:06d}".encode() for i in range(n)]
    assert pub.c.is_connected() and normal.c.is_connected()
    s.close()
