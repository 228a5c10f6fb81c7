"""The gerrit source (guests/gerrit) end to end.

A small TCP server here plays the event stream (`gerrit stream-events` output
behind a forwarder): it sends the sample events of tests/data/gerrit/ plus a
broken line, closes the connection, and serves again when the source
reconnects. The broker runs `target/wasm/gerrit.wasm` granted only that
server's 127.0.0.1:port, and a paho subscriber asserts what arrives: each event
on gerrit/<project>/<type>, its payload the line byte for byte.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO, firehose_bin, free_ports, start_broker, wait_port
from helpers import QUIET, Paho, wait_log

pytestmark = pytest.mark.firehose_only

DATA = REPO / "tests" / "data" / "gerrit"

# The topic of each sample, written out rather than computed: the project is
# change.project, or refUpdate.project for ref-updated.
EXPECTED_TOPICS = {
    "change-abandoned.json": "gerrit/openstack-infra/germqtt/change-abandoned",
    "change-merged.json": "gerrit/openstack/nova/change-merged",
    "comment-added.json": "gerrit/openstack-infra/germqtt/comment-added",
    "patchset-created.json": "gerrit/openstack-infra/germqtt/patchset-created",
    "ref-updated.json": "gerrit/openstack-infra/project-config/ref-updated",
    "reviewer-added.json": "gerrit/openstack-infra/germqtt/reviewer-added",
}

BROKEN = b'{"type":"comment-added","change":{"project":"openstack/nova"'
# An event without a project, served on the second connection.
NO_PROJECT = b'{"type":"dropped-output","eventCreatedOn":1500000000}'


def sample_lines() -> dict[str, bytes]:
    """Each sample file's event line, without its newline."""
    lines = {}
    for name in EXPECTED_TOPICS:
        raw = (DATA / name).read_bytes()
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1, f"{name}: expected one line"
        lines[name] = raw[:-1]
    return lines


