"""Client helpers for the end-to-end tests: paho-mqtt and the mosquitto CLI tools,
and waiting for a line in a broker's log.

Every wait is bounded; a helper that times out raises AssertionError with what it saw.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5
V31 = mqtt.MQTTv31

TRANSPORTS = ["tcp", "tls", "ws", "wss"]

# "Nothing arrives" assertions wait this long after their positive control arrived.
QUIET = 1.5


def uniq(prefix: str = "ansible/e2e") -> str:
    """A topic no other test uses."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def rc_value(rc) -> int:
    return rc.value if hasattr(rc, "value") else int(rc)


def props(packet_type, **kw) -> Properties:
    p = Properties(packet_type)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


class Paho:
    """A paho-mqtt 2.x client (CallbackAPIVersion.VERSION2) with synchronous helpers."""

    def __init__(self, broker, transport: str = "tcp", version: int = V5,
                 username: str | None = None, password: str | None = None,
                 client_id: str = "", clean: bool = True, host: str | None = None,
                 connect_properties: Properties | None = None, will: dict | None = None,
                 keepalive: int = 30):
        self.broker = broker
        self.version = version
        self.transport = transport
        self.host = host or broker.host
        self.port = broker.port(transport)
        self.keepalive = keepalive
        self.clean = clean
        self.connect_properties = connect_properties
        kw = dict(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                  client_id=client_id or f"e2e-{uuid.uuid4().hex[:10]}",
                  protocol=version,
                  transport="websockets" if transport in ("ws", "wss") else "tcp")
        if version != V5:
            kw["clean_session"] = clean
        self.client_id = kw["client_id"]
        self.c = mqtt.Client(**kw)
        if transport in ("ws", "wss"):
            self.c.ws_set_options(path="/mqtt")
        if transport in ("tls", "wss"):
            self.c.tls_set(ca_certs=str(broker.ca))
        if username is not None:
            self.c.username_pw_set(username, password)
        if will:
            self.c.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                            will.get("retain", False), will.get("properties"))
        self.c.max_inflight_messages_set(100)
        self.messages: queue.Queue = queue.Queue()
        # Every message ever received, whether or not a wait consumed it: "must not
        # arrive" assertions look here, so no wait can hide a forbidden message.
        self.history: list = []
        self._connected = threading.Event()
        self._connack = None
        self._disconnected = threading.Event()
        self.disconnect_reason = None
        self._acks: dict[int, tuple] = {}
        self._ack_cv = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_publish = self._on_publish
        self.c.on_disconnect = self._on_disconnect
        self.session_present = None
        self.connack_properties = None
        self.started = False

    # callbacks (paho network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self._connack = reason_code
        self.session_present = flags.session_present
        self.connack_properties = properties
        self._connected.set()

    def _on_message(self, client, userdata, msg):
        self.history.append(msg)
        self.messages.put(msg)

    def _ack(self, mid, value):
        with self._ack_cv:
            self._acks[mid] = value
            self._ack_cv.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self._ack(mid, [rc_value(r) for r in reason_codes])

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        self._ack(mid, reason_codes)

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self._ack(mid, rc_value(reason_code))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnect_reason = reason_code
        self._disconnected.set()

    def _wait_ack(self, mid, timeout):
        deadline = time.monotonic() + timeout
        with self._ack_cv:
            while mid not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no acknowledgement for mid {mid} within {timeout}s")
                self._ack_cv.wait(left)
            return self._acks.pop(mid)

    # synchronous API
    def connect(self, timeout: float = 10.0, expect_success: bool = True):
        """Connect and wait for CONNACK. Returns the CONNACK reason code (int)."""
        kw = {}
        if self.version == V5:
            kw["clean_start"] = self.clean
            if self.connect_properties is not None:
                kw["properties"] = self.connect_properties
        self.c.connect(self.host, self.port, keepalive=self.keepalive, **kw)
        self.c.loop_start()
        self.started = True
        if not self._connected.wait(timeout):
            raise AssertionError(f"no CONNACK within {timeout}s ({self.transport}, v{self.version})")
        rc = rc_value(self._connack)
        if expect_success:
            assert rc == 0, f"connection refused: {self._connack} ({rc:#x})"
        return rc

    def subscribe(self, topic, qos: int = 0, options: SubscribeOptions | None = None,
                  properties: Properties | None = None, timeout: float = 10.0) -> list[int]:
        """Subscribe and wait for SUBACK. Returns the reason codes / granted QoS as ints."""
        if options is not None:
            res, mid = self.c.subscribe(topic, options=options, properties=properties)
        elif properties is not None:
            res, mid = self.c.subscribe(topic, qos, properties=properties)
        else:
            res, mid = self.c.subscribe(topic, qos)
        assert res == mqtt.MQTT_ERR_SUCCESS, f"subscribe not sent: {res}"
        return self._wait_ack(mid, timeout)

    def unsubscribe(self, topic, timeout: float = 10.0):
        res, mid = self.c.unsubscribe(topic)
        assert res == mqtt.MQTT_ERR_SUCCESS
        return self._wait_ack(mid, timeout)

    def publish(self, topic, payload=b"", qos: int = 0, retain: bool = False,
                properties: Properties | None = None, timeout: float = 10.0) -> int:
        """Publish; for QoS 1/2 wait for PUBACK/PUBCOMP (or a refusing PUBREC).

        Returns the acknowledgement's reason code (0 for QoS 0 once written)."""
        info = self.c.publish(topic, payload, qos, retain, properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish not sent: {info.rc}"
        if qos == 0:
            info.wait_for_publish(timeout)
            return 0
        return self._wait_ack(info.mid, timeout)

    def publish_nowait(self, topic, payload=b"", qos: int = 0, retain: bool = False,
                       properties: Properties | None = None):
        return self.c.publish(topic, payload, qos, retain, properties)

    def wait_message(self, timeout: float = 10.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message arrived within {timeout}s") from None

    def wait_for(self, topic: str, timeout: float = 10.0, others: list | None = None):
        """Wait for a message on `topic`; messages on other topics go to `others`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no message on {topic!r} within {timeout}s; "
                                     f"others seen: {[m.topic for m in (others or [])]}")
            try:
                m = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if m.topic == topic:
                return m
            if others is not None:
                others.append(m)

    def wait_messages(self, n: int, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"only {len(got)} of {n} messages within {timeout}s: "
                                     f"{[(m.topic, m.payload[:40]) for m in got[:10]]}")
            try:
                got.append(self.messages.get(timeout=left))
            except queue.Empty:
                pass
        return got

    def drain(self, duration: float) -> list:
        """Everything that arrives within `duration` seconds."""
        deadline = time.monotonic() + duration
        got = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            try:
                got.append(self.messages.get(timeout=left))
            except queue.Empty:
                pass

    def wait_disconnected(self, timeout: float = 10.0) -> bool:
        return self._disconnected.wait(timeout)

    def disconnect(self):
        try:
            if self.c.is_connected():
                self.c.disconnect()
                self._disconnected.wait(3)
        finally:
            if self.started:
                self.c.loop_stop()
                self.started = False

    def close(self):
        try:
            self.disconnect()
        except Exception:
            pass


class Clients:
    """Tracks clients created in a test and closes them all at the end."""

    def __init__(self, broker):
        self.broker = broker
        self.all: list[Paho] = []

    def new(self, **kw) -> Paho:
        c = Paho(self.broker, **kw)
        self.all.append(c)
        return c

    def anonymous(self, **kw) -> Paho:
        c = self.new(**kw)
        c.connect()
        return c

    def publisher(self, **kw) -> Paho:
        c = self.new(username=self.broker.user, password=self.broker.password, **kw)
        c.connect()
        return c

    def operator(self, **kw) -> Paho:
        c = self.new(username=self.broker.operator, password=self.broker.operator_password, **kw)
        c.connect()
        return c

    def close(self):
        for c in self.all:
            c.close()


def prove_live_then_quiet(sub: Paho, pub: Paho, control_topic: str, forbidden: callable,
                          quiet: float = QUIET):
    """Publish a control message (from the authorised `pub`), wait for it on `sub`,
    then keep listening `quiet` seconds. Returns everything seen besides the control.
    Fails if the control never arrives or if any message `sub` ever received satisfies
    `forbidden(msg)`."""
    payload = b"control-" + uuid.uuid4().hex.encode()
    pub.publish(control_topic, payload, qos=1)
    others: list = []
    deadline = time.monotonic() + 10
    while True:
        m = sub.wait_for(control_topic, timeout=max(0.1, deadline - time.monotonic()), others=others)
        if m.payload == payload:
            break
    others += sub.drain(quiet)
    bad = [m for m in list(sub.history) if forbidden(m)]
    assert not bad, "delivered but must not be: " + repr([(m.topic, m.payload[:60]) for m in bad])
    return others


# ---------------------------------------------------------------- mosquitto CLI

class MosqSub:
    """mosquitto_sub in the background; lines parsed into messages and SUBACK events."""

    MARK = "=MSG="

    def __init__(self, args: list[str], timeout: float = 60):
        cmd = ["stdbuf", "-oL", "mosquitto_sub", "-d", "-F", f"{self.MARK} %r %t %x", "-W", str(int(timeout)), *args]
        self.cmd = cmd
        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.msgs: queue.Queue = queue.Queue()
        self.history: list = []
        self.suback = ""
        self.subscribed = threading.Event()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith(self.MARK):
                parts = line.split(" ", 3)
                retain = parts[1] == "1"
                topic = parts[2]
                hexp = parts[3] if len(parts) > 3 else ""
                self.history.append((topic, bytes.fromhex(hexp), retain))
                self.msgs.put((topic, bytes.fromhex(hexp), retain))
            elif line.startswith("Subscribed (mid"):  # printed after the SUBACK, with -d
                self.suback = line
                self.subscribed.set()

    def wait_subscribed(self, timeout: float = 10.0):
        if not self.subscribed.wait(timeout):
            self.stop()
            raise AssertionError(f"mosquitto_sub never got a SUBACK: {self.cmd}\n" + "\n".join(self.lines))

    def wait_for(self, topic: str, timeout: float = 10.0, others: list | None = None):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"mosquitto_sub: nothing on {topic!r} within {timeout}s; "
                                     f"output:\n" + "\n".join(self.lines[-30:]))
            try:
                m = self.msgs.get(timeout=left)
            except queue.Empty:
                continue
            if m[0] == topic:
                return m
            if others is not None:
                others.append(m)

    def drain(self, duration: float) -> list:
        deadline = time.monotonic() + duration
        got = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            try:
                got.append(self.msgs.get(timeout=left))
            except queue.Empty:
                pass

    def stop(self):
        stop_process(self.p)
        self.t.join(5)


def stop_process(p: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 5 s: a child process of a test, by its PID."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def mosquitto_pub(args: list[str], timeout: float = 20) -> subprocess.CompletedProcess:
    """Runs mosquitto_pub -d ARGS; stdout and stderr merged in .stdout."""
    return subprocess.run(["mosquitto_pub", "-d", *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


def mosq_target(broker, transport: str = "tcp", host: str = "127.0.0.1") -> list[str]:
    args = ["-h", host, "-p", str(broker.port(transport))]
    if transport == "tls":
        args += ["--cafile", str(broker.ca)]
    return args


def mosq_auth(broker) -> list[str]:
    return ["-u", broker.user, "-P", broker.password]


# Colour codes, in case a broker logs with them.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_text(broker) -> str:
    """The broker's log (`broker.log_text()`) without ANSI colour codes."""
    return ANSI.sub("", broker.log_text())


def log_lines(broker, pattern: str) -> list[str]:
    """The lines of the broker's log (without colour codes) in which the regular
    expression `pattern` is found."""
    rx = re.compile(pattern)
    return [line for line in log_text(broker).splitlines() if rx.search(line)]


def wait_log(broker, pattern: str, count: int = 1, timeout: float = 15.0, *,
             alive: bool = False) -> list[str]:
    """Polls the broker's log until at least `count` lines match the regular
    expression `pattern` (see `log_lines`) and returns them; AssertionError with the
    lines found and the end of the log after `timeout` seconds. `alive`: also fail
    as soon as the broker process has exited."""
    deadline = time.monotonic() + timeout
    while True:
        found = log_lines(broker, pattern)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} log line(s) matching {pattern!r} expected within {timeout}s, "
                                 f"got {len(found)}:\n" + "\n".join(found)
                                 + f"\n--- end of the log ---\n{log_text(broker)[-5000:]}")
        if alive:
            assert broker.alive(), f"the broker died:\n{log_text(broker)[-5000:]}"
        time.sleep(0.05)


__all__ = ["Paho", "Clients", "MosqSub", "mosquitto_pub", "mosq_target", "mosq_auth", "uniq",
           "props", "PacketTypes", "SubscribeOptions", "V311", "V5", "V31", "QUIET",
           "TRANSPORTS", "prove_live_then_quiet", "rc_value", "ANSI", "log_text", "log_lines",
           "wait_log"]
