// The live event viewer: subscribes, over MQTT on a websocket, to the broker
// that served this page and lists the events as they arrive, newest first.
//
// Text only: topics and payloads reach the page through textContent, never
// as HTML. While paused, arriving events are held (and counted) and shown in
// arrival order on resume.
"use strict";

(() => {
  const MAX_SHOWN = 500; // rows kept in the list; older rows are removed
  const MAX_HELD = 5000; // events held while paused; beyond, the oldest are dropped
  const MAX_PAYLOAD_CHARS = 64 * 1024; // longer payloads are cut for display
  const BINARY_PREVIEW = 64; // bytes of a non-UTF-8 payload shown as hex

  const byId = (id) => document.getElementById(id);
  const form = byId("subscribe-form");
  const filterInput = byId("filter");
  const pauseButton = byId("pause");
  const statusText = byId("status");
  const countText = byId("count");
  const heldText = byId("held");
  const list = byId("events");

  // Same host and port as the page: ws:// over http, wss:// over https.
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/mqtt`;

  let count = 0; // events received since the page opened: shown, held or dropped
  let paused = false;
  let held = [];
  let heldDropped = 0;
  let current = new URLSearchParams(location.search).get("topic") || filterInput.value;
  filterInput.value = current;

  function setStatus(text, state) {
    statusText.textContent = text;
    statusText.dataset.state = state;
  }

  if (typeof mqtt === "undefined") {
    setStatus("MQTT.js did not load (/mqtt.min.js)", "error");
    return;
  }
  const client = mqtt.connect(url, {
    clean: true,
    reconnectPeriod: 2000,
    connectTimeout: 10000,
    resubscribe: false, // "connect" subscribes again after every reconnect
  });
  setStatus(`connecting to ${url}`, "connecting");
  client.on("connect", () => subscribe(current, null));
  client.on("reconnect", () => setStatus(`reconnecting to ${url}`, "connecting"));
  client.on("offline", () => setStatus(`disconnected from ${url}, retrying`, "error"));
  client.on("error", (err) => setStatus(`error: ${err.message}`, "error"));
  client.on("message", (topic, payload, packet) => {
    count += 1;
    countText.textContent = String(count);
    const event = { topic, payload, retain: packet.retain, time: new Date() };
    if (paused) {
      hold(event);
    } else {
      show(event);
    }
  });

  function subscribe(filter, previous) {
    current = filter;
    if (!client.connected) return; // "connect" subscribes to `current`
    if (previous !== null && previous !== filter) client.unsubscribe(previous);
    setStatus(`subscribing to ${filter}`, "connecting");
    client.subscribe(filter, { qos: 0 }, (err, granted) => {
      if (filter !== current) return; // superseded by a newer filter
      if (err) {
        setStatus(`subscribing to ${filter} failed: ${err.message}`, "error");
      } else if (!granted.length || granted[0].qos >= 0x80) {
        setStatus(`the broker refused the filter ${filter}`, "error");
      } else {
        setStatus(`live: ${filter}`, "live");
      }
    });
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const filter = filterInput.value.trim();
    if (!filter) return;
    history.replaceState(null, "", `?topic=${encodeURIComponent(filter)}`);
    subscribe(filter, current);
  });

  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", String(paused));
    if (!paused) {
      const waiting = held;
      held = [];
      heldDropped = 0;
      waiting.forEach(show);
    }
    showHeld();
  });

  function hold(event) {
    held.push(event);
    if (held.length > MAX_HELD) {
      held.shift();
      heldDropped += 1;
    }
    showHeld();
  }

  function showHeld() {
    heldText.hidden = !paused;
    const dropped = heldDropped ? `, ${heldDropped} dropped` : "";
    heldText.textContent = `paused: ${held.length} held${dropped}`;
  }

  function show(event) {
    const item = element("li", "event");
    const meta = element("div", "meta");
    const time = element("time", "time", clock(event.time));
    time.dateTime = event.time.toISOString();
    meta.append(time, element("span", "topic", event.topic));
    if (event.retain) meta.append(element("span", "tag", "retained"));
    const shown = render(event.payload);
    item.append(meta, element("pre", `payload ${shown.kind}`, shown.text));
    list.prepend(item);
    while (list.childElementCount > MAX_SHOWN) list.lastElementChild.remove();
  }

  // The payload as text: JSON pretty-printed, UTF-8 as is, anything else hex.
  function render(bytes) {
    if (bytes.length === 0) return { kind: "empty", text: "(empty payload)" };
    let text;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      const preview = Array.from(bytes.subarray(0, BINARY_PREVIEW), (b) =>
        b.toString(16).padStart(2, "0"),
      ).join(" ");
      const more = bytes.length > BINARY_PREVIEW ? " …" : "";
      return { kind: "binary", text: `${bytes.length} bytes, not UTF-8: ${preview}${more}` };
    }
    if (text.length > MAX_PAYLOAD_CHARS) {
      const cut = text.slice(0, MAX_PAYLOAD_CHARS);
      return { kind: "text", text: `${cut}\n… (${bytes.length} bytes, cut for display)` };
    }
    try {
      return { kind: "json", text: JSON.stringify(JSON.parse(text), null, 2) };
    } catch {
      return { kind: "text", text };
    }
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(date) {
    const pad = (n, width) => String(n).padStart(width, "0");
    return `${pad(date.getHours(), 2)}:${pad(date.getMinutes(), 2)}:${pad(date.getSeconds(), 2)}` +
      `.${pad(date.getMilliseconds(), 3)}`;
  }
})();
