"""HTTP grants: a source's outgoing `wasi:http` requests reach a server only
when one of its `grants.http` URL patterns admits them, over http and over
https verified against the CA named by `grants.http_ca`. Everything else
fails inside the guest (`HttpRequestDenied`), is logged with the source's
name, and never reaches the server.

The source is the webhook probe: `/hooks/<name>/outgoing?to=<url>` makes it
send a GET to `<url>` and answer with what came back. The servers are
Python's http.server on 127.0.0.1, one plain and one with TLS."""

import http.server
import os
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import _make_test_ca, firehose_bin, start_broker, wasm_component
from helpers import log_lines, wait_log

pytestmark = pytest.mark.firehose_only

SECRET_ENV = "FIREHOSE_E2E_HOOK_SECRET"
SECRET = "from-the-environment_0123456789"


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET with `hello <path>` and records (path, Host)."""

    seen: list = []

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Host")))
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(tls_dir=None):
    """A recording server on a free 127.0.0.1 port (TLS with tls_dir's
    server.pem/server.key); returns (server, port, seen)."""
    handler = type("Handler", (Recorder,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls_dir is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_dir / "server.pem", tls_dir / "server.key")
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1], handler.seen


@pytest.fixture(scope="module")
def setup(tmp_path_factory, password_hashes):
    tmp = tmp_path_factory.mktemp("http-grants")
    trusted, foreign = tmp / "trusted", tmp / "foreign"
    _make_test_ca(trusted)
    _make_test_ca(foreign)
    plain, plain_port, plain_seen = serve()
    tls, tls_port, tls_seen = serve(trusted)
    odd, odd_port, odd_seen = serve(foreign)
    grants = [f"http://127.0.0.1:{plain_port}/allowed/*",
              f"https://127.0.0.1:{tls_port}/allowed/*",
              f"https://127.0.0.1:{odd_port}/allowed/*"]
    sources = [
        {"name": "fetcher", "component": "webhook-probe", "prefix": "fetched",
         "grants": {"http": grants, "http_ca": str(trusted / "ca.pem")},
         "webhook": {"secret": "${%s}" % SECRET_ENV}},
        {"name": "no-ca", "component": "webhook-probe", "prefix": "no-ca",
         "grants": {"http": grants}},
        {"name": "ungranted", "component": "webhook-probe", "prefix": "ungranted"},
    ]
    os.environ[SECRET_ENV] = SECRET
    try:
        broker = start_broker(tmp, password_hashes, sources=sources)
    finally:
        del os.environ[SECRET_ENV]
    wait_log(broker, "webhook mounted", count=3, timeout=30, alive=True)
    yield dict(broker=broker, plain_port=plain_port, plain_seen=plain_seen, tls_port=tls_port,
               tls_seen=tls_seen, odd_port=odd_port, odd_seen=odd_seen)
    crashed = not broker.alive()
    broker.stop()
    for server in (plain, tls, odd):
        server.shutdown()
    if crashed:
        sys.stderr.write(f"\n--- broker log ---\n{broker.log_text()[-20000:]}\n")
    assert not crashed, "the broker died during the HTTP grant tests"


def fetch(broker, source: str, target: str, secret: str | None = SECRET) -> str:
    """What source `source` answers when asked to GET `target`."""
    query = urllib.parse.urlencode({"to": target})
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    req = urllib.request.Request(
        f"http://127.0.0.1:{broker.ws_port}/hooks/{source}/outgoing?{query}",
        headers=headers, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return f"http {e.code}: {e.read().decode()}"


def test_a_granted_http_request_reaches_the_server(setup):
    broker, port = setup["broker"], setup["plain_port"]
    answer = fetch(broker, "fetcher", f"http://127.0.0.1:{port}/allowed/x?q=1")
    assert answer == "ok: 200 hello /allowed/x?q=1", answer
    assert ("/allowed/x?q=1", f"127.0.0.1:{port}") in setup["plain_seen"], "path, query and Host"


def test_a_granted_https_request_is_verified_against_the_granted_ca(setup):
    broker, port = setup["broker"], setup["tls_port"]
    answer = fetch(broker, "fetcher", f"https://127.0.0.1:{port}/allowed/tls")
    assert answer == "ok: 200 hello /allowed/tls", answer
    # Without http_ca the same server is not trusted: the Mozilla roots do
    # not know the test CA.
    before = len(setup["tls_seen"])
    answer = fetch(broker, "no-ca", f"https://127.0.0.1:{port}/allowed/tls", secret=None)
    assert answer.startswith("err: ") and "Tls" in answer, answer
    assert len(setup["tls_seen"]) == before


def test_a_server_with_a_certificate_from_another_ca_is_refused(setup):
    broker = setup["broker"]
    answer = fetch(broker, "fetcher", f"https://127.0.0.1:{setup['odd_port']}/allowed/x")
    assert answer.startswith("err: ") and "Tls" in answer, answer
    assert setup["odd_seen"] == []


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{plain}/secret",                 # path outside the pattern
    "http://127.0.0.1:{plain}/allowed/../secret",      # dot segments
    "http://127.0.0.1:{plain}/allowed/%2e%2e/secret",  # encoded dot segments
    "https://127.0.0.1:{plain}/allowed/x",             # scheme
    "http://localhost:{plain}/allowed/x",              # host by another name
    "http://127.0.0.1:{tls}/allowed/x",                # port granted for https only
])
def test_requests_no_grant_admits_are_denied_in_the_guest_and_logged(setup, target):
    broker = setup["broker"]
    target = target.format(plain=setup["plain_port"], tls=setup["tls_port"])
    seen_before = len(setup["plain_seen"]) + len(setup["tls_seen"])
    answer = fetch(broker, "fetcher", target + "?token=hush")
    assert answer.startswith("err: ") and "HttpRequestDenied" in answer, answer
    assert len(setup["plain_seen"]) + len(setup["tls_seen"]) == seen_before, "nothing was sent"
    lines = wait_log(broker, "outgoing HTTP request", timeout=5)
    assert any('source="fetcher"' in l for l in lines), lines
    assert not any("hush" in l for l in lines), "the query (may hold credentials) is not logged"


def test_a_source_without_http_grants_sends_nothing(setup):
    broker, port = setup["broker"], setup["plain_port"]
    before = len(setup["plain_seen"])
    answer = fetch(broker, "ungranted", f"http://127.0.0.1:{port}/allowed/x", secret=None)
    assert answer.startswith("err: ") and "HttpRequestDenied" in answer, answer
    assert len(setup["plain_seen"]) == before
    assert any('source="ungranted"' in l for l in log_lines(broker, "outgoing HTTP request"))


def test_the_webhook_secret_came_from_the_environment(setup):
    broker = setup["broker"]
    assert fetch(broker, "fetcher", "http://127.0.0.1:9/", secret="wrong-secret-0123456789") \
        .startswith("http 403"), "a wrong secret is refused"
    assert SECRET not in broker.log_text(), "the secret is never logged"


@pytest.mark.parametrize("contents, says", [
    ("not a certificate\n", "no CERTIFICATE"),
    (None, "No such file"),
])
def test_a_bad_http_ca_refuses_the_start_naming_the_key(tmp_path, contents, says):
    ca = tmp_path / "ca.pem"
    if contents is not None:
        ca.write_text(contents)
    config = tmp_path / "bad.toml"
    config.write_text(
        "data_dir = '%s'\n[[listener]]\nname = \"mqtt\"\nkind = \"mqtt\"\naddress = \"127.0.0.1:0\"\n"
        "[[source]]\nname = \"s\"\npath = '%s'\nprefix = \"s\"\n"
        "[source.grants]\nhttp = [\"https://example.org/*\"]\nhttp_ca = '%s'\n"
        % (tmp_path / "data", wasm_component("webhook-probe"), ca))
    r = subprocess.run([str(firehose_bin()), "serve", "--config", str(config)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "source[0].grants.http_ca" in r.stderr and says in r.stderr, r.stderr
