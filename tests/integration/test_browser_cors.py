"""CORS in a real browser (issue 21, item 1): headless Chromium loads a page from one origin and
posts to the collector on another with fetch() and navigator.sendBeacon, in the shapes
analytics.js uses; a page from an origin the key does not allow cannot read the answers and
stores nothing. The records are read back from Kafka."""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from selenium import webdriver

from tests.integration.test_collector import topic_records
from tests.support.browser import headless_chromium
from tests.support.collector import Collector

pytestmark = pytest.mark.integration

KEY = "wk_browser_cors_4d8e2a61b7f3"
PAGE = b"<!doctype html><html><head><title>site</title></head><body>site</body></html>"

# runs in the page: every call of analytics.js's shapes, returning what the page could read
SCRIPT = """
const [collector, key, tag, done] = arguments;
const now = new Date().toISOString();
const call = (type, id, extra) => Object.assign({type, messageId: id, anonymousId: "anon-" + tag,
  userId: null, timestamp: now, sentAt: now, writeKey: key, integrations: {},
  context: {page: {path: "/", url: location.href, title: document.title}, userAgent: navigator.userAgent}}, extra);
// a cross-origin answer is readable only when it carries Access-Control-Allow-Origin for this page
const read = (p) => p.then(async (r) => ({status: r.status, body: await r.json()}), (e) => ({error: String(e)}));
const results = {};
results.track = await read(fetch(collector + "/v1/t", {method: "post", headers: {"Content-Type": "text/plain"},
  keepalive: true, body: JSON.stringify(call("track", tag + "-t", {event: "Pricing Viewed"}))}));
const batch = [call("page", tag + "-b1", {name: "Home"}), call("identify", tag + "-b2", {userId: "u-" + tag})];
batch.forEach((c) => delete c.sentAt);
results.batch = await read(fetch(collector + "/v1/b", {method: "post", headers: {"Content-Type": "text/plain"},
  body: JSON.stringify({writeKey: key, batch, sentAt: now})}));
// not a simple request: the browser sends a preflight first
const auth = "Basic " + btoa(key + ":");
const json = call("group", tag + "-g", {groupId: "acct-" + tag, userId: "u-" + tag});
delete json.writeKey;
results.preflighted = await read(fetch(collector + "/v1/group", {method: "POST",
  headers: {"Content-Type": "application/json", "Authorization": auth}, body: JSON.stringify(json)}));
results.beacon = navigator.sendBeacon(collector + "/v1/p", JSON.stringify(call("page", tag + "-beacon", {name: "Bye"})));
done(results);
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None: ...


def serve_page(root: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def chromium() -> Iterator[webdriver.Chrome]:
    with headless_chromium("cors") as driver:
        yield driver


def inbound_ids(tracker, want: set[str], timeout: float = 20) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = {orjson.loads(r.value)["messageId"] for r in topic_records(tracker, "journeys-inbound-v1")}
        if want <= ids or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


def test_a_page_on_an_allowed_origin_posts_and_reads_answers_another_cannot(tracker_factory, chromium,
                                                                            tmp_path: Path) -> None:
    (tmp_path / "index.html").write_bytes(PAGE)
    site, site_url = serve_page(tmp_path)
    evil, evil_url = serve_page(tmp_path)  # same page, another port: another origin
    tracker = tracker_factory()  # its broker and topics only
    collector = Collector(tracker, {KEY: {"source": "website", "allow": ["segment"], "origins": [site_url]}}).start()
    try:
        chromium.get(site_url + "/index.html")
        ok = chromium.execute_async_script(SCRIPT, collector.url, KEY, "site")
        for name in ("track", "batch", "preflighted"):
            assert ok[name] == {"status": 200, "body": {"success": True}}, (name, ok)
        assert ok["beacon"] is True

        chromium.get(evil_url + "/index.html")
        refused = chromium.execute_async_script(SCRIPT, collector.url, KEY, "evil")
        for name in ("track", "batch", "preflighted"):  # the browser hides the 403 (no CORS headers)
            assert "error" in refused[name] and "TypeError" in refused[name]["error"], (name, refused)

        want = {"site-t", "site-b1", "site-b2", "site-g", "site-beacon"}
        ids = inbound_ids(tracker, want)
        assert ids == want, ids  # nothing from the other origin: its requests were 403s (or never sent)
        assert topic_records(tracker, "journeys-inbound-v1-dlq") == []
    finally:
        collector.stop()
        site.shutdown()
        evil.shutdown()


# -- the real analytics.js: `make tools` fetches it from npm (Makefile ANALYTICS_JS) ---------------
ANALYTICS_JS = os.environ.get("JOURNEYS_TEST_ANALYTICS_JS") or str(
    Path(__file__).resolve().parents[2] / ".cache" / "npm" / "analytics-next-1.84.3" / "package" / "dist" / "umd"
    / "index.js")
LOADER = """<!doctype html><html><head><title>Pricing</title><script src="/analytics.js"></script><script>
const writeKey = "%(key)s", collector = {apiHost: "%(host)s/v1", protocol: "http"};
window.ajs = AnalyticsNext.AnalyticsBrowser.load(
  {writeKey, cdnSettings: {integrations: {"Segment.io": {apiKey: writeKey, ...collector}}, metrics: {sampleRate: 0}}},
  {integrations: {"Segment.io": collector}});
