"""Webhook sources: `/hooks/<name>` on the websocket listeners' HTTP side.

The broker runs the purpose-built webhook probe (policies/testing/webhook-probe,
a component that exports only `wasi:http/incoming-handler`) as source `hook`
with prefix `hooks` and a shared secret. The probe publishes each POSTed JSON
body on `hooks/events` and answers 202; `/trap` panics. A mosquitto_sub
subscriber checks what reaches the bus, byte for byte. Everything runs on
127.0.0.1; https requests verify the broker's generated CA.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import start_broker
from helpers import QUIET, MosqSub, log_text, wait_log

pytestmark = pytest.mark.firehose_only

SECRET = "e2e-webhook-secret_0123456789"
TOPIC = "hooks/events"


@pytest.fixture(scope="module")
def hooked(request, tmp_path_factory, password_hashes):
    """A broker with the webhook probe as source `hook` (secret required) and
    as `open-hook` (no secret), and a subscriber to `hooks/#`."""
    sources = [
        {"name": "hook", "component": "webhook-probe", "prefix": "hooks",
         "config": {"prefix": "hooks/"}, "webhook": {"secret": SECRET, "deadline_ms": 3000}},
        {"name": "open-hook", "component": "webhook-probe", "prefix": "open",
         "config": {"prefix": "open/"}},
    ]
    broker = start_broker(tmp_path_factory.mktemp("webhooks"), password_hashes, sources=sources)
    # The listeners open before the sources are loaded: wait until both are mounted.
    wait_log(broker, "webhook mounted", count=2, timeout=30)
    sub = MosqSub(["-h", broker.host, "-p", str(broker.mqtt_port), "-V", "mqttv5", "-q", "1",
                   "-t", "hooks/#", "-t", "open/#"], timeout=600)
    sub.wait_subscribed()
    yield broker, sub
    sub.stop()
    crashed = not broker.alive()
    broker.stop()
    if crashed:
        sys.stderr.write(f"\n--- broker log ({broker.log_path}) ---\n{broker.log_text()[-20000:]}\n")
    assert not crashed, "the broker died during the webhook tests"


def url(broker, scheme: str, path: str) -> str:
    port = broker.ws_port if scheme == "http" else broker.wss_port
    return f"{scheme}://127.0.0.1:{port}{path}"


def request(broker, path: str, body: bytes | None = None, headers: dict | None = None,
            scheme: str = "http", method: str = "POST") -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url(broker, scheme, path), data=body, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    context = ssl.create_default_context(cafile=str(broker.ca)) if scheme == "https" else None
    try:
        with urllib.request.urlopen(req, timeout=15, context=context) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def raw(broker, data: bytes) -> bytes:
    """Sends `data` on the ws port and reads the whole answer."""
    with socket.create_connection(("127.0.0.1", broker.ws_port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def bearer(secret: str = SECRET) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def expect_nothing_more(sub: MosqSub):
    extra = sub.drain(QUIET)
    assert extra == [], f"nothing else may arrive, got {extra}"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_posted_body_reaches_subscribers_byte_for_byte(hooked, scheme):
    broker, sub = hooked
    body = ('{"type":"comment-added","change":{"project":"openstack/nova"},'
            f'"comment":"caf\u00e9 \u2603 via {scheme}","tabs":"\\t"}}').encode()
    status, answer, _ = request(broker, "/hooks/hook", body, bearer(), scheme=scheme)
    assert status == 202, answer
    assert answer == f"published {len(body)} bytes\n".encode()
    topic, payload, retained = sub.wait_for(TOPIC, timeout=10)
    assert payload == body and not retained
    expect_nothing_more(sub)


def test_each_way_of_presenting_the_secret_works(hooked):
    broker, sub = hooked
    for n, (path, headers) in enumerate([
        ("/hooks/hook", {"X-Firehose-Secret": SECRET}),
        (f"/hooks/hook?secret={SECRET}", {}),  # what Gerrit's webhooks plugin can do
        ("/hooks/hook/", bearer()),
    ]):
        body = f'{{"n": {n}}}'.encode()
        status, answer, _ = request(broker, path, body, headers)
        assert status == 202, (path, answer)
        assert sub.wait_for(TOPIC)[1] == body
    assert SECRET not in log_text(broker), "the secret must never be logged"


def test_a_missing_or_wrong_secret_is_refused_and_nothing_is_published(hooked):
    broker, sub = hooked
    # A control that does arrive, so that "nothing" below means something.
    status, _, _ = request(broker, "/hooks/hook", b'{"control": true}', bearer())
    assert status == 202
    assert sub.wait_for(TOPIC)[1] == b'{"control": true}'

    status, answer, headers = request(broker, "/hooks/hook", b'{"sneaky": 1}')
    assert status == 401, answer
    assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    for path, headers in [
        ("/hooks/hook", bearer("wrong-secret-0123456789")),
        ("/hooks/hook", bearer(SECRET + "x")),
        ("/hooks/hook", bearer(SECRET[:-1])),
        ("/hooks/hook", {"X-Firehose-Secret": "wrong-secret-0123456789"}),
        ("/hooks/hook?secret=wrong-secret-0123456789", {}),
    ]:
        status, answer, _ = request(broker, path, b'{"sneaky": 2}', headers)
        assert status == 403, (path, answer)
    expect_nothing_more(sub)
    refused = [l for l in log_text(broker).splitlines() if "webhook request refused" in l]
    assert len(refused) >= 6 and all("source=hook" in l for l in refused), refused
    assert SECRET not in log_text(broker)


def test_a_hook_without_a_secret_is_open(hooked):
    broker, sub = hooked
    status, answer, _ = request(broker, "/hooks/open-hook", b'{"open": true}')
    assert status == 202, answer
    assert sub.wait_for("open/events")[1] == b'{"open": true}'
    assert "webhook mounted without a secret" in log_text(broker)


def test_unknown_hooks_are_404(hooked):
    broker, sub = hooked
    for path in ["/hooks/nope", "/hooks/", "/hooks", "/hooks/hookx"]:
        status, answer, _ = request(broker, path, b"{}", bearer())
        assert status == 404, (path, answer)
    expect_nothing_more(sub)


def test_oversized_and_chunked_bodies_are_refused_before_the_component(hooked):
    broker, sub = hooked
    head = (f"POST /hooks/hook HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SECRET}\r\n"
            "Content-Type: application/json\r\n")
    answer = raw(broker, (head + f"Content-Length: {2 * 1024 * 1024}\r\n\r\n").encode() + b"{")
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    answer = raw(broker, (head + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n").encode())
    assert answer.startswith(b"HTTP/1.1 411 "), answer[:200]
    # Exactly 1 MiB passes the transport and reaches the component, whose
    # publish then meets the same size check as `run`'s: topic + payload over
    # the broker's 1 MiB packet limit is `too-large`, and nothing is published.
    at_limit = b'"' + b"a" * (1024 * 1024 - 2) + b'"'
    status, answer, _ = request(broker, "/hooks/hook", at_limit, bearer())
    assert status == 500, answer
    assert b"TooLarge(1048576)" in answer, answer
    expect_nothing_more(sub)


def test_a_body_the_component_refuses_is_not_published(hooked):
    broker, sub = hooked
    status, answer, _ = request(broker, "/hooks/hook", b"this is not JSON", bearer())
    assert status == 400, answer
    assert b"not JSON" in answer
    expect_nothing_more(sub)


def test_a_trapping_handler_gets_500_and_the_broker_keeps_serving(hooked):
    broker, sub = hooked
    started = time.monotonic()
    status, answer, _ = request(broker, "/hooks/hook/trap", b"{}", bearer())
    assert status == 500, answer
    assert b"failed" in answer and b"trap" not in answer.lower(), \
        "the client gets a short reason; the details are in the log"
    assert time.monotonic() - started < 10
    assert any("webhook request failed" in l and "source=hook" in l and "trapped" in l
               for l in log_text(broker).splitlines())
    status, _, _ = request(broker, "/hooks/hook", b'{"after": "trap"}', bearer())
    assert status == 202
    assert sub.wait_for(TOPIC)[1] == b'{"after": "trap"}'
    assert broker.alive()


def test_outgoing_http_from_a_handler_is_refused_and_logged(hooked):
    broker, _ = hooked
    status, answer, _ = request(broker, "/hooks/hook/outgoing", b"{}", bearer())
    assert status == 200, answer
    assert answer.startswith(b"err: ") and b"HttpRequestDenied" in answer, answer
    lines = [l for l in log_text(broker).splitlines() if "outgoing HTTP request" in l]
    assert lines and 'source="hook"' in lines[-1] and "refused" in lines[-1], lines


def test_the_viewer_is_still_served_at_the_root(hooked):
    broker, _ = hooked
    for scheme in ("http", "https"):
        status, page, headers = request(broker, "/", None, scheme=scheme, method="GET")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert b"mqtt.min.js" in page


def test_a_reload_mounts_and_unmounts_webhooks(tmp_path, password_hashes):
    broker = start_broker(tmp_path, password_hashes, sources=[])
    try:
        status, _, _ = request(broker, "/hooks/late", b"{}", bearer())
        assert status == 404
        broker.sources = [{"name": "late", "component": "webhook-probe", "prefix": "late",
                           "config": {"prefix": "late/"}, "webhook": {"secret": SECRET}}]
        broker.rewrite_config()
        broker.sighup()
        wait_log(broker, "webhook mounted", timeout=20)
        sub = MosqSub(["-h", broker.host, "-p", str(broker.mqtt_port), "-q", "1", "-t", "late/#"])
        try:
            sub.wait_subscribed()
            status, answer, _ = request(broker, "/hooks/late", b'{"late": 1}', bearer())
            assert status == 202, answer
            assert sub.wait_for("late/events")[1] == b'{"late": 1}'
        finally:
            sub.stop()

        broker.sources = []
        broker.rewrite_config()
        broker.sighup()
        wait_log(broker, "webhook unmounted", timeout=20)
        status, _, _ = request(broker, "/hooks/late", b"{}", bearer())
        assert status == 404
        assert broker.alive()
    finally:
        broker.stop()
