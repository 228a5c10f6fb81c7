// Drives the broker's live event viewer in headless Chromium for the
// end-to-end suite (tests/e2e/test_viewer.py), one command at a time.
//
// Usage: node viewer_driver.js USER_DATA_DIR
// Reads one JSON command a line on stdin, answers each with one JSON line on
// stdout: {"id":N,"ok":true,...} or {"id":N,"ok":false,"error":"..."}.
//   {"id":1,"cmd":"open","url":"https://127.0.0.1:PORT/"}   load the page
//   {"id":2,"cmd":"state"}                                   what the page shows
//   {"id":3,"cmd":"fill","selector":"#filter","value":"a/#"}
//   {"id":4,"cmd":"click","selector":"#pause"}
//   {"id":5,"cmd":"screenshot","path":"/abs/file.png"}
//   {"id":6,"cmd":"close"}                                   close and exit
// Chromium is Debian's (/usr/bin/chromium, or CHROMIUM), with a fresh
// profile in USER_DATA_DIR. Requests to any host but 127.0.0.1 are aborted
// and reported in "state" as "external": the page must need none. "state"
// also lists the websockets the page opened, and its errors.
"use strict";

const readline = require("node:readline");
const { chromium } = require("playwright-core");

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const STEP_TIMEOUT_MS = 15000;

const userDataDir = process.argv[2];
if (!userDataDir) {
  process.stderr.write("usage: node viewer_driver.js USER_DATA_DIR\n");
  process.exit(2);
}

const pageErrors = [];
const consoleErrors = [];
const external = [];
const websockets = [];

// What the viewer shows, read from its DOM (ids and classes of index.html / viewer.js).
function readPage() {
  const text = (id) => document.getElementById(id).textContent;
  return {
    url: location.href,
    status: text("status"),
    statusState: document.getElementById("status").dataset.state || "",
    count: text("count"),
    held: document.getElementById("held").hidden ? null : text("held"),
    pauseLabel: text("pause"),
    paused: document.getElementById("pause").getAttribute("aria-pressed") === "true",
    events: Array.from(document.querySelectorAll("#events > li"), (li) => ({
      topic: li.querySelector(".topic").textContent,
      time: li.querySelector("time").textContent,
      datetime: li.querySelector("time").dateTime,
      retained: li.querySelector(".tag") !== null,
      kind: li.querySelector(".payload").className.replace("payload", "").trim(),
      payload: li.querySelector(".payload").textContent,
    })),
    // Elements inside the list that viewer.js does not create: HTML from a payload.
    foreignElements: Array.from(document.querySelectorAll("#events *"))
      .map((e) => e.tagName.toLowerCase())
      .filter((tag) => !["li", "div", "time", "span", "pre"].includes(tag)),
  };
}

async function main() {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    ignoreHTTPSErrors: true,
    viewport: { width: 1100, height: 800 },
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  await context.route("**/*", (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === "127.0.0.1") return route.continue();
    external.push(route.request().url());
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("websocket", (ws) => websockets.push(ws.url()));
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(msg.text());
  });

  const commands = {
    async open({ url }) {
      const response = await page.goto(url, { waitUntil: "domcontentloaded" });
      return { status: response ? response.status() : null };
    },
    async state() {
      const shown = await page.evaluate(readPage);
      return { ...shown, websockets, pageErrors, consoleErrors, external };
    },
    async fill({ selector, value }) {
      await page.fill(selector, value);
      return {};
    },
    async click({ selector }) {
      await page.click(selector);
      return {};
    },
    async screenshot({ path }) {
      await page.screenshot({ path, fullPage: true });
      return { path };
    },
    async close() {
      await context.close();
      return {};
    },
  };

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let request = {};
    try {
      request = JSON.parse(line);
      const command = commands[request.cmd];
      if (!command) throw new Error(`unknown command ${JSON.stringify(request.cmd)}`);
      const result = await command(request);
      process.stdout.write(JSON.stringify({ id: request.id, ok: true, ...result }) + "\n");
      if (request.cmd === "close") break;
    } catch (err) {
      process.stdout.write(
        JSON.stringify({ id: request.id, ok: false, error: String(err && err.stack) }) + "\n",
      );
    }
  }
  await context.close().catch(() => {});
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`viewer_driver: ${err && err.stack}\n`);
  process.exit(1);
});
