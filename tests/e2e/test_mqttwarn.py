"""mqttwarn (PyPI, in tests/.venv-mqttwarn) with its stock MQTT settings: MQTT 3.1,
anonymous, a retained last will on `clients/mqttwarn`, a retained "alive" status
there and `mqttwarn/$SYS/...` status messages on connect, notifications written by
its `file` service.

Anonymous clients may not publish: the broker refuses the will and the status
messages (never delivered, never retained) yet keeps mqttwarn connected, and
mqttwarn writes the events it receives to its file.
"""

import os

import pytest

from helpers import QUIET, prove_live_then_quiet, uniq
from real_clients import LineProcess, mqttwarn, wait_until

pytestmark = pytest.mark.firehose_only  # Mosquitto refuses such a CONNECT outright

# mqttwarn's own example configuration (`mqttwarn make-config`), MQTT settings
# unchanged but for the broker's address; services `file` and `log`.
CONFIG = """\
[defaults]
hostname     = '127.0.0.1'
port         = {port}
username     = None
password     = None
clientid     = 'mqttwarn'
lwt          = 'clients/mqttwarn'
skipretained = False
cleansession = False
protocol     = 3

logfile   = 'stream://sys.stderr'
loglevel  = DEBUG

launch    = file, log
status_publish = True

[config:file]
append_newline = True
targets = {{
    'events'    : ['{events}'],
    'mqttwarn'  : ['{errors}'],
    }}

[config:log]
targets = {{
    'info'   : [ 'info' ],
    'error'  : [ 'error' ]
  }}

[failover]
targets = log:error, file:mqttwarn

[ansible-events]
topic   = {topic}
targets = file:events, log:info
format  = {{topic}} {{payload}}
"""


def is_mqttwarn_status(m) -> bool:
    return m.topic == "clients/mqttwarn" or m.topic.startswith("mqttwarn/")


def test_mqttwarn_writes_events_to_its_file_and_its_will_and_status_are_refused(
        broker, clients, tmp_path):
    base = uniq()
    events_file = tmp_path / "events.txt"
    ini = tmp_path / "mqttwarn.ini"
    ini.write_text(CONFIG.format(port=broker.mqtt_port, events=events_file,
                                 errors=tmp_path / "mqttwarn.err", topic=base + "/#"))
    watcher = clients.anonymous()
    assert watcher.subscribe("#", 1) == [1]
    pub = clients.publisher()

    warn = LineProcess([mqttwarn()], tmp_path / "mqttwarn.log", cwd=tmp_path,
                       env=dict(os.environ, MQTTWARNINI=str(ini)))
    try:
        def written() -> list[str]:
            return events_file.read_text().splitlines() if events_file.exists() else []

        def probe_written():
            assert warn.p.poll() is None, "mqttwarn exited\n" + warn.output()
            pub.publish(base + "/probe", b"probe", qos=1)
            return f"{base}/probe probe" in written()

        # mqttwarn says nothing once subscribed: publish probes until one is written.
        wait_until(probe_written, 30, "mqttwarn wrote no probe to its file", interval=0.5)

        sent = [(f"{base}/playbook", '{"playbook": "site.yml", "status": "ok"}'),
                (f"{base}/host/web1", "unreachable"),
                (f"{base}/playbook", '{"playbook": "db.yml", "status": "failed"}')]
        for topic, payload in sent:
            assert pub.publish(topic, payload.encode(), qos=1) == 0
        expected = [f"{topic} {payload}" for topic, payload in sent]
        wait_until(lambda: [l for l in written() if "/probe " not in l] == expected, 15,
                   f"mqttwarn's file did not become {expected}")

        # Its status messages went out on connect, before the probe came back;
        # the will and the "alive" status are retained ones: none reached anyone.
        assert any("Publishing status information" in l for l in log_lines(warn))
        prove_live_then_quiet(watcher, pub, base + "/control", is_mqttwarn_status)

        # Still the first connection: never refused, dropped or reconnected.
        assert warn.p.poll() is None, warn.output()
        log = log_lines(warn)
        assert sum("Connected to MQTT broker" in l for l in log) == 1, warn.output()
        assert not any("Broker connection lost" in l or "disconnected" in l for l in log), \
            warn.output()

        # A dropped connection fires a will: were one kept, `clients/mqttwarn` would now go out.
        warn.p.kill()
        warn.p.wait(10)
        prove_live_then_quiet(watcher, pub, base + "/control-after-kill", is_mqttwarn_status)
    finally:
        warn.stop()

    # Nothing of mqttwarn's was retained: a new subscriber gets the retained control only.
    pub.publish(base + "/retained", b"retained control", qos=1, retain=True)
    late = clients.anonymous()
    assert late.subscribe("#", 1) == [1]
    m = late.wait_for(base + "/retained")
    assert m.retain and m.payload == b"retained control"
    late.drain(QUIET)
    assert not [m.topic for m in late.history if is_mqttwarn_status(m)]


def log_lines(process) -> list[str]:
    """mqttwarn's log (its stderr) as written so far."""
    return process.stderr_path.read_text(errors="replace").splitlines()
