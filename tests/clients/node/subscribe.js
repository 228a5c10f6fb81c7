// An MQTT.js subscriber for the end-to-end suite (tests/e2e/test_node_clients.py).
//
// Usage: node subscribe.js URL FILTER [CA_FILE]
//   URL      ws://127.0.0.1:PORT/PATH or wss://127.0.0.1:PORT/PATH
//   FILTER   the topic filter to subscribe to (QoS 1)
//   CA_FILE  for wss: the CA certificate the broker's certificate must verify
//            against (verification is never switched off)
//
// Prints one JSON object a line on stdout: {"event":"subscribed","granted":[...]}
// once the SUBACK arrived, {"event":"message","topic":...,"payload":...,"retain":...}
// for each message (payload as UTF-8 text), {"event":"error","message":...}
// on a client error (then exits 1). Runs until SIGTERM.
"use strict";

const fs = require("node:fs");
const mqtt = require("mqtt");

const [url, filter, caFile] = process.argv.slice(2);
if (!url || !filter) {
  process.stderr.write("usage: node subscribe.js URL FILTER [CA_FILE]\n");
  process.exit(2);
}

const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const options = { protocolVersion: 4, clean: true, reconnectPeriod: 0, connectTimeout: 10000 };
if (caFile) {
  options.ca = fs.readFileSync(caFile);
  options.rejectUnauthorized = true;
}

const client = mqtt.connect(url, options);
client.on("connect", () => {
  client.subscribe(filter, { qos: 1 }, (err, granted) => {
    if (err) {
      say({ event: "error", message: `subscribe: ${err.message}` });
      process.exit(1);
    }
    say({ event: "subscribed", granted: granted.map((g) => g.qos) });
  });
});
client.on("message", (topic, payload, packet) => {
  say({ event: "message", topic, payload: payload.toString("utf8"), retain: packet.retain });
});
client.on("error", (err) => {
  say({ event: "error", message: err.message });
  process.exit(1);
});
client.on("close", () => say({ event: "closed" }));
process.on("SIGTERM", () => client.end(false, {}, () => process.exit(0)));
