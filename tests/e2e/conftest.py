"""Fixtures for the end-to-end suite: a real broker on free 127.0.0.1 ports.

By default the broker is `target/release/firehose` (override with FIREHOSE_BIN).
FIREHOSE_E2E_BROKER=mosquitto runs the same tests against a Mosquitto configured
equivalently (ACL: anonymous read-only, `publisher` may write ansible/#), which is
how the tests themselves were validated before the firehose binary existed.
Tests that exercise firehose-only features carry the `firehose_only` marker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BROKER_KIND = os.environ.get("FIREHOSE_E2E_BROKER", "firehose")
HOST = "127.0.0.1"

PUBLISHER = "publisher"
PUBLISHER_PASSWORD = "pub-Secret-4711"
# A second account, allowed to use a `$test/#` topic: it lets a test prove a
# `$`-topic message is routed (to a `$test/#` subscriber) yet not matched by `#`.
OPERATOR = "operator"
OPERATOR_PASSWORD = "op-Secret-0815"


def firehose_bin() -> Path:
    return Path(os.environ.get("FIREHOSE_BIN") or REPO / "target" / "release" / "firehose")


def pytest_configure(config):
    config.addinivalue_line("markers", "firehose_only: needs the firehose binary (skipped against mosquitto)")
    config.addinivalue_line("markers", "limits(**kw): extra [limits] keys for this test's broker config")
    config.addinivalue_line("markers", "acl(component, config={}, limits={}): an [acl] policy "
                            "component from target/wasm/ for this test's broker")
    config.addinivalue_line("markers", "transforms(*chains): [[transform]] chains, each a dict "
                            "name, topics, on_error?, components=[{component, config?, limits?}]")


def pytest_collection_modifyitems(config, items):
    if BROKER_KIND != "mosquitto":
        return
    skip = pytest.mark.skip(reason="firehose-only test (FIREHOSE_E2E_BROKER=mosquitto)")
    for item in items:
        if "firehose_only" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_port(port: int, deadline: float, proc: subprocess.Popen | None = None) -> None:
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode} before port {port} accepted")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {port} did not accept within the deadline")
            time.sleep(0.05)


def run_firehose(args, stdin: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    binary = firehose_bin()
    if not binary.exists():
        pytest.fail(f"firehose binary not found at {binary}: run `cargo build --release -p firehose` "
                    "or set FIREHOSE_BIN")
    return subprocess.run([str(binary), *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    """argon2 hashes from `firehose hash-password` (reads the password on stdin)."""
    if BROKER_KIND == "mosquitto":
        return {}
    hashes = {}
    for user, pw in ((PUBLISHER, PUBLISHER_PASSWORD), (OPERATOR, OPERATOR_PASSWORD)):
        r = run_firehose(["hash-password"], stdin=pw + "\n")
        assert r.returncode == 0, f"hash-password failed: {r.stderr}"
        h = r.stdout.strip().splitlines()[-1].strip() if r.stdout.strip() else ""
        assert h.startswith("$argon2"), f"hash-password printed {r.stdout!r}"
        hashes[user] = h
    return hashes


@dataclass
class Broker:
    kind: str
    tmp: Path
    data_dir: Path
    config: Path
    log_path: Path
    mqtt_port: int
    mqtts_port: int
    ws_port: int
    wss_port: int
    ca: Path
    proc: subprocess.Popen | None = None
    host: str = HOST
    user: str = PUBLISHER
    password: str = PUBLISHER_PASSWORD
    operator: str = OPERATOR
    operator_password: str = OPERATOR_PASSWORD
    limits: dict = field(default_factory=dict)
    acl: dict | None = None
    transforms: list = field(default_factory=list)
    hashes: dict = field(default_factory=dict)
    sources: list = field(default_factory=list)
    cmd: list = field(default_factory=list)

    def port(self, transport: str) -> int:
        return {"tcp": self.mqtt_port, "tls": self.mqtts_port,
                "ws": self.ws_port, "wss": self.wss_port}[transport]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> None:
        """(Re)start the broker process with the same config and data dir."""
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=env, cwd=str(self.tmp))
        log.close()
        deadline = time.monotonic() + 20
        try:
            for p in (self.mqtt_port, self.mqtts_port, self.ws_port, self.wss_port):
                wait_port(p, deadline, self.proc)
            while not self.ca.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.ca} was not generated")
                time.sleep(0.05)
        except Exception:
            self.stop()
            sys.stderr.write(f"--- broker log ({self.log_path}) ---\n{self.log_text()}\n")
            raise

    def rewrite_config(self) -> None:
        """Writes the config again from `acl`, `transforms` and `limits` (then
        SIGHUP applies it)."""
        self.config.write_text(firehose_config(self, self.hashes))

    def sighup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def _toml_str(s: str) -> str:
    # literal string: no escapes, argon2 PHC strings contain `$` and `/`
    assert "'" not in s
    return "'" + s + "'"


def firehose_config(b: Broker, hashes: dict[str, str]) -> str:
    limits = {"connect_timeout_secs": 2}
    limits.update(b.limits)
    lines = [f"data_dir = {_toml_str(str(b.data_dir))}", ""]
    for name, port in (("mqtt", b.mqtt_port), ("mqtts", b.mqtts_port),
                       ("ws", b.ws_port), ("wss", b.wss_port)):
        lines += ["[[listener]]", f'name = "{name}"', f'kind = "{name}"',
                  f'address = "{HOST}:{port}"', ""]
    lines.append("[limits]")
    for k, v in limits.items():
        lines.append(f"{k} = {v}")
    lines += ["", "[anonymous]", "connect = true", 'subscribe = ["#"]', "publish = []", ""]
    lines += ["[[user]]", f'name = "{PUBLISHER}"', f"password_hash = {_toml_str(hashes[PUBLISHER])}",
              'publish = ["ansible/#"]', 'subscribe = ["#"]', ""]
    lines += ["[[user]]", f'name = "{OPERATOR}"', f"password_hash = {_toml_str(hashes[OPERATOR])}",
              "publish = [\"ansible/#\", \"$test/#\"]", "subscribe = [\"#\", \"$test/#\"]", ""]
    if b.acl is not None:
        wasm = wasm_component(b.acl["component"])
        lines += ["[acl]", f"path = {_toml_str(str(wasm))}", "", "[acl.config]"]
        lines += [f"{k} = {_toml_str(v)}" for k, v in b.acl.get("config", {}).items()]
        lines += ["", "[acl.limits]"]
        lines += [f"{k} = {v}" for k, v in b.acl.get("limits", {}).items()]
        lines.append("")
    for chain in b.transforms:
        lines += ["[[transform]]", f"name = {_toml_str(chain['name'])}",
                  "topics = [" + ", ".join(_toml_str(t) for t in chain["topics"]) + "]"]
        if "on_error" in chain:
            lines.append(f"on_error = {_toml_str(chain['on_error'])}")
        lines.append("")
        for component in chain["components"]:
            lines += ["[[transform.component]]",
                      f"path = {_toml_str(str(wasm_component(component['component'])))}", "",
                      "[transform.component.config]"]
            lines += [f"{k} = {_toml_str(v)}" for k, v in component.get("config", {}).items()]
            lines += ["", "[transform.component.limits]"]
            lines += [f"{k} = {v}" for k, v in component.get("limits", {}).items()]
            lines.append("")
    for source in b.sources:
        lines += source_toml(source)
    return "\n".join(lines)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return _toml_str(str(v))


def source_toml(source: dict) -> list[str]:
    """A [[source]] entry: name, component (target/wasm/<component>.wasm), prefix,
    and optional config / grants / limits / webhook dicts."""
    wasm = wasm_component(source["component"])
    lines = ["[[source]]", f"name = {_toml_str(source['name'])}", f"path = {_toml_str(str(wasm))}",
             f"prefix = {_toml_str(source['prefix'])}", ""]
    for table in ("config", "grants", "limits", "webhook"):
        if source.get(table):
            lines.append(f"[source.{table}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in source[table].items()]
            lines.append("")
    return lines


def wasm_component(name: str) -> Path:
    """A component built by guests/build (tests/run runs it first)."""
    path = REPO / "target" / "wasm" / f"{name}.wasm"
    if not path.exists():
        pytest.fail(f"{path} is missing: run guests/build")
    return path


def _make_test_ca(tls_dir: Path) -> None:
    """For the mosquitto reference run: a CA and a CA:FALSE leaf for 127.0.0.1/localhost."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    ext = tls_dir / "leaf.ext"
    ext.write_text("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")

    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=30)

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(tls_dir / "ca.key"), "-out", str(tls_dir / "ca.pem"), "-days", "2",
         "-subj", "/CN=e2e test CA")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(tls_dir / "server.key"), "-out", str(tls_dir / "server.csr"),
         "-subj", "/CN=localhost")
    ossl("x509", "-req", "-in", str(tls_dir / "server.csr"), "-CA", str(tls_dir / "ca.pem"),
         "-CAkey", str(tls_dir / "ca.key"), "-CAcreateserial", "-out", str(tls_dir / "server.pem"),
         "-days", "2", "-extfile", str(ext))


