"""RudderStack's JS SDK in a real browser (issue 21, item 1): headless Chromium loads the real
``@rudderstack/analytics-js`` from npm (its bundled build, plugins inside), served locally with
the source configuration given inline — no control plane, no CDN — and ``dataPlaneUrl`` pointing
at the collector. The SDK posts JSON with HTTP Basic auth and ``AnonymousId``/``SentAt`` headers to
``/v1/page`` … after a CORS preflight. Every request the page makes is recorded (Chrome's
performance log): only the site and the collector are contacted. A page on an origin the key does
not allow stores nothing. The records are read back from Kafka and a worker stitches them."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
import requests
from selenium import webdriver

from tests.integration.test_browser_cors import inbound_ids, serve_page
from tests.integration.test_collector import topic_records
from tests.support.browser import headless_chromium
from tests.support.collector import Collector

pytestmark = pytest.mark.integration

KEY = "wk_browser_rudder_8c1f5e0a93d7"
# `make tools` fetches it from npm (Makefile RUDDER_JS); JOURNEYS_TEST_RUDDER_JS points at another build
RUDDER_JS = os.environ.get("JOURNEYS_TEST_RUDDER_JS") or str(
    Path(__file__).resolve().parents[2] / ".cache" / "npm" / "rudderstack-analytics-js-3.34.1" / "package" / "dist"
    / "npm" / "modern" / "bundled" / "umd" / "index.js")
# docs/ingestion.md "RudderStack's JS SDK": the source config inline (getSourceConfig), no destinations
LOADER = """<!doctype html><html><head><title>Pricing</title><script src="/rudder.js"></script><script>
window.rs = new rudderanalytics.RudderAnalytics();
rs.load("%(key)s", "%(collector)s", {
  getSourceConfig: () => ({source: {id: "website", name: "website", enabled: true, config: {}, destinations: []}}),
  logLevel: "ERROR"});
