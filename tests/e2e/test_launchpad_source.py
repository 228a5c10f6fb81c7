"""The launchpad source (guests/launchpad) end to end, against a real Dovecot.

tests/e2e/dovecot.py starts a private Dovecot on 127.0.0.1 (unprivileged,
its own config); the test fills its INBOX with the sample mails of
tests/data/launchpad/ (bug mails, a merge proposal, a mail not from
Launchpad and two broken ones), starts the source in the broker granted only
Dovecot's port, and asserts what a subscriber receives: each Launchpad mail on
its topic with exactly the payload of its `.expected.json`. Then it checks
the mailbox with Python's imaplib (published mail is \\Seen, the rest is
left unseen) and delivers one more mail while the source is in IDLE.

The source is added by a config reload (SIGHUP) once the subscriber is in
place, so that no message can be published before anyone listens.

IMAPS and STARTTLS run against the same Dovecot with its test CA in `ca_pem`.
They need the launchpad crate's default `tls` feature (rustls with ring, which
needs clang for wasm32: decision D2); with a component built without it they
are skipped, saying why.
"""

from __future__ import annotations

import imaplib
import json
import re
import sys
import time
from types import SimpleNamespace

import pytest

from conftest import REPO, firehose_config, start_broker, wasm_component
from dovecot import Dovecot
from helpers import QUIET, Paho, log_lines, wait_log
# `firehose serve` on an example config with the test's ports.
from test_gerrit_source import ExampleBroker

pytestmark = pytest.mark.firehose_only

DATA = REPO / "tests" / "data" / "launchpad"

# The topic of each sample that is published (its payload is <name>.expected.json).
PUBLISHED = {
    "new-bug": "launchpad/nova/bug/1704071",
    "comment": "launchpad/nova/bug/1704071",
    "status-change": "launchpad/nova/bug/1704071",
    "two-projects": "launchpad/nova/bug/1698822",
    "folded-headers": "launchpad/nova/bug/1712345",
    "qp-utf8": "launchpad/nova/bug/1723456",
    "base64-body": "launchpad/nova/bug/1723456",
    "multipart": "launchpad/nova/bug/1704071",
    "merge-proposal": "launchpad/lpmqtt/code-review",
}
# Samples the source must leave unseen (and log, for the broken ones).
NOT_LAUNCHPAD = "non-launchpad"
BROKEN = {
    "broken-header": r"header line 18 is not `Name: value`",
    "broken-no-bug-number": r"no \"\[Bug N\]\" in subject",
}


def eml(name: str) -> bytes:
    return (DATA / f"{name}.eml").read_bytes()


def expected(name: str) -> bytes:
    return (DATA / f"{name}.expected.json").read_bytes().rstrip(b"\n")


def launchpad_source(imap: Dovecot, **config) -> dict:
    port = imap.imap_port
    return {"name": "launchpad", "component": "launchpad", "prefix": "launchpad",
            "config": {"address": f"127.0.0.1:{port}", "security": "plain",
                       "user": imap.user, "password": imap.password,
                       "reconnect_min_ms": 200, "reconnect_max_secs": 2,
                       "command_timeout_secs": 10, **config},
            "grants": {"tcp": [f"127.0.0.1:{port}"]}}


def mailbox_state(imap: Dovecot) -> dict[str, list[bytes]]:
    """Subjects of the INBOX's mail, sorted, split into seen and unseen (imaplib,
    read-only)."""
    client = imaplib.IMAP4("127.0.0.1", imap.imap_port, timeout=10)
    try:
        client.login(imap.user, imap.password)
        client.select("INBOX", readonly=True)
        state = {}
        for key in ("SEEN", "UNSEEN"):
            _, data = client.uid("SEARCH", None, key)
            subjects = []
            for uid in data[0].split():
                _, parts = client.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                subjects.append(parts[0][1].strip())
            state[key.lower()] = sorted(subjects)
        return state
    finally:
        client.logout()


def subject(name: str) -> bytes:
    """The raw (folded) Subject header of a sample, as IMAP returns it."""
    head = eml(name).replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    m = re.search(rb"^Subject:.*(?:\n[ \t].*)*", head, re.M | re.I)
    assert m, name
    return m.group(0).replace(b"\n", b"\r\n").strip()