</script></head><body>pricing</body></html>"""
CALLS = """
const done = arguments[arguments.length - 1];
(async () => {
  const sent = [];
  for (const call of [() => ajs.page("Pricing"), () => ajs.track("Pricing Viewed", {plan: "enterprise"}),
                      () => ajs.identify("u-ajs", {email: "ann@initech.example"}),
                      () => ajs.group("acct-ajs", {name: "Initech"}), () => ajs.alias("u-ajs-2")]) {
    const ctx = await call();
    sent.push([ctx.event.type, ctx.event.messageId]);
  }
  return sent;
})().then(done, (e) => done(String(e)));
"""


def test_the_real_analytics_js_with_the_documented_settings(tracker_factory, chromium, tmp_path: Path) -> None:
    """docs/ingestion.md "From a web page": analytics.js, settings inline (no Segment CDN), apiHost
    pointing at the collector; every call lands on Kafka, none retried."""
    assert Path(ANALYTICS_JS).is_file(), f"{ANALYTICS_JS} is missing: `make tools` fetches it (npm pack)"
    shutil.copy(ANALYTICS_JS, tmp_path / "analytics.js")
    site, site_url = serve_page(tmp_path)
    tracker = tracker_factory()
    collector = Collector(tracker, {KEY: {"source": "website", "allow": ["segment"], "origins": [site_url]}}).start()
    try:
        (tmp_path / "index.html").write_text(LOADER % {"key": KEY, "host": collector.url.removeprefix("http://")})
        chromium.get(site_url + "/index.html")
        sent = chromium.execute_async_script(CALLS)
        assert [kind for kind, _ in sent] == ["page", "track", "identify", "group", "alias"], sent
        ids = {message_id for _, message_id in sent}
        assert inbound_ids(tracker, ids) == ids
        time.sleep(2)  # a failed send would be retried from analytics.js's queue: none is
        records = [orjson.loads(r.value) for r in topic_records(tracker, "journeys-inbound-v1")]
        assert len(records) == 5 and all(r["context"]["library"]["name"] == "analytics.js" for r in records)
        assert topic_records(tracker, "journeys-inbound-v1-dlq") == []

        # a worker stitches them: the anonymous page and track (before identify) are on the
        # account's timeline with the group call, and so is the identify: its work email names
        # the email domain's account, merged into the group's account the person is found in
        tracker.start()
        tracker.wait_for_stored(events=5)
        by_type = {kind: message_id for kind, message_id in sent}
        tracker.wait_until(lambda: set(by_type.values()) <= {
            r["event_id"] for r in json.loads(tracker.journeys("timeline", "acct-ajs", "--format", "json").stdout)},
            60, "all five calls on acct-ajs's timeline")
        rows = json.loads(tracker.journeys("timeline", "acct-ajs", "--format", "json").stdout)
        anonymous = [r for r in rows if r["event_id"] == by_type["page"]]
        assert anonymous and anonymous[0]["anonymous_id"] and not anonymous[0]["user_id"]  # stitched, not tagged
    finally:
        collector.stop()
        site.shutdown()
