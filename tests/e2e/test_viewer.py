"""The live event viewer (`/` on the ws and wss listeners) in headless Chromium.

The page is driven by tests/clients/node/viewer_driver.js (playwright-core with
Debian's chromium, a fresh profile, requests to other hosts aborted); events are
published by the authenticated publisher over plain MQTT. Screenshots go to
target/test-artifacts/.
"""

import json
import re
import ssl
import urllib.error
import urllib.request

import pytest

from helpers import uniq
from real_clients import ViewerBrowser

pytestmark = pytest.mark.firehose_only

SCHEMES = {"http": ("ws", "ws"), "https": ("wss", "wss")}  # page scheme: (listener, websocket scheme)
CLOCK = re.compile(r"^\d\d:\d\d:\d\d\.\d\d\d$")


@pytest.fixture
def browser(tmp_path):
    b = ViewerBrowser(tmp_path)
    yield b
    b.close()


def page_url(broker, scheme: str, query: str = "") -> str:
    return f"{scheme}://127.0.0.1:{broker.port(SCHEMES[scheme][0])}/{query}"


def open_live(browser, url: str, topic: str = "#") -> dict:
    assert browser.call("open", url=url)["status"] == 200
    return browser.wait_state(lambda s: s["statusState"] == "live" and s["status"] == f"live: {topic}",
                              f"the page subscribed to {topic}")


def shown_topics(state) -> list[str]:
    return [e["topic"] for e in state["events"]]


def assert_clean(state):
    assert state["pageErrors"] == [] and state["consoleErrors"] == [], state
    assert state["external"] == [], "the page asked for something outside the broker"
    assert state["foreignElements"] == [], "payload text became HTML elements"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_viewer_shows_events_as_they_arrive(broker, clients, browser, scheme):
    base = uniq()
    pub = clients.publisher()
    retained_topic = base + "/retained"
    pub.publish(retained_topic, b'{"kept": "for new subscribers"}', qos=1, retain=True)
    state = open_live(browser, page_url(broker, scheme))
    ws_port = broker.port(SCHEMES[scheme][0])
    assert state["websockets"] == [f"{SCHEMES[scheme][1]}://127.0.0.1:{ws_port}/mqtt"], \
        "the page connects back to its own host and port, wss when loaded over https"
    state = browser.wait_state(lambda s: s["count"] == "1", "the retained event shown")
    assert shown_topics(state) == [retained_topic] and state["events"][0]["retained"]

    events = [
        (base + "/deploy", {"playbook": "site.yml", "host": "web1", "changed": 3, "ok": True}),
        (base + "/facts", {"hosts": ["web1", "web2"], "nested": {"empty": [], "n": None}}),
    ]
    for topic, body in events:
        assert pub.publish(topic, json.dumps(body).encode(), qos=1) == 0
    text_topic, html_topic = base + "/text", base + "/html"
    pub.publish(text_topic, b"plain text, not JSON {", qos=1)
    pub.publish(html_topic, b'<img src=x onerror="document.title=1"><b>bold</b>', qos=1)

    state = browser.wait_state(lambda s: s["count"] == "5" and len(s["events"]) == 5,
                               "four more events shown")
    assert shown_topics(state) == [html_topic, text_topic, events[1][0], events[0][0],
                                   retained_topic], "newest first"
    by_topic = {e["topic"]: e for e in state["events"]}
    for topic, body in events:
        shown = by_topic[topic]
        assert shown["kind"] == "json"
        assert shown["payload"] == json.dumps(body, indent=2), "pretty-printed JSON"
        assert CLOCK.match(shown["time"]), shown["time"]
        assert shown["datetime"].endswith("Z") and not shown["retained"]
    assert by_topic[text_topic]["kind"] == "text"
    assert by_topic[text_topic]["payload"] == "plain text, not JSON {"
    assert by_topic[html_topic]["payload"] == '<img src=x onerror="document.title=1"><b>bold</b>'
    assert_clean(state)
    browser.screenshot(f"viewer-{scheme}.png")