class StreamServer:
    """A TCP server on 127.0.0.1 that sends one script per accepted connection.

    A script is a list of byte strings sent in turn; `close` after it ends the
    connection, otherwise it is held open until `stop()`. Sending waits for
    `go` (set by the test once its subscriber is ready). Runs on a daemon
    thread; every wait is bounded.
    """

    def __init__(self, scripts: list[tuple[list[bytes], bool]]):
        self.scripts = list(scripts)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.go = threading.Event()
        self.accepted = 0
        self.served = 0
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            if not self.scripts:
                self.held.append(conn)
                continue
            chunks, close = self.scripts.pop(0)
            if not self.go.wait(30):
                self.errors.append("the test never said go")
                conn.close()
                continue
            try:
                for chunk in chunks:
                    conn.sendall(chunk)
                self.served += 1
            except OSError as e:
                self.errors.append(f"sending: {e}")
            if close:
                conn.close()
            else:
                self.held.append(conn)

    def wait_accepted(self, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.accepted < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"the source made {self.accepted} connection(s), expected {n}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.sock.close()
        for conn in self.held:
            conn.close()
        self.thread.join(5)


def pieces(data: bytes, size: int) -> list[bytes]:
    """`data` cut into `size`-byte pieces: events split across reads."""
    return [data[i:i + size] for i in range(0, len(data), size)]


def gerrit_source(port: int, granted_port: int | None = None) -> dict:
    granted = port if granted_port is None else granted_port
    return {"name": "gerrit", "component": "gerrit", "prefix": "gerrit",
            "config": {"stream": f"127.0.0.1:{port}", "reconnect_min_ms": 200,
                       "reconnect_max_secs": 2, "connect_timeout_secs": 5},
            "grants": {"tcp": [f"127.0.0.1:{granted}"]}}


@pytest.fixture
def make_broker(request, tmp_path, password_hashes):
    """Starts a broker with the given [[source]] entries; stopped by PID at
    teardown, its log printed when the test failed."""
    started = []

    def make(sources, limits=None):
        b = start_broker(tmp_path, password_hashes, limits=limits, sources=sources)
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


@pytest.fixture
def subscriber_factory():
    """Paho subscribers (QoS 1, MQTT 5) on a broker; closed at teardown."""
    made = []

    def make(broker, topic="gerrit/#"):
        sub = Paho(broker)
        sub.connect()
        sub.subscribe(topic, qos=1)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


def test_events_arrive_byte_for_byte_and_the_source_reconnects(make_broker, subscriber_factory):
    lines = sample_lines()
    events = list(lines.values())
    # After the first event: a CRLF line end, a blank line, then a broken
    # line (line 3 of the stream).
    first = (events[0] + b"\r\n\n" + BROKEN + b"\n"
             + b"".join(line + b"\n" for line in events[1:]))
    second_event = lines["comment-added.json"].replace(b'"Patch Set 2:', b'"Patch Set 3:')
    assert second_event != lines["comment-added.json"]
    server = StreamServer([
        (pieces(first, 97), True),                      # then the server closes
        ([NO_PROJECT + b"\n", second_event + b"\n"], False),
    ])
    try:
        broker = make_broker([gerrit_source(server.port)])
        sub = subscriber_factory(broker)
        server.wait_accepted(1)
        server.go.set()

        got = sub.wait_messages(len(lines), timeout=20)
        by_topic = {m.topic: m for m in got}
        assert len(by_topic) == len(lines), [m.topic for m in got]
        for name, line in lines.items():
            m = by_topic.get(EXPECTED_TOPICS[name])
            assert m is not None, f"{name}: nothing on {EXPECTED_TOPICS[name]}; got {sorted(by_topic)}"
            assert m.payload == line, f"{name}: payload differs from the sample line"
            assert m.qos == 1 and not m.retain
            assert m.properties.ContentType == "application/json"
        # In stream order.
        assert [m.topic for m in got] == [EXPECTED_TOPICS[n] for n in lines]

        # The broken line is logged with its line number and skipped.
        wait_log(broker, r"event stream line 3: not valid JSON")
        # The server closed: the source says so and connects again.
        wait_log(broker, r"the event stream 127\.0\.0\.1:\d+ was closed after 6 events")
        wait_log(broker, r"reconnecting to 127\.0\.0\.1:\d+ in 0\.2 s")
        server.wait_accepted(2)
        m = sub.wait_for("gerrit/dropped-output", timeout=15)
        assert m.payload == NO_PROJECT
        m = sub.wait_for("gerrit/openstack-infra/germqtt/comment-added", timeout=15)
        assert m.payload == second_event
        assert sub.drain(QUIET) == [], "nothing else may arrive"
        assert server.accepted == 2 and not server.errors, server.errors
        assert "source run ended" not in broker.log_text(), "the source must not fail"
    finally:
        server.stop()


def test_a_stream_outside_the_grants_is_refused_and_retried(make_broker, subscriber_factory):
    server = StreamServer([([b'{"type":"never-sent"}\n'], False)])
    try:
        # Granted a different port than the one it is told to use.
        other = socket.socket()
        other.bind(("127.0.0.1", 0))
        granted = other.getsockname()[1]
        other.close()
        broker = make_broker([gerrit_source(server.port, granted_port=granted)])
        sub = subscriber_factory(broker)
        server.go.set()
        wait_log(broker, r"connect 127\.0\.0\.1:\d+: connecting: access-denied \(Access denied\.\) component")
        wait_log(broker, r"connect to 127\.0\.0\.1:\d+ refused: no tcp grant")
        # It keeps trying, with growing delays, and never reaches the server.
        wait_log(broker, r"reconnecting to 127\.0\.0\.1:\d+ in 0\.4 s")
        assert server.accepted == 0
        assert sub.drain(QUIET) == []
    finally:
        server.stop()


def test_an_event_the_broker_refuses_is_logged_and_skipped(make_broker, subscriber_factory):
    lines = sample_lines()
    big, small = lines["comment-added.json"], lines["ref-updated.json"]
    assert len(big) > 1500 > len(small) + 200
    server = StreamServer([([big + b"\n", small + b"\n"], False)])
    try:
        broker = make_broker([gerrit_source(server.port)], limits={"max_packet_size": 1500})
        sub = subscriber_factory(broker)
        server.go.set()
        m = sub.wait_for(EXPECTED_TOPICS["ref-updated.json"], timeout=20)
        assert m.payload == small
        wait_log(broker, r"event comment-added for gerrit/openstack-infra/germqtt/comment-added not "
                         rf"published, skipped: {len(big)} bytes, larger than the broker's limit of \d+")
        assert sub.drain(QUIET) == []
        assert server.accepted == 1, "a refused event does not end the connection"
    finally:
        server.stop()


WEBHOOK_SECRET = "gerrit-webhook-secret-0123456789"


def test_webhook_posts_are_published_like_stream_events(tmp_path, password_hashes):
    """Gerrit's webhooks plugin POSTs each event's JSON to /hooks/<name>
    (the secret in the query string: the plugin sends no custom headers).
    A source with no `stream` takes webhooks only; each event arrives on its
    topic byte for byte, over http and https; a bad body gets 400 and
    publishes nothing; a wrong secret gets 403."""
    import ssl
    import urllib.error
    import urllib.request

    broker = start_broker(tmp_path, password_hashes, sources=[{
        "name": "gerrit", "component": "gerrit", "prefix": "gerrit",
        "webhook": {"secret": WEBHOOK_SECRET}}])
    try:
        wait_log(broker, "webhook mounted", timeout=30)
        sub = Paho(broker)
        sub.connect()
        sub.subscribe("gerrit/#", qos=1)

        def post(body: bytes, scheme: str = "http", secret: str = WEBHOOK_SECRET):
            port = broker.ws_port if scheme == "http" else broker.wss_port
            req = urllib.request.Request(f"{scheme}://127.0.0.1:{port}/hooks/gerrit?secret={secret}",
                                         data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            context = ssl.create_default_context(cafile=str(broker.ca)) if scheme == "https" else None
            try:
                with urllib.request.urlopen(req, timeout=15, context=context) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        lines = sample_lines()
        for i, (name, line) in enumerate(lines.items()):
            scheme = "https" if i % 2 else "http"
            assert post(line + b"\n", scheme) == 202, name
            m = sub.wait_for(EXPECTED_TOPICS[name], timeout=15)
            assert m.payload == line, f"{name}: not byte for byte"
        assert post(BROKEN) == 400
        assert post(b'{"type":"comment-added"}', secret="wrong-secret-0123456789") == 403
        # Nothing from the refused posts: the next good one is the next to arrive.
        first = next(iter(lines))
        assert post(lines[first]) == 202
        m = sub.wait_message(timeout=15)
        assert (m.topic, m.payload) == (EXPECTED_TOPICS[first], lines[first])
        assert sub.drain(QUIET) == []
        assert WEBHOOK_SECRET not in broker.log_text(), "the secret is never logged"
        sub.close()
    finally:
        broker.stop()


class ExampleBroker:
    """`firehose serve` on a copy of an example config whose 127.0.0.1 ports
    are replaced by the test's; stopped by PID."""

    def __init__(self, tmp_path: Path, example: str, replace: dict[str, str],
                 env: dict[str, str] | None = None):
        text = (REPO / "examples" / example).read_text()
        self.port = free_ports(1)[0]
        replace = {"127.0.0.1:1883": f"127.0.0.1:{self.port}", **replace}
        for old, new in replace.items():
            assert old in text, f"{example} no longer contains {old!r}"
            text = text.replace(old, new)
        self.config = tmp_path / example
        self.config.write_text(text)
        self.log_path = tmp_path / "example-broker.log"
        self.host = "127.0.0.1"
        self.ca = None
        env = {**os.environ, "RUST_LOG": "info", "NO_COLOR": "1", **(env or {})}
        check = subprocess.run([str(firehose_bin()), "check-config", str(self.config)],
                               capture_output=True, text=True, timeout=60, env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([str(firehose_bin()), "serve", "--config", str(self.config)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env)
        try:
            wait_port(self.port, time.monotonic() + 20, self.proc)
        except Exception:
            self.stop()
            raise

    def port_of(self, transport: str) -> int:
        assert transport == "tcp"
        return self.port

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def test_the_example_config_runs_the_source(tmp_path):
    """examples/gerrit.toml, with its ports pointed at this test's server and
    its component path made absolute, serves gerrit events."""
    line = sample_lines()["ref-updated.json"]
    server = StreamServer([([line + b"\n"], False)])
    broker = None
    try:
        broker = ExampleBroker(tmp_path, "gerrit.toml", {
            "127.0.0.1:29419": f"127.0.0.1:{server.port}",
            '"../target/wasm/gerrit.wasm"': f"'{REPO / 'target' / 'wasm' / 'gerrit.wasm'}'",
        })
        sub = Paho(SimpleNamespace(host=broker.host, port=broker.port_of, ca=None))
        try:
            sub.connect()
            sub.subscribe("gerrit/#", qos=1)
            server.go.set()
            m = sub.wait_for(EXPECTED_TOPICS["ref-updated.json"], timeout=20)
            assert m.payload == line
        finally:
            sub.close()
    except BaseException:
        if broker is not None:
            sys.stderr.write(f"--- example broker log ---\n{broker.log_text()[-10000:]}\n")
        raise
    finally:
        if broker is not None:
            broker.stop()
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