def mosquitto_config(b: Broker) -> str:
    tls = b.data_dir / "tls"
    _make_test_ca(tls)
    pwfile = b.tmp / "passwd"
    pwfile.write_text("")
    for user, pw in ((PUBLISHER, PUBLISHER_PASSWORD), (OPERATOR, OPERATOR_PASSWORD)):
        subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, pw], check=True, timeout=30)
    acl = b.tmp / "acl"
    acl.write_text("topic read #\n\n"
                   f"user {PUBLISHER}\ntopic write ansible/#\ntopic read #\n\n"
                   f"user {OPERATOR}\ntopic write ansible/#\ntopic readwrite $test/#\ntopic read #\n")
    lines = ["per_listener_settings false", "allow_anonymous true", f"password_file {pwfile}",
             f"acl_file {acl}", "persistence false", "log_dest stderr", "log_type all",
             "max_packet_size 1048576", "max_inflight_messages 32", "max_queued_messages 1000"]
    if os.geteuid() == 0:
        lines.append("user root")
    lines += [f"listener {b.mqtt_port} {HOST}",
              f"listener {b.mqtts_port} {HOST}", f"certfile {tls / 'server.pem'}",
              f"keyfile {tls / 'server.key'}",
              f"listener {b.ws_port} {HOST}", "protocol websockets",
              f"listener {b.wss_port} {HOST}", "protocol websockets",
              f"certfile {tls / 'server.pem'}", f"keyfile {tls / 'server.key'}"]
    return "\n".join(lines) + "\n"