def test_viewer_pause_holds_events_until_resumed(broker, clients, browser):
    base = uniq()
    open_live(browser, page_url(broker, "http"), "#")
    pub = clients.publisher()
    pub.publish(base + "/before", b'{"n": 1}', qos=1)
    browser.wait_state(lambda s: shown_topics(s) == [base + "/before"], "the first event shown")

    browser.call("click", selector="#pause")
    state = browser.wait_state(lambda s: s["paused"], "paused")
    assert state["pauseLabel"] == "Resume" and state["held"] == "paused: 0 held"

    pub.publish(base + "/while-1", b'{"n": 2}', qos=1)
    pub.publish(base + "/while-2", b'{"n": 3}', qos=1)
    # The control: both arrived (counted and held) ...
    state = browser.wait_state(lambda s: s["held"] == "paused: 2 held" and s["count"] == "3",
                               "two events held while paused")
    # ... and are not shown.
    assert shown_topics(state) == [base + "/before"], "events shown while paused"
    browser.screenshot("viewer-paused.png")

    browser.call("click", selector="#pause")
    state = browser.wait_state(lambda s: not s["paused"] and len(s["events"]) == 3,
                               "held events shown on resume")
    assert shown_topics(state) == [base + "/while-2", base + "/while-1", base + "/before"]
    assert state["held"] is None and state["count"] == "3" and state["pauseLabel"] == "Pause"

    pub.publish(base + "/after", b'{"n": 4}', qos=1)
    state = browser.wait_state(lambda s: len(s["events"]) == 4, "live again after resume")
    assert shown_topics(state)[0] == base + "/after" and state["count"] == "4"
    assert_clean(state)


def test_viewer_topic_filter_is_typed_kept_in_the_address_and_checked(broker, clients, browser):
    base = uniq()
    open_live(browser, page_url(broker, "https"), "#")
    wanted = base + "/wanted/#"
    browser.call("fill", selector="#filter", value=wanted)
    browser.call("click", selector="#subscribe")
    state = browser.wait_state(lambda s: s["status"] == f"live: {wanted}", "subscribed to the filter")
    assert state["url"].endswith("/?topic=" + wanted.replace("/", "%2F").replace("#", "%23"))

    pub = clients.publisher()
    pub.publish(base + "/other/x", b'{"skip": true}', qos=1)
    pub.publish(base + "/wanted/x", b'{"keep": true}', qos=1)  # the control, after the other
    state = browser.wait_state(lambda s: base + "/wanted/x" in shown_topics(s), "the wanted event")
    assert shown_topics(state) == [base + "/wanted/x"] and state["count"] == "1", \
        "only the typed filter is subscribed"

    # Reloading the address keeps the filter.
    reloaded = open_live(browser, state["url"], wanted)
    assert reloaded["events"] == [] and reloaded["count"] == "0"

    # A filter the broker refuses (anonymous may not read $SYS) is reported.
    browser.call("fill", selector="#filter", value="$SYS/#")
    browser.call("click", selector="#subscribe")
    state = browser.wait_state(lambda s: s["statusState"] == "error", "the refusal reported")
    assert state["status"].startswith("subscribing to $SYS/# failed: "), state["status"]
    assert_clean(state)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_viewer_files_and_404_over_http_and_https(broker, scheme):
    context = ssl.create_default_context(cafile=str(broker.ca)) if scheme == "https" else None
    base = page_url(broker, scheme)

    def get(path):
        try:
            with urllib.request.urlopen(base + path.lstrip("/"), timeout=10, context=context) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()

    status, ctype, body = get("/")
    assert (status, ctype) == (200, "text/html; charset=utf-8") and b"Firehose live events" in body
    assert get("/index.html")[2] == body
    status, ctype, body = get("/mqtt.min.js")
    assert (status, ctype) == (200, "text/javascript; charset=utf-8") and b'"5.16.0"' in body
    assert get("/viewer.js")[:2] == (200, "text/javascript; charset=utf-8")
    assert get("/viewer.css")[:2] == (200, "text/css; charset=utf-8")
    assert get("/nothing-here")[:2] == (404, "text/plain; charset=utf-8")
