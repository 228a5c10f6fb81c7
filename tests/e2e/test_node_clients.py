"""MQTT.js (npm `mqtt` 5.x, tests/clients/node) from Node over ws and wss.

wss verifies the broker's certificate against its generated CA, and fails
against a CA that did not sign it. The websocket path does not matter: `/`
(where the viewer's page is) upgrades as well as `/mqtt`.
"""

import subprocess

import pytest

from helpers import uniq
from real_clients import NODE_DIR, JsonLines, node

CASES = [("ws", "/mqtt"), ("ws", "/"), ("wss", "/mqtt"), ("wss", "/")]


def mqttjs_subscriber(broker, tmp_path, transport: str, path: str, topic: str,
                      ca: str | None = None) -> JsonLines:
    url = f"{transport}://127.0.0.1:{broker.port(transport)}{path}"
    cmd = [node(), str(NODE_DIR / "subscribe.js"), url, topic]
    if transport == "wss":
        cmd.append(ca or str(broker.ca))
    return JsonLines(cmd, tmp_path / f"mqttjs-{transport}.stderr", cwd=NODE_DIR)


@pytest.mark.parametrize("transport,path", CASES, ids=[f"{t}{p}" for t, p in CASES])
def test_mqttjs_subscriber_receives_events(broker, clients, tmp_path, transport, path):
    base = uniq()
    sub = mqttjs_subscriber(broker, tmp_path, transport, path, base + "/#")
    try:
        ack = sub.wait_event(lambda e: e["event"] in ("subscribed", "error"), 20, "MQTT.js SUBACK")
        assert ack == {"event": "subscribed", "granted": [1]}, ack
        pub = clients.publisher()
        sent = [(f"{base}/event/{i}", f'{{"n": {i}, "via": "{transport}"}}') for i in range(5)]
        for topic, payload in sent:
            assert pub.publish(topic, payload.encode(), qos=1) == 0
        got = [sub.wait_event(lambda e: e["event"] == "message", 10, f"MQTT.js message {i}")
               for i in range(len(sent))]
        assert [(m["topic"], m["payload"]) for m in got] == sent, "every event, in order"
        assert not any(m["retain"] for m in got)
    finally:
        sub.stop()


def test_mqttjs_wss_refuses_a_certificate_its_ca_did_not_sign(broker, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(tmp_path / "other-ca.key"),
                    "-out", str(other_ca), "-days", "2", "-subj", "/CN=some other CA"],
                   check=True, capture_output=True, timeout=30)
    sub = mqttjs_subscriber(broker, tmp_path, "wss", "/mqtt", "#", ca=str(other_ca))
    try:
        event = sub.wait_event(lambda e: e["event"] in ("subscribed", "error"), 20,
                               "MQTT.js verdict on the certificate")
        assert event["event"] == "error", event
        assert "certificate" in event["message"], event
    finally:
        sub.stop()
