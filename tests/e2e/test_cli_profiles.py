"""The README's commands: `firehose serve` on the embedded default, and the open profile.

These bind the fixed ports the profiles name (1883/8883/8080/8443, 1884); a test
is skipped when another process already holds one of them.
"""

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, firehose_bin, wait_port
from helpers import MosqSub, mosquitto_pub, stop_process, uniq

pytestmark = pytest.mark.firehose_only

OPEN_PROFILE = REPO / "examples" / "open.toml"
DEFAULT_PORTS = {1883, 8883, 8080, 8443}


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


def listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets process `pid` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                local, state, inode = parts[1], parts[3], parts[9]
                if state == "0A" and inode in inodes:  # LISTEN
                    addr_hex, port_hex = local.split(":")
                    if len(addr_hex) == 8:
                        addr = socket.inet_ntoa(bytes.fromhex(addr_hex)[::-1])
                    else:
                        addr = "ipv6:" + addr_hex
                    found.add((addr, int(port_hex, 16)))
    return found


class Served:
    def __init__(self, args, tmp_path, ports):
        self.log = tmp_path / "serve.log"
        env = dict(os.environ, FIREHOSE_DATA_DIR=str(tmp_path / "data"), NO_COLOR="1")
        with open(self.log, "wb") as log:
            self.p = subprocess.Popen([str(firehose_bin()), "serve", *args], cwd=str(tmp_path),
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                      env=env)
        deadline = time.monotonic() + 20
        try:
            for port in ports:
                wait_port(port, deadline, self.p)
        except Exception:
            self.stop()
            raise

    def stop(self):
        stop_process(self.p)

    def log_text(self):
        return self.log.read_text(errors="replace")


def test_open_profile_passes_check_config():
    assert OPEN_PROFILE.exists(), "examples/open.toml is missing"
    r = subprocess.run([str(firehose_bin()), "check-config", str(OPEN_PROFILE)], capture_output=True,
                       text=True, timeout=15)
    assert r.returncode == 0, r.stdout + r.stderr


def test_open_profile_lets_anonymous_clients_publish_and_read_sys(tmp_path):
    if port_busy(1884):
        pytest.skip("127.0.0.1:1884 is in use by another process")
    s = Served(["--config", str(OPEN_PROFILE)], tmp_path, [1884])
    try:
        assert listening_ports(s.p.pid) == {("127.0.0.1", 1884)}, "the open profile listens on 1884 only"
        topic = uniq("anywhere")
        sub = MosqSub(["-h", "127.0.0.1", "-p", "1884", "-V", "mqttv5", "-t", "#", "-t", "$SYS/#"])
        try:
            sub.wait_subscribed()
            assert sub.suback == "Subscribed (mid: 1): 0, 0", "\n".join(sub.lines)
            r = mosquitto_pub(["-h", "127.0.0.1", "-p", "1884", "-V", "mqttv5", "-q", "1", "-t", topic,
                               "-m", "open"])
            assert "Not authorized" not in r.stdout, r.stdout
            assert sub.wait_for(topic)[1] == b"open"
        finally:
            sub.stop()
    finally:
        s.stop()


def test_serve_without_flags_uses_the_embedded_default(tmp_path):
    busy = sorted(p for p in DEFAULT_PORTS if port_busy(p))
    if busy:
        pytest.skip(f"default ports in use by another process: {busy}")
    s = Served([], tmp_path, sorted(DEFAULT_PORTS))
    try:
        assert listening_ports(s.p.pid) == {("127.0.0.1", p) for p in DEFAULT_PORTS}
        ca = tmp_path / "data" / "tls" / "ca.pem"
        assert ca.exists(), f"no generated CA under $FIREHOSE_DATA_DIR: {list((tmp_path / 'data').rglob('*'))}"
        assert str(ca) in s.log_text(), "the ca.pem path is logged"
        log = s.log_text()
        assert "ACL policy loaded" in log and "public-read.wasm" in log, \
            "the embedded default's read-only rule is the public-read policy component"
        topic = uniq()
        sub = MosqSub(["-h", "localhost", "-p", "8883", "--cafile", str(ca), "-t", "#"])
        try:
            sub.wait_subscribed()
            # Read-only by default: an anonymous publish is acknowledged and dropped.
            r = mosquitto_pub(["-h", "127.0.0.1", "-p", "1883", "-V", "mqttv5", "-q", "1", "-t", topic,
                               "-m", "x"])
            assert "Not authorized" in r.stdout, r.stdout
        finally:
            sub.stop()
    finally:
        s.stop()
