"""The Go example of the original user guide (paho.mqtt.golang, Debian's
golang-github-eclipse-paho.mqtt.golang-dev) against the broker, unchanged but
for its address: tests/clients/go/subscribe/main.go."""

import os
import subprocess

from helpers import uniq
from real_clients import GO_EXAMPLE, REPO, LineProcess, go, wait_until

GUIDE_ADDRESS = "tcp://127.0.0.1:1883"


def build_example(broker, tmp_path) -> str:
    source = GO_EXAMPLE.read_text()
    assert source.count(GUIDE_ADDRESS) == 1, f"{GO_EXAMPLE} no longer connects to {GUIDE_ADDRESS}"
    build = tmp_path / "go-example"
    build.mkdir()
    (build / "main.go").write_text(source.replace(GUIDE_ADDRESS, f"tcp://127.0.0.1:{broker.mqtt_port}"))
    env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off",
               GOCACHE=str(REPO / "target" / "go-build-cache"), GOFLAGS="")
    r = subprocess.run([go(), "build", "-o", "subscribe", "main.go"], cwd=build, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"go build of the user guide's example failed:\n{r.stdout}{r.stderr}"
    return str(build / "subscribe")


def test_user_guide_go_example_prints_the_events(broker, clients, tmp_path):
    binary = build_example(broker, tmp_path)
    example = LineProcess([binary], tmp_path / "go-example.stderr")
    try:
        pub = clients.publisher()
        base = uniq()
        # The example prints nothing once subscribed: publish probes until one is printed.
        probe = base + "/probe"

        def probe_printed():
            assert example.p.poll() is None, "the Go example exited\n" + example.output()
            pub.publish(probe, b"probe", qos=1)
            return f"TOPIC: {probe}" in example.lines

        wait_until(probe_printed, 20, "the Go example printed no probe", interval=0.3)

        sent = [(f"{base}/gerrit/comment-added", '{"change": 4711, "author": "jane"}'),
                (f"{base}/launchpad/bug", "bug 1234 updated"),
                (f"{base}/ansible/playbook", '{"status": "ok"}')]
        for topic, payload in sent:
            assert pub.publish(topic, payload.encode(), qos=1) == 0
        for topic, payload in sent:
            example.wait_line(lambda line, t=topic: line == f"TOPIC: {t}", 10, f"TOPIC: {topic}")
            assert example.next_line(5) == f"MSG: {payload}", example.output()
    finally:
        example.stop()