@pytest.fixture
def dovecot(request, tmp_path):
    """A private Dovecot (stopped by PID at teardown; its log printed on failure)."""
    with Dovecot(tmp_path) as imap:
        yield imap
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            sys.stderr.write(f"\n--- dovecot log ---\n{imap.log()[-10000:]}\n")


@pytest.fixture
def broker_and_sub(request, tmp_path, password_hashes):
    """A broker with no source yet and a paho subscriber on launchpad/#; the
    broker is stopped by PID at teardown and its log printed on failure."""
    b = start_broker(tmp_path, password_hashes)
    sub = Paho(b)
    sub.connect()
    sub.subscribe("launchpad/#", qos=1)
    yield b, sub
    sub.close()
    crashed = not b.alive()
    b.stop()
    rep = getattr(request.node, "rep_call", None)
    if crashed or rep is None or rep.failed:
        sys.stderr.write(f"\n--- broker log ({b.log_path}), exit={b.proc.returncode} ---\n")
        sys.stderr.write(b.log_text()[-20000:] + "\n")
    if crashed:
        pytest.fail(f"the broker died during the test (exit {b.proc.returncode})")


def toml_value(v) -> str:
    """A TOML value: JSON's string escapes are TOML's too, and unlike the
    conftest helper this keeps newlines (a PEM in `ca_pem`)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))


def add_source(broker, source: dict) -> None:
    """Adds the [[source]] to the running broker's config and reloads it."""
    lines = ["", "[[source]]", f"name = {toml_value(source['name'])}",
             f"path = {toml_value(str(wasm_component(source['component'])))}",
             f"prefix = {toml_value(source['prefix'])}", "", "[source.config]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in source["config"].items()]
    lines += ["", "[source.grants]",
              "tcp = [" + ", ".join(toml_value(g) for g in source["grants"]["tcp"]) + "]", ""]
    broker.sources = []
    broker.config.write_text(firehose_config(broker, broker.hashes) + "\n".join(lines))
    broker.sighup()


def require_tls(broker) -> None:
    """Skips the test when target/wasm/launchpad.wasm was built without its
    default `tls` feature (`--no-default-features`; decision D2)."""
    line = wait_log(broker, r"logged in to|TLS handshake|has no TLS|IMAP session with", timeout=30)[0]
    if "has no TLS" in line:
        pytest.skip("target/wasm/launchpad.wasm has no TLS: it was built without the launchpad "
                    "crate's default `tls` feature (run guests/build)")


def test_bug_mail_is_published_marked_seen_and_idle_brings_new_mail(dovecot, broker_and_sub):
    broker, sub = broker_and_sub
    for name in PUBLISHED:
        dovecot.deliver(eml(name))
    dovecot.deliver(eml(NOT_LAUNCHPAD))
    for name in BROKEN:
        dovecot.deliver(eml(name))
    add_source(broker, launchpad_source(dovecot))

    got = sub.wait_messages(len(PUBLISHED), timeout=30)
    received = sorted((m.topic, m.payload) for m in got)
    want = sorted((topic, expected(name)) for name, topic in PUBLISHED.items())
    assert [t for t, _ in received] == [t for t, _ in want]
    for (topic, payload), (_, exp) in zip(received, want):
        assert payload == exp, f"{topic}: payload differs:\n{payload[:300]!r}\n{exp[:300]!r}"
    for m in got:
        assert m.qos == 1 and not m.retain
        assert m.properties.ContentType == "application/json"
    # The broken mails are logged with their UID and what is wrong; the
    # source goes on (no failed run).
    for pattern in BROKEN.values():
        wait_log(broker, r"mail UID \d+ skipped, left unseen: " + pattern)
    wait_log(broker, r"waiting for new mail with IDLE")
    assert not log_lines(broker, r"source run ended"), "the source must not fail"

    # Published mail is marked seen; the rest is left unseen and untouched.
    deadline = time.monotonic() + 10
    while True:
        state = mailbox_state(dovecot)
        if len(state["seen"]) == len(PUBLISHED) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert state["seen"] == sorted(subject(n) for n in PUBLISHED)
    assert state["unseen"] == sorted(subject(n) for n in [NOT_LAUNCHPAD, *BROKEN])

    # One more mail, delivered while the source idles: IDLE announces it (the
    # source never polls in this test: idle_max_secs is the default 29 min).
    time.sleep(1)
    late = eml("new-bug").replace(b"[Bug 1704071]", b"[Bug 1999999]", 1)
    assert late != eml("new-bug")
    dovecot.deliver(late)
    m = sub.wait_for("launchpad/nova/bug/1999999", timeout=15)
    payload = json.loads(m.payload)
    assert payload["bug-number"] == "1999999"
    assert {k: v for k, v in payload.items() if k != "bug-number"} == \
        {k: v for k, v in json.loads(expected("new-bug")).items() if k != "bug-number"}
    assert sub.drain(QUIET) == [], "nothing else may arrive (no mail twice)"
    assert dovecot.password not in broker.log_text()


def test_polling_without_idle_and_deleting_published_mail(dovecot, broker_and_sub):
    broker, sub = broker_and_sub
    dovecot.deliver(eml("status-change"))
    dovecot.deliver(eml(NOT_LAUNCHPAD))
    add_source(broker, launchpad_source(dovecot, idle=False, poll_secs=1, delete=True))
    m = sub.wait_for("launchpad/nova/bug/1704071", timeout=30)
    assert m.payload == expected("status-change")
    wait_log(broker, r"polling every 1 s")
    dovecot.deliver(eml("two-projects"))
    m = sub.wait_for("launchpad/nova/bug/1698822", timeout=15)
    assert m.payload == expected("two-projects")
    # Both were deleted and expunged; the other mail is still there, unseen.
    deadline = time.monotonic() + 10
    while True:
        state = mailbox_state(dovecot)
        if not state["seen"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert state == {"seen": [], "unseen": [subject(NOT_LAUNCHPAD)]}
    assert sub.drain(QUIET) == []


def test_a_mail_over_the_size_limit_is_skipped_not_retried_forever(dovecot, broker_and_sub):
    broker, sub = broker_and_sub
    big = eml("new-bug") + b"padding to make this mail larger than the limit\r\n" * 400
    assert len(big) > 16384
    dovecot.deliver(big)
    dovecot.deliver(eml("comment"))
    add_source(broker, launchpad_source(dovecot, max_mail_bytes=16384))
    m = sub.wait_for("launchpad/nova/bug/1704071", timeout=30)
    assert m.payload == expected("comment")
    lines = wait_log(broker, r"mail UID \d+ skipped, left unseen: \d+ bytes, larger than "
                             r"max_mail_bytes = 16384")
    assert len(lines) == 1
    assert sub.drain(QUIET) == []
    assert len(log_lines(broker, r"mail UID \d+ skipped")) == 1, "skipped once, then remembered"
    assert mailbox_state(dovecot)["unseen"] == [subject("new-bug")]


def test_a_wrong_password_is_retried_and_never_logged(dovecot, broker_and_sub):
    broker, sub = broker_and_sub
    wrong = "Wrong-Passw0rd-xyz"
    dovecot.deliver(eml("new-bug"))
    add_source(broker, launchpad_source(dovecot, password=wrong))
    wait_log(broker, r"IMAP session with 127\.0\.0\.1:\d+: LOGIN failed")
    wait_log(broker, r"reconnecting to 127\.0\.0\.1:\d+ in 0\.4 s")
    assert wrong not in broker.log_text()
    assert sub.drain(QUIET) == []


def test_imaps_with_the_servers_ca(dovecot, broker_and_sub):
    broker, sub = broker_and_sub
    dovecot.deliver(eml("new-bug"))
    source = launchpad_source(dovecot, security="imaps", ca_pem=dovecot.ca_file.read_text())
    source["config"]["address"] = f"127.0.0.1:{dovecot.imaps_port}"
    source["grants"]["tcp"] = [f"127.0.0.1:{dovecot.imaps_port}"]
    add_source(broker, source)
    require_tls(broker)
    m = sub.wait_for("launchpad/nova/bug/1704071", timeout=30)
    assert m.payload == expected("new-bug")
    wait_log(broker, r"logged in to 127\.0\.0\.1:\d+ as lpmqtt \(IMAPS\)")
    assert dovecot.password not in broker.log_text()


def test_starttls_checks_the_server_name(dovecot, broker_and_sub):
    broker, sub = broker_and_sub
    dovecot.deliver(eml("comment"))
    add_source(broker, launchpad_source(dovecot, security="starttls", tls_server_name="localhost",
                                        ca_pem=dovecot.ca_file.read_text()))
    require_tls(broker)
    m = sub.wait_for("launchpad/nova/bug/1704071", timeout=30)
    assert m.payload == expected("comment")
    wait_log(broker, r"logged in to 127\.0\.0\.1:\d+ as lpmqtt \(STARTTLS\)")
    # Dovecot saw a TLS login on the plain port.
    assert re.search(r"imap-login: Info: Login: user=<lpmqtt>, .*, TLS,", dovecot.log()), dovecot.log()[-2000:]


def test_a_server_certificate_from_an_unknown_ca_is_refused(dovecot, broker_and_sub):
    broker, sub = broker_and_sub
    dovecot.deliver(eml("new-bug"))
    # No ca_pem: the Mozilla roots, which never signed the test CA.
    source = launchpad_source(dovecot, security="imaps")
    source["config"]["address"] = f"127.0.0.1:{dovecot.imaps_port}"
    source["grants"]["tcp"] = [f"127.0.0.1:{dovecot.imaps_port}"]
    add_source(broker, source)
    require_tls(broker)
    wait_log(broker, r"IMAP session with 127\.0\.0\.1:\d+: connection: TLS handshake: "
                     r"invalid peer certificate: UnknownIssuer")
    assert sub.drain(QUIET) == []
    assert not re.search(r"Login: user=<lpmqtt>", dovecot.log())


def test_the_source_reconnects_when_the_server_restarts(tmp_path, broker_and_sub):
    broker, sub = broker_and_sub
    first = Dovecot(tmp_path / "first").start()
    port = first.imap_port
    try:
        first.deliver(eml("comment"))
        add_source(broker, launchpad_source(first))
        m = sub.wait_for("launchpad/nova/bug/1704071", timeout=30)
        assert m.payload == expected("comment")
        wait_log(broker, r"waiting for new mail with IDLE")
    finally:
        first.stop()
    wait_log(broker, r"IMAP session with 127\.0\.0\.1:\d+: ")
    wait_log(broker, r"reconnecting to 127\.0\.0\.1:\d+ in")
    # A new server on the same port (same user and password, a new mailbox).
    with Dovecot(tmp_path / "second", imap_port=port) as second:
        second.deliver(eml("two-projects"))
        m = sub.wait_for("launchpad/nova/bug/1698822", timeout=30)
        assert m.payload == expected("two-projects")
        assert len(log_lines(broker, r"logged in to 127\.0\.0\.1:\d+ as lpmqtt")) == 2
    assert not log_lines(broker, r"source run ended"), "the source reconnects by itself"


def test_the_example_config_runs_the_source(tmp_path, dovecot):
    """examples/launchpad.toml, pointed at this test's Dovecot over IMAPS by the
    environment variables it names (address and grant, security, user,
    password, CA file), publishes bug mail; the password is never logged."""
    broker = None
    try:
        broker = ExampleBroker(tmp_path, "launchpad.toml", {
            '"../target/wasm/launchpad.wasm"': f"'{REPO / 'target' / 'wasm' / 'launchpad.wasm'}'",
        }, env={
            "LP_IMAP_ADDRESS": f"127.0.0.1:{dovecot.imaps_port}",
            "LP_IMAP_SECURITY": "imaps",
            "LP_IMAP_USER": dovecot.user,
            "LP_IMAP_PASSWORD": dovecot.password,
            "LP_IMAP_CA_FILE": str(dovecot.ca_file),
        })
        sub = Paho(SimpleNamespace(host=broker.host, port=broker.port_of, ca=None))
        try:
            sub.connect()
            sub.subscribe("launchpad/#", qos=1)
            dovecot.deliver(eml("new-bug"))
            m = sub.wait_for("launchpad/nova/bug/1704071", timeout=30)
            assert m.payload == expected("new-bug")
        finally:
            sub.close()
        assert dovecot.password not in broker.log_text()
    except BaseException:
        if broker is not None:
            sys.stderr.write(f"--- example broker log ---\n{broker.log_text()[-10000:]}\n")
        raise
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