</script></head><body>pricing</body></html>"""
# page, track, identify, group, alias; each callback gets the event as the SDK built it
CALLS = """
const done = arguments[arguments.length - 1];
(async () => {
  await new Promise((resolve) => rs.ready(resolve));
  const sent = [];
  const calls = [(cb) => rs.page("Pricing", {plan: "enterprise"}, cb),
                 (cb) => rs.track("Pricing Viewed", {plan: "enterprise"}, cb),
                 (cb) => rs.identify("u-rs", {email: "ann@initech.example"}, cb),
                 (cb) => rs.group("acct-rs", {name: "Initech"}, cb),
                 (cb) => rs.alias("u-rs-2", cb)];
  for (const call of calls) {
    const event = await new Promise((resolve) => call(resolve));
    sent.push([event.type, event.messageId]);
  }
  return sent;
})().then(done, (e) => done(String(e)));
"""
SDK_HEADERS = "anonymousid,authorization,content-type,sentat"  # its preflight's Access-Control-Request-Headers


@pytest.fixture
def chromium() -> Iterator[webdriver.Chrome]:
    """Headless Chromium that records every network request (performance log)."""
    with headless_chromium("rudder", logs={"performance": "ALL"}) as driver:
        yield driver


def requests_made(driver: webdriver.Chrome) -> list[dict]:
    """Every request to the network since the last call (not chrome:, data:): method, url, headers,
    and the answer's status or, when it failed, the browser's CORS error."""
    made: dict[str, dict] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.requestWillBeSent":
            request = params["request"]
            if urlsplit(request["url"]).scheme in ("http", "https", "ws", "wss"):
                made[params["requestId"]] = {"method": request["method"], "url": request["url"],
                                             "headers": request.get("headers", {}), "status": None, "cors": None}
        elif message["method"] == "Network.responseReceived" and params["requestId"] in made:
            made[params["requestId"]]["status"] = params["response"]["status"]
        elif message["method"] == "Network.loadingFailed" and params["requestId"] in made:
            made[params["requestId"]]["cors"] = (params.get("corsErrorStatus") or {}).get("corsError")
    return list(made.values())


def test_the_real_rudderstack_sdk_without_its_cdn(tracker_factory, chromium, tmp_path: Path) -> None:
    assert Path(RUDDER_JS).is_file(), f"{RUDDER_JS} is missing: `make tools` fetches it (npm pack)"
    shutil.copy(RUDDER_JS, tmp_path / "rudder.js")
    site, site_url = serve_page(tmp_path)
    evil, evil_url = serve_page(tmp_path)  # same page, another port: another origin
    tracker = tracker_factory()
    collector = Collector(tracker, {KEY: {"source": "website", "allow": ["segment"], "origins": [site_url]}}).start()
    try:
        (tmp_path / "index.html").write_text(LOADER % {"key": KEY, "collector": collector.url})

        # the SDK's preflight, as it sends it: answered for the site, refused for another origin
        ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": SDK_HEADERS}
        resp = requests.options(collector.url + "/v1/page", headers={"Origin": site_url, **ask}, timeout=10)
        assert resp.status_code == 204 and resp.headers["Access-Control-Allow-Origin"] == site_url, resp.text
        allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
        assert set(SDK_HEADERS.split(",")) <= allowed, allowed
        resp = requests.options(collector.url + "/v1/page", headers={"Origin": evil_url, **ask}, timeout=10)
        assert resp.status_code == 403 and "Access-Control-Allow-Origin" not in resp.headers

        chromium.get(site_url + "/index.html")
        sent = chromium.execute_async_script(CALLS)
        assert [kind for kind, _ in sent] == ["page", "track", "identify", "group", "alias"], sent
        ids = {message_id for _, message_id in sent}
        assert inbound_ids(tracker, ids) == ids
        time.sleep(2)  # a failed delivery would be retried from the SDK's queue: none is

        # what the SDK sent: a preflight, then a POST per call to {dataPlaneUrl}/v1/<type> with
        # Basic auth and AnonymousId; nothing to RudderStack's control plane or CDN
        made = requests_made(chromium)
        hosts = {urlsplit(r["url"]).netloc for r in made}
        assert hosts <= {urlsplit(site_url).netloc, urlsplit(collector.url).netloc}, made
        posts = [r for r in made if r["method"] == "POST" and r["url"].startswith(collector.url)]
        assert [urlsplit(r["url"]).path for r in posts] == [f"/v1/{kind}" for kind, _ in sent], posts
        assert all(r["status"] == 200 for r in posts), posts
        auth = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
        assert all(r["headers"].get("Authorization") == auth and r["headers"].get("AnonymousId")
                   and r["headers"].get("SentAt") for r in posts), posts

        records = {orjson.loads(r.value)["messageId"]: orjson.loads(r.value)
                   for r in topic_records(tracker, "journeys-inbound-v1")}
        assert len(records) == 5 and set(records) == ids, records  # once each: no retry
        assert all(r["context"]["library"]["name"] == "RudderLabs JavaScript SDK" and r["originalTimestamp"]
                   and r["anonymousId"] and r["receivedAt"] for r in records.values())
        by_type = {kind: message_id for kind, message_id in sent}
        assert records[by_type["group"]]["groupId"] == "acct-rs" and records[by_type["group"]]["userId"] == "u-rs"
        assert records[by_type["page"]]["userId"] == ""  # the SDK's "no user yet", read as none
        assert topic_records(tracker, "journeys-inbound-v1-dlq") == []

        # another origin: the browser's preflight is refused, so the SDK never sends a call
        chromium.get(evil_url + "/index.html")
        refused = chromium.execute_async_script(CALLS)
        assert len(refused) == 5, refused  # the SDK queued them (and keeps retrying them)
        time.sleep(3)
        posts = [r for r in requests_made(chromium) if r["method"] == "POST" and r["url"].startswith(collector.url)]
        refusals = {(r["status"], r["cors"]) for r in posts}  # the 403 preflight has no Allow-Origin
        assert posts and refusals <= {(None, "PreflightMissingAllowOriginHeader"), (None, "PreflightInvalidStatus")}, \
            refusals
        assert "403 on preflight of /v1/page" in collector.log()
        assert {orjson.loads(r.value)["messageId"] for r in topic_records(tracker, "journeys-inbound-v1")} == ids

        # a worker stitches them: the anonymous page and track (before identify) are on the
        # account's timeline with the group and alias calls, and so is the identify — its email
        # (in context.traits, where this SDK puts traits) names domain:initech.example, which is
        # merged into the group's account the same person is found in
        tracker.start()
        tracker.wait_for_stored(events=5)
        tracker.wait_until(lambda: set(by_type.values()) <= {
            r["event_id"] for r in json.loads(tracker.journeys("timeline", "acct-rs", "--format", "json").stdout)},
            60, "all five calls on acct-rs's timeline")
        rows = json.loads(tracker.journeys("timeline", "acct-rs", "--format", "json").stdout)
        anonymous = [r for r in rows if r["event_id"] == by_type["page"]]
        assert anonymous and anonymous[0]["anonymous_id"] and not anonymous[0]["user_id"]  # stitched, not tagged
        identify = [r for r in rows if r["event_id"] == by_type["identify"]]
        assert identify and identify[0]["email"].endswith("@initech.example"), rows
    finally:
        collector.stop()
        site.shutdown()
        evil.shutdown()
