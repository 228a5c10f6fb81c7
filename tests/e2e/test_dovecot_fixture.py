"""The Dovecot helper (dovecot.py) really serves IMAP: logins over plain IMAP
with STARTTLS and over IMAPS, both verifying the helper's CA; a delivered mail
is UNSEEN; an IDLE client is told about a delivery with `* N EXISTS`.

Python's imaplib is the client: nothing here was written by us but the helper.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import ssl
import time

import pytest

from dovecot import Dovecot, make_test_ca

MAIL = (b"From: Jane Doe <1704071@bugs.launchpad.net>\r\n"
        b"To: lpmqtt@firehose.example.org\r\n"
        b"Subject: [Bug 1704071] [NEW] Resize fails\r\n"
        b"X-Generated-By: Launchpad (canonical.com)\r\n"
        b"\r\n"
        b"Public bug reported:\r\n")


@pytest.fixture
def dovecot(tmp_path):
    if shutil.which("dovecot") is None:
        pytest.fail("dovecot is not installed (apt-get install dovecot-imapd; tests/run installs it)")
    server = Dovecot(tmp_path)
    with server:
        yield server
    # Stopped by PID: a second stop is harmless and the port is released.
    server.stop()


def verifying_context(server: Dovecot) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    return context


def test_starttls_login_verifies_the_ca(dovecot):
    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=10)
    assert "STARTTLS" in imap.capabilities
    imap.starttls(ssl_context=verifying_context(dovecot))
    assert imap.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert imap.login(dovecot.user, dovecot.password)[0] == "OK"
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()


def test_imaps_login_verifies_the_ca_for_localhost_too(dovecot):
    for host in ("127.0.0.1", "localhost"):
        imap = imaplib.IMAP4_SSL(host, dovecot.imaps_port, ssl_context=verifying_context(dovecot), timeout=10)
        assert imap.login(dovecot.user, dovecot.password)[0] == "OK"
        imap.logout()


def test_a_foreign_ca_is_refused(dovecot, tmp_path):
    other = make_test_ca(tmp_path / "other-ca")
    context = ssl.create_default_context(cafile=str(other["ca"]))
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=context, timeout=10)


def test_wrong_password_is_refused(dovecot):
    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.login(dovecot.user, "wrong")


def test_delivered_mail_is_unseen_until_fetched_without_peek(dovecot):
    dovecot.deliver(MAIL)
    imap = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=verifying_context(dovecot), timeout=10)
    imap.login(dovecot.user, dovecot.password)
    imap.select("INBOX")
    status, data = imap.uid("SEARCH", "UNSEEN")
    assert status == "OK"
    uids = data[0].split()
    assert len(uids) == 1
    status, data = imap.uid("FETCH", uids[0], "(BODY.PEEK[])")
    assert status == "OK" and data[0][1] == MAIL
    assert imap.uid("SEARCH", "UNSEEN")[1][0].split() == uids, "BODY.PEEK[] leaves it unseen"
    imap.uid("STORE", uids[0], "+FLAGS", "(\\Seen)")
    assert imap.uid("SEARCH", "UNSEEN")[1] == [b""]
    imap.logout()


def test_idle_reports_exists_after_a_delivery(dovecot):
    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=10)
    imap.starttls(ssl_context=verifying_context(dovecot))
    imap.login(dovecot.user, dovecot.password)
    assert "IDLE" in imap.capabilities
    imap.select("INBOX")
    tag = imap._new_tag().decode()
    imap.send(f"{tag} IDLE\r\n".encode())
    assert imap.readline().startswith(b"+ ")
    delivered = time.monotonic()
    dovecot.deliver(MAIL)
    seen = []
    while True:
        line = imap.readline()
        assert line, f"connection closed; got {seen}"
        seen.append(line)
        if line == b"* 1 EXISTS\r\n":
            break
        assert time.monotonic() - delivered < 8, f"no EXISTS within 8 s: {seen}"
    assert time.monotonic() - delivered < 5
    imap.send(b"DONE\r\n")
    while not (line := imap.readline()).startswith(tag.encode()):
        seen.append(line)
    assert line.startswith(f"{tag} OK".encode()), line
    imap.logout()


def test_stop_frees_the_ports_and_the_run_dir(tmp_path):
    if shutil.which("dovecot") is None:
        pytest.fail("dovecot is not installed (apt-get install dovecot-imapd; tests/run installs it)")
    server = Dovecot(tmp_path).start()
    rundir, port, pid = server.rundir, server.imap_port, server.proc.pid
    server.stop()
    assert not rundir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        imaplib.IMAP4("127.0.0.1", port, timeout=2)
