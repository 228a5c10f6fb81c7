"""The generated certificate verifies for 127.0.0.1 and localhost with OpenSSL."""

import hashlib
import socket
import ssl
import subprocess

import pytest

TLS_PORTS = ["mqtts_port", "wss_port"]


def s_client(port: int, ca, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca),
         "-verify_return_error", *extra],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("port_attr", TLS_PORTS)
def test_openssl_verifies_certificate_for_ip_127_0_0_1(broker, port_attr):
    r = s_client(getattr(broker, port_attr), broker.ca, "-verify_ip", "127.0.0.1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout


@pytest.mark.parametrize("port_attr", TLS_PORTS)
def test_openssl_verifies_certificate_for_localhost(broker, port_attr):
    r = s_client(getattr(broker, port_attr), broker.ca, "-servername", "localhost",
                 "-verify_hostname", "localhost")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout


def test_openssl_rejects_certificate_for_another_name(broker):
    """Control: verification really checks the name."""
    r = s_client(broker.mqtts_port, broker.ca, "-verify_hostname", "not-this-host.example")
    assert r.returncode != 0 or "Verify return code: 0 (ok)" not in r.stdout


def _served_cert_der(port: int, ca) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw_sock:
        with ctx.wrap_socket(raw_sock, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def _x509_text(pem_or_der: bytes, inform: str) -> str:
    return subprocess.run(["openssl", "x509", "-inform", inform, "-noout", "-text"], input=pem_or_der,
                          capture_output=True, timeout=20, check=True).stdout.decode()


def test_leaf_is_not_a_ca_and_names_both_hosts(broker):
    """rustls clients refuse a CA certificate presented as the server's own."""
    leaf = _x509_text(_served_cert_der(broker.mqtts_port, broker.ca), "DER")
    assert "CA:FALSE" in leaf or "CA:TRUE" not in leaf, leaf
    assert "IP Address:127.0.0.1" in leaf, leaf
    assert "DNS:localhost" in leaf, leaf
    ca = _x509_text(broker.ca.read_bytes(), "PEM")
    assert "CA:TRUE" in ca, ca


@pytest.mark.firehose_only
def test_generated_certificate_is_kept_across_restarts(broker):
    ca_before = broker.ca.read_bytes()
    leaf_before = hashlib.sha256(_served_cert_der(broker.mqtts_port, broker.ca)).hexdigest()
    broker.restart()
    assert broker.ca.read_bytes() == ca_before, "ca.pem regenerated on restart"
    leaf_after = hashlib.sha256(_served_cert_der(broker.mqtts_port, broker.ca)).hexdigest()
    assert leaf_after == leaf_before, "server certificate changed on restart"


@pytest.mark.firehose_only
def test_broker_logs_the_ca_path(broker):
    assert str(broker.ca) in broker.log_text(), "the ca.pem path should be logged for --cafile users"


@pytest.mark.firehose_only
def test_private_keys_are_not_world_readable(broker):
    for key in broker.ca.parent.glob("*.key"):
        assert key.stat().st_mode & 0o077 == 0, f"{key} mode {oct(key.stat().st_mode)}"
