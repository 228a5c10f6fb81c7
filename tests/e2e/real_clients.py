"""Helpers for the tests that run the clients firehose users already run:
mqttwarn, Go's paho.mqtt.golang, MQTT.js from Node, and the live event viewer
in headless Chromium.

tests/run installs every one of them; a test whose tool is missing fails with
a message naming it and how to install it (never skips). Child processes are
started here and stopped by their PID (`stop_process`).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import stop_process

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "clients" / "node"
GO_EXAMPLE = REPO / "tests" / "clients" / "go" / "subscribe" / "main.go"
GO_PAHO = Path("/usr/share/gocode/src/github.com/eclipse/paho.mqtt.golang")
# Screenshots and other files worth looking at after a run (gitignored).
ARTIFACTS = REPO / "target" / "test-artifacts"


def require_tool(path: str | Path | None, what: str, install: str) -> str:
    """`path` as a string when it is an executable file, else fail naming `what`."""
    if path is None or not os.access(path, os.X_OK) or not Path(path).is_file():
        pytest.fail(f"{what} is missing ({path or 'not on PATH'}): {install} (tests/run does)")
    return str(path)


def node() -> str:
    exe = require_tool(shutil.which("node"), "node", "apt-get install nodejs npm")
    if not (NODE_DIR / "node_modules" / "mqtt").is_dir():
        pytest.fail(f"{NODE_DIR}/node_modules is missing: run `npm ci` in {NODE_DIR} (tests/run does)")
    return exe


def chromium() -> str:
    return require_tool(os.environ.get("CHROMIUM", "/usr/bin/chromium"), "chromium",
                        "apt-get install chromium")


def mqttwarn() -> str:
    default = REPO / "tests" / ".venv-mqttwarn" / "bin" / "mqttwarn"
    return require_tool(os.environ.get("MQTTWARN_BIN", default), "mqttwarn",
                        "python3 -m venv tests/.venv-mqttwarn && "
                        "tests/.venv-mqttwarn/bin/pip install mqttwarn")


def go() -> str:
    exe = require_tool(shutil.which("go"), "go", "apt-get install golang-go")
    if not GO_PAHO.is_dir():
        pytest.fail(f"{GO_PAHO} is missing: apt-get install golang-github-eclipse-paho.mqtt.golang-dev "
                    "(tests/run does)")
    return exe


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    """Polls `condition()` until it returns something truthy (returned), or fails
    after `timeout` seconds saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(interval)


class LineProcess:
    """A child process whose stdout lines are collected by a thread; stderr goes
    to a file. `stop()` ends it by its PID."""

    def __init__(self, cmd: list[str], stderr_path: Path, cwd: Path | None = None,
                 env: dict | None = None, stdin=subprocess.DEVNULL):
        self.cmd = cmd
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=self._stderr,
                                  cwd=cwd, env=env, text=True, bufsize=1)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self.p.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)  # end of output

    def output(self) -> str:
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return ("stdout:\n" + "\n".join(self.lines[-40:]) + "\nstderr:\n" + err[-4000:])

    def next_line(self, timeout: float) -> str | None:
        """The next stdout line, or None after `timeout` seconds or at end of output."""
        try:
            line = self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if line is None:
            self._queue.put(None)  # stays at the end for the next caller
        return line

    def wait_line(self, predicate, timeout: float, what: str) -> str:
        """The next line satisfying `predicate`; earlier ones are consumed."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            line = self.next_line(left) if left > 0 else None
            if line is not None and predicate(line):
                return line
            if line is None:
                why = ("its output ended" if not self._thread.is_alive()
                       else f"not within {timeout}s")
                raise AssertionError(f"{what}: {why} (exit status {self.p.poll()}: {self.cmd})\n"
                                     + self.output())

    def stop(self):
        try:
            stop_process(self.p)
            self._thread.join(5)
        finally:
            self._stderr.close()


class JsonLines(LineProcess):
    """A LineProcess that prints one JSON object a line (tests/clients/node)."""

    def wait_event(self, predicate, timeout: float, what: str) -> dict:
        line = self.wait_line(lambda l: _json_or_none(l) is not None and predicate(json.loads(l)),
                              timeout, what)
        return json.loads(line)

    def events(self) -> list[dict]:
        return [e for e in map(_json_or_none, list(self.lines)) if e is not None]


def _json_or_none(line: str):
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class ViewerBrowser:
    """tests/clients/node/viewer_driver.js: headless Chromium showing the viewer,
    one JSON command at a time."""

    def __init__(self, tmp: Path):
        chromium()
        self.tmp = tmp
        profile = tmp / "chromium-profile"
        profile.mkdir()
        env = dict(os.environ, CHROMIUM=chromium())
        self.proc = JsonLines([node(), str(NODE_DIR / "viewer_driver.js"), str(profile)],
                              tmp / "viewer_driver.stderr", cwd=NODE_DIR, env=env,
                              stdin=subprocess.PIPE)
        self._id = 0

    def call(self, cmd: str, timeout: float = 30, **args) -> dict:
        self._id += 1
        request = dict(args, id=self._id, cmd=cmd)
        try:
            self.proc.p.stdin.write(json.dumps(request) + "\n")
            self.proc.p.stdin.flush()
        except BrokenPipeError:
            raise AssertionError(f"viewer driver exited before {cmd}\n" + self.proc.output()) from None
        answer = self.proc.wait_event(lambda e: e.get("id") == self._id, timeout,
                                      f"viewer driver answer to {request}")
        assert answer["ok"], f"viewer driver: {cmd} failed: {answer.get('error')}"
        return answer

    def state(self) -> dict:
        return self.call("state")

    def wait_state(self, condition, what: str, timeout: float = 15) -> dict:
        """Polls the page until `condition(state)` holds; fails with the last state."""
        last: dict = {}

        def check():
            nonlocal last
            last = self.state()
            return condition(last)

        try:
            wait_until(check, timeout, what, interval=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}; the page shows: {json.dumps(last, indent=1)[:4000]}") from None
        return last

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        path.unlink(missing_ok=True)
        self.call("screenshot", path=str(path))
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, f"{path} is no screenshot"
        return path

    def close(self):
        try:
            if self.proc.p.poll() is None:
                self.call("close", timeout=15)
        except AssertionError:
            pass
        finally:
            self.proc.stop()
