"""SIGHUP reloads the TLS certificate: new handshakes get the new one, and
connections made before the reload keep receiving."""

import signal
import socket
import ssl
import subprocess

import pytest

from helpers import uniq, wait_log

pytestmark = pytest.mark.firehose_only


def served_cert(port: int, ca) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def sign_new_leaf(tls_dir) -> None:
    """Replaces server.pem/server.key with a new leaf signed by the same CA,
    as an operator renewing a certificate would."""
    ext = tls_dir / "renew.ext"
    ext.write_text("basicConstraints=CA:FALSE\n"
                   "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                   "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(tls_dir / "renewed.key"), "-out", str(tls_dir / "renewed.csr"),
         "-subj", "/CN=renewed")
    ossl("x509", "-req", "-in", str(tls_dir / "renewed.csr"), "-CA", str(tls_dir / "ca.pem"),
         "-CAkey", str(tls_dir / "ca.key"), "-set_serial", "4242", "-days", "2",
         "-out", str(tls_dir / "renewed.pem"), "-extfile", str(ext))
    (tls_dir / "server.key").write_bytes((tls_dir / "renewed.key").read_bytes())
    (tls_dir / "server.pem").write_bytes((tls_dir / "renewed.pem").read_bytes()
                                         + (tls_dir / "ca.pem").read_bytes())


def test_sighup_swaps_the_certificate_without_dropping_connections(broker, clients):
    before = served_cert(broker.mqtts_port, broker.ca)
    topic = uniq()
    sub = clients.anonymous(transport="tls")
    sub.connect()
    sub.subscribe(topic)
    pub = clients.publisher()
    pub.connect()

    sign_new_leaf(broker.data_dir / "tls")
    broker.proc.send_signal(signal.SIGHUP)
    wait_log(broker, "TLS certificate reloaded", timeout=10)

    after = served_cert(broker.mqtts_port, broker.ca)
    assert after != before, "new handshakes still get the old certificate"
    assert served_cert(broker.wss_port, broker.ca) == after
    pub.publish(topic, b"after reload", qos=1)
    message = sub.wait_for(topic)
    assert message.payload == b"after reload"
    assert broker.alive()