def start_broker(tmp: Path, hashes: dict[str, str], limits: dict | None = None,
                 acl: dict | None = None, transforms: list | None = None,
                 sources: list | None = None) -> Broker:
    ports = free_ports(4)
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    b = Broker(kind=BROKER_KIND, tmp=tmp, data_dir=data_dir, config=tmp / "broker.conf",
               log_path=tmp / "broker.log", mqtt_port=ports[0], mqtts_port=ports[1],
               ws_port=ports[2], wss_port=ports[3], ca=data_dir / "tls" / "ca.pem",
               limits=dict(limits or {}), acl=acl, transforms=list(transforms or []),
               hashes=hashes, sources=list(sources or []))
    if BROKER_KIND == "mosquitto":
        b.config.write_text(mosquitto_config(b))
        cmd = ["mosquitto", "-c", str(b.config)]
    else:
        b.config = tmp / "firehose.toml"
        b.config.write_text(firehose_config(b, hashes))
        binary = firehose_bin()
        if not binary.exists():
            pytest.fail(f"firehose binary not found at {binary}: run `cargo build --release -p "
                        "firehose` or set FIREHOSE_BIN")
        cmd = [str(binary), "serve", "--config", str(b.config)]
    b.cmd = cmd
    b.start()
    return b


@pytest.fixture
def broker(request, tmp_path, password_hashes):
    """A broker on four free ports (mqtt, mqtts, ws, wss), stopped by PID at teardown.

    `@pytest.mark.limits(key=value)` adds [limits] keys to its config."""
    marker = request.node.get_closest_marker("limits")
    limits = dict(marker.kwargs) if marker else {}
    acl_marker = request.node.get_closest_marker("acl")
    acl = None
    if acl_marker:
        acl = {"component": acl_marker.args[0], **acl_marker.kwargs}
    transforms_marker = request.node.get_closest_marker("transforms")
    transforms = list(transforms_marker.args) if transforms_marker else []
    b = start_broker(tmp_path, password_hashes, limits, acl, transforms)
    yield b
    crashed = not b.alive()
    b.stop()
    rep = getattr(request.node, "rep_call", None)
    if crashed or rep is None or rep.failed:
        sys.stderr.write(f"\n--- broker log ({b.kind}, {b.log_path}), exit={b.proc.returncode} ---\n")
        text = b.log_text()
        sys.stderr.write(text[-20000:] + "\n")
    if crashed:
        pytest.fail(f"the broker died during the test (exit {b.proc.returncode})")


@pytest.fixture
def clients(broker):
    """Factory for paho clients on `broker`; all are disconnected at teardown."""
    from helpers import Clients

    c = Clients(broker)
    yield c
    c.close()
