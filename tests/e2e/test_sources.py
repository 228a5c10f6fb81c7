"""Sources (`[[source]]`): sandboxed publisher components run by the broker.

The probe (policies/testing/source-probe) reports what it saw of its sandbox
as retained messages on `probe/report/<check>`, so these tests assert on the
guest's own view; the host's side shows in the broker log. Every server the
probe talks to runs here, on 127.0.0.1.
"""

from __future__ import annotations

import queue
import signal
import socket
import sys
import threading
import time
from datetime import datetime

import pytest

from conftest import firehose_config, start_broker
from helpers import MosqSub, QUIET, log_lines, log_text, wait_log

pytestmark = pytest.mark.firehose_only



class EchoServer:
    """A TCP server on 127.0.0.1 that answers each line with `echo: <line>`."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\n" not in data:
                        chunk = conn.recv(1024)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(b"echo: " + data.split(b"\n")[0] + b"\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(name="probe", prefix="probe", **config) -> dict:
    grants = config.pop("grants", {})
    return {"name": name, "component": "source-probe", "prefix": prefix,
            "config": {"prefix": prefix + "/", **config}, "grants": grants}


def timestamp(line: str) -> float:
    stamp = line.split()[0].rstrip("Z")
    return datetime.fromisoformat(stamp[:26]).timestamp()


@pytest.fixture
def make_broker(request, tmp_path, password_hashes):
    """Starts a broker with the given [[source]] entries; stopped by PID at teardown
    (its log is printed when the test failed)."""
    started = []

    def make(sources):
        b = start_broker(tmp_path, password_hashes, sources=sources)
        started.append(b)
        return b

    yield make
    for b in started:
        crashed = not b.alive()
        b.stop()
        rep = getattr(request.node, "rep_call", None)
        if crashed or rep is None or rep.failed:
            sys.stderr.write(f"\n--- broker log ({b.log_path}), exit={b.proc.returncode} ---\n")
            sys.stderr.write(b.log_text()[-20000:] + "\n")


def subscribe(broker, *topics) -> MosqSub:
    args = ["-h", broker.host, "-p", str(broker.mqtt_port), "-V", "mqttv5", "-q", "1"]
    for t in topics:
        args += ["-t", t]
    sub = MosqSub(args)
    sub.wait_subscribed()
    return sub


def reports(sub: MosqSub, timeout: float = 20.0) -> dict[str, str]:
    got = {}
    deadline = time.monotonic() + timeout
    while "done" not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the probe did not finish its report: {got}")
        topic, payload, _ = _next(sub, left)
        if topic.startswith("probe/report/"):
            got[topic.removeprefix("probe/report/")] = payload.decode()
    return got


def _next(sub: MosqSub, timeout: float):
    try:
        return sub.msgs.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"mosquitto_sub: nothing within {timeout}s:\n"
                             + "\n".join(sub.lines[-30:])) from None


def test_a_source_reaches_only_what_it_is_granted_and_sees_nothing_else(make_broker):
    echo = EchoServer()
    denied = closed_port()
    try:
        b = make_broker([probe(granted=f"127.0.0.1:{echo.port}", denied=f"127.0.0.1:{denied}",
                               denied_name="not-granted.example.org:80", interval_ms=200,
                               grants={"tcp": [f"127.0.0.1:{echo.port}"]})])
        sub = subscribe(b, "probe/#")
        try:
            r = reports(sub)
            # The granted connect works, inside the guest, end to end.
            assert r["connect-granted"] == "ok: echo: hello from the probe"
            assert echo.connections == 1
            # A connect that is not granted fails inside the guest with a clear error ...
            assert r["connect-denied"].startswith(f"err: connect 127.0.0.1:{denied}: access-denied"), r
            assert r["lookup-denied"].startswith("err: resolve not-granted.example.org: access-denied"), r
            # ... and the host logs it with the source's name and the address.
            refused = wait_log(b, rf"connect to 127\.0\.0\.1:{denied} refused")
            assert 'source="probe"' in refused[0] or "source=probe" in refused[0], refused
            assert f'addr="127.0.0.1:{denied}"' in refused[0] or f"addr=127.0.0.1:{denied}" in refused[0]
            wait_log(b, r"name lookup of not-granted\.example\.org refused.*source=\"?probe")
            # No files, no environment, no arguments, an empty stdin.
            assert r["file"].startswith("err: /etc/passwd"), r
            assert r["dir"].startswith("err: ."), r
            assert r["env"] == "ok: 0 variables [], 0 arguments", r
            assert r["stdin"] == "ok: read 0 bytes", r
            # Publishing outside the prefix (or at the bare prefix) fails and is counted.
            assert r["outside-prefix"] == 'err: PublishError::OutsidePrefix("probe/")', r
            assert r["bare-prefix"] == 'err: PublishError::OutsidePrefix("probe/")', r
            assert r["invalid-topic"].startswith("err: PublishError::InvalidTopic("), r
            wait_log(b, r"publish refused: outside the source's prefix probe/.*topic=\"?elsewhere/probe")
            # publish-batch: a batch goes through whole; one refused in its middle
            # publishes what comes before the refusal and says how much.
            assert r["batch"] == "ok: published", r
            assert r["batch-refusal"] == ('err: published 1, then '
                                          'PublishError::OutsidePrefix("probe/")'), r
            assert r["batch-empty"] == "ok: published", r
            wait_log(b, r"publish refused: outside the source's prefix probe/.*topic=\"?elsewhere/batch")
            # Its heartbeats reach an ordinary MQTT subscriber; nothing arrived outside the prefix.
            sub.wait_for("probe/heartbeat")
            assert not [m for m in sub.history if not m[0].startswith("probe/")]
            batched = sorted(m[1].decode() for m in sub.history if m[0].startswith("probe/batch/"))
            assert batched == ["1", "2", "3", "4"], sub.history
        finally:
            sub.stop()
        # SIGTERM: the source is told to stop, returns, and the broker exits cleanly.
        b.proc.send_signal(signal.SIGTERM)
        assert b.proc.wait(timeout=15) == 0
        log = log_text(b)
        assert "asked to stop; returning" in log, "the guest saw shutting-down"
        stopped = log_lines(b, r"source stopped")
        assert stopped and "rejected=4" in stopped[0], stopped
        assert "did not return within the grace period" not in log
    finally:
        echo.close()


def test_a_source_built_against_bus_0_1_0_runs_on_this_broker(make_broker):
    """A minor version of the WIT contract keeps older sources working: the
    source-0-1-0 component, built against the frozen 0.1.0 WIT, loads and its
    messages reach an MQTT subscriber in order."""
    b = make_broker([{"name": "old", "component": "source-0-1-0", "prefix": "old",
                      "config": {"prefix": "old/", "count": "5"}, "grants": {}}])
    sub = subscribe(b, "old/compat/#")
    try:
        sub.wait_for("old/compat/done", timeout=20)
        got = [(m[0], m[1].decode()) for m in sub.history if m[0] != "old/compat/idle"]
        assert sorted(got) == sorted([(f"old/compat/{n}", str(n)) for n in range(1, 6)]
                                     + [("old/compat/done", "5")]), got
        sub.wait_for("old/compat/idle", timeout=10)
    finally:
        sub.stop()
    assert wait_log(b, r"source starting.*source=\"?old")
    assert not log_lines(b, r"source run ended.*source=\"?old")


def test_a_source_without_grants_cannot_open_a_socket_and_the_host_says_so(make_broker):
    echo = EchoServer()
    try:
        b = make_broker([probe(granted=f"127.0.0.1:{echo.port}")])
        sub = subscribe(b, "probe/report/#")
        try:
            r = reports(sub)
        finally:
            sub.stop()
        assert r["connect-granted"].startswith("err: create socket: access-denied"), r
        assert echo.connections == 0
        wait_log(b, r"TCP socket .* refused: this source has no tcp grant.*source=\"?probe")
    finally:
        echo.close()


def test_a_trapping_source_restarts_with_growing_backoff(make_broker):
    b = make_broker([probe(name="crashy", prefix="crashy", mode="trap")])
    sub = subscribe(b, "crashy/#")
    try:
        starts = wait_log(b, r"source starting.*source=\"?crashy", count=4, timeout=20)
        ended = log_lines(b, r"source run ended: source crashy: trapped")
        assert len(ended) >= 3, ended
        # 1 s, 2 s, 4 s between runs: backoff, not a hot loop.
        t = [timestamp(line) for line in starts[:4]]
        gaps = [b2 - a for a, b2 in zip(t, t[1:])]
        for gap, want in zip(gaps, (1, 2, 4)):
            assert want * 0.9 <= gap < want + 1.5, gaps
        assert "failures=3" in ended[2], ended[2]
        # Each run published before it trapped, and it all reached the subscriber.
        sub.drain(QUIET)
        started = [m for m in sub.history if m[0] == "crashy/report/started"]
        assert len(started) >= 3, started
    finally:
        sub.stop()
    assert b.alive(), "a trapping source never takes the broker down"


def test_sighup_adds_and_removes_sources_without_dropping_subscribers(make_broker):
    first = probe(name="first", prefix="first", interval_ms=100)
    b = make_broker([first])
    sub = subscribe(b, "#")
    try:
        sub.wait_for("first/heartbeat")
        b.sources = [probe(name="second", prefix="second", interval_ms=100)]
        b.config.write_text(firehose_config(b, b.hashes))
        b.proc.send_signal(signal.SIGHUP)
        sub.wait_for("second/heartbeat", timeout=20)
        wait_log(b, r"reload: source removed.*source=\"?first")
        wait_log(b, r"reload: source added.*source=\"?second")
        # The first source is gone: after a quiet period none of its heartbeats arrive.
        time.sleep(0.5)
        later = sub.drain(QUIET)
        assert not [m for m in later if m[0].startswith("first/")], later[:5]
        assert [m for m in later if m[0] == "second/heartbeat"]
        assert sub.p.poll() is None, "the subscriber's connection survived the reload"
        # A bad entry on reload is refused and the running source stays.
        b.sources = [probe(name="second", prefix="second", interval_ms=100),
                     {"name": "broken", "component": "public-read", "prefix": "broken"}]
        b.config.write_text(firehose_config(b, b.hashes))
        b.proc.send_signal(signal.SIGHUP)
        wait_log(b, r"reload: source not loaded; it is not started.*source=\"?broken")
        sub.drain(0.2)
        sub.wait_for("second/heartbeat")
    finally:
        sub.stop()


def test_the_embedded_default_runs_a_demo_source_that_delivers_within_seconds(tmp_path):
    """`firehose serve` with no config: events under demo/ without any outside service."""
    from test_cli_profiles import DEFAULT_PORTS, Served, port_busy

    busy = sorted(p for p in DEFAULT_PORTS if port_busy(p))
    if busy:
        pytest.skip(f"default ports in use by another process: {busy}")
    s = Served([], tmp_path, sorted(DEFAULT_PORTS))
    try:
        sub = MosqSub(["-h", "127.0.0.1", "-p", "1883", "-t", "#"])
        try:
            sub.wait_subscribed()
            topic, payload, _ = sub.wait_for("demo/clock/tick", timeout=10)
            assert b'"source":"demo"' in payload, payload
            gerrit = sub.wait_for("demo/gerrit/firehose/demo/comment-added", timeout=15)
            assert b'"type":"comment-added"' in gerrit[1]
        finally:
            sub.stop()
        assert "source loaded" in s.log_text() and "demo-source.wasm" in s.log_text()
    finally:
        s.stop()


def test_a_sources_batch_goes_through_the_transform_chain_of_its_topics(tmp_path, password_hashes):
    """publish-batch: messages of a batch whose topic has a chain reach
    subscribers only as the chain made them; the rest of the batch and
    the other messages as published."""
    chain = {"name": "mirror-batches", "topics": ["probe/batch/#"],
             "components": [{"component": "topic-rewrite", "config": {"prefix": "mirror/"}}]}
    b = start_broker(tmp_path, password_hashes, transforms=[chain], sources=[probe()])
    try:
        sub = subscribe(b, "mirror/#", "probe/#")
        try:
            r = reports(sub)
            assert r["batch"] == "ok: published", r
            sub.wait_for("probe/heartbeat")
            mirrored = sorted((m[0], m[1].decode()) for m in sub.history if m[0].startswith("mirror/"))
            assert mirrored == [(f"mirror/probe/batch/{n}", str(n)) for n in range(1, 5)], sub.history
            assert not [m for m in sub.history if m[0].startswith("probe/batch/")], \
                "batch messages reach subscribers only as rewritten"
        finally:
            sub.stop()
    finally:
        b.stop()


def test_a_sources_messages_go_through_the_transform_chain_of_their_topic(tmp_path, password_hashes):
    """A source's publish on a topic with a chain waits for the chain, like
    a client's; one on a topic without a chain is routed at once."""
    chain = {"name": "mirror-ticks", "topics": ["demo/clock/#"],
             "components": [{"component": "topic-rewrite", "config": {"prefix": "mirror/"}}]}
    source = {"name": "demo", "component": "demo-source", "prefix": "demo",
              "config": {"interval_ms": 200}}
    b = start_broker(tmp_path, password_hashes, transforms=[chain], sources=[source])
    try:
        sub = MosqSub(["-h", b.host, "-p", str(b.mqtt_port), "-t", "mirror/#", "-t", "demo/#"])
        try:
            sub.wait_subscribed()
            topic, payload, _ = sub.wait_for("mirror/demo/clock/tick", timeout=10)
            assert b'"source":"demo"' in payload, payload
            sub.wait_for("demo/gerrit/firehose/demo/comment-added", timeout=15)
            ticks = [m for m in sub.drain(0.5) if m[0] == "demo/clock/tick"]
            assert [m for m in sub.history if m[0] == "demo/clock/tick"] == [] and ticks == [], \
                "ticks reach subscribers only as rewritten"
        finally:
            sub.stop()
    finally:
        b.stop()
