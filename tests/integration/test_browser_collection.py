"""Browser collection on the real collector and broker (issue 21, item 1): the exact requests
analytics.js (``@segment/analytics-next``, plugins/segmentio) and ``navigator.sendBeacon`` make —
short paths, ``Content-Type: text/plain``, ``writeKey`` in the body, an ``Origin`` header, CORS
preflights — and the records they leave on Kafka."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest
import requests

from streams.collector.settings import key_id
from tests.integration.test_collector import topic_records
from tests.support.collector import Collector

pytestmark = pytest.mark.integration

KEY, OTHER = "wk_browser_5c0ffee7d2a94b1e", "wk_partner_9e1b7c44aa03d5f2"
SITE, PARTNER, EVIL = "https://www.initech.example", "https://partner.example:8443", "https://evil.example"
TEXT = {"Content-Type": "text/plain"}  # analytics.js: fetch(url, {headers: {"Content-Type": "text/plain"}})
BEACON = {"Content-Type": "text/plain;charset=UTF-8"}  # navigator.sendBeacon(url, JSON.stringify(call))


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ajs(kind: str, message_id: str, **fields: object) -> dict:
    """One call as analytics.js's normalize() leaves it (writeKey, sentAt, _metadata, userId null)."""
    now = datetime.now(timezone.utc)
    return {"type": kind, "messageId": message_id, "timestamp": iso(now - timedelta(seconds=2)),
            "anonymousId": "0b7c6b52-anon", "userId": None, "integrations": {},
            "context": {"page": {"path": "/pricing", "referrer": "", "search": "?utm_source=ads", "title": "Pricing",
                                 "url": f"{SITE}/pricing?utm_source=ads"},
                        "campaign": {"source": "ads"}, "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
                        "locale": "en-US", "library": {"name": "analytics.js", "version": "next-1.84.3"}},
            "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
            "writeKey": KEY, "sentAt": iso(now), **fields}


def send(url: str, body: object, origin: str | None = SITE, headers: dict[str, str] = TEXT) -> requests.Response:
    sent = {**headers, **({"Origin": origin} if origin else {})}
    return requests.post(url, data=orjson.dumps(body), headers=sent, timeout=10)


def preflight(url: str, origin: str) -> requests.Response:
    return requests.options(url, timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})


def test_analytics_js_request_shapes_reach_kafka(tracker_factory) -> None:
    tracker = tracker_factory()  # only its broker and topics: the records are read back from Kafka
    collector = Collector(tracker, {
        KEY: {"source": "website", "allow": ["segment"], "origins": [SITE]},
        OTHER: {"source": "partner", "allow": ["segment"], "origins": [PARTNER]},
    }).start()
    v1 = collector.url + "/v1"
    try:
        resp = preflight(v1 + "/t", SITE)
        assert resp.status_code == 204, resp.text
        assert resp.headers["Access-Control-Allow-Origin"] == SITE and resp.headers["Vary"] == "Origin"
        assert resp.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
        allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
        # analytics.js needs Content-Type; RudderStack's SDK also Authorization, AnonymousId, SentAt
        assert {"content-type", "authorization", "anonymousid", "sentat"} <= allowed, allowed
        for origin in (EVIL, "null"):
            resp = preflight(v1 + "/b", origin)
            assert resp.status_code == 403 and "Access-Control-Allow-Origin" not in resp.headers

        # the standard dispatcher: one call per request to {apiHost}/<first letter of its type>
        calls = {"t": ajs("track", "ajs-next-t1", event="Pricing Viewed", properties={"plan": "enterprise"}),
                 "p": ajs("page", "ajs-next-p1", name="Pricing", category=None, properties={"path": "/pricing"}),
                 "i": ajs("identify", "ajs-next-i1", userId="u-42", traits={"email": "peter@initech.example"}),
                 "g": ajs("group", "ajs-next-g1", userId="u-42", groupId="acct-initech", traits={"name": "Initech"}),
                 "a": ajs("alias", "ajs-next-a1", previousId="0b7c6b52-anon", userId="u-42")}
        for path, call in calls.items():
            resp = send(f"{v1}/{path}", call)
            assert resp.status_code == 200 and resp.json() == {"success": True}, (path, resp.text)
            assert resp.headers["Access-Control-Allow-Origin"] == SITE and resp.headers["Vary"] == "Origin"

        # the batching dispatcher: {writeKey, batch: [calls without sentAt], sentAt} to /b
        batch = [{k: v for k, v in ajs("track", f"ajs-next-b{n}", event="Scrolled").items() if k != "sentAt"}
                 for n in range(3)]
        resp = send(v1 + "/b", {"writeKey": KEY, "batch": batch, "sentAt": iso(datetime.now(timezone.utc))})
        assert resp.status_code == 200 and resp.headers["Access-Control-Allow-Origin"] == SITE, resp.text

        # sendBeacon on page hide
        resp = send(v1 + "/p", ajs("page", "ajs-next-beacon", name="Bye"), headers=BEACON)
        assert resp.status_code == 200, resp.text

        # refused: another origin (no CORS headers), another key's origin, a screen call
        resp = send(v1 + "/t", ajs("track", "ajs-next-evil", event="Forged"), origin=EVIL)
        assert resp.status_code == 403 and resp.json()["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in resp.headers
        resp = send(v1 + "/t", ajs("track", "ajs-next-partner", event="Forged"), origin=PARTNER)
        assert resp.status_code == 403 and "Access-Control-Allow-Origin" not in resp.headers
        resp = send(v1 + "/s", ajs("screen", "ajs-next-s1", name="Home"))
        assert resp.status_code == 400 and resp.headers["Access-Control-Allow-Origin"] == SITE
        assert resp.json()["rejected"][0]["reasons"][0].startswith("$.type: screen calls")

        # the long paths and a server without Origin still work as before
        resp = send(v1 + "/track", ajs("track", "ajs-next-long", event="Viewed"), origin=None)
        assert resp.status_code == 200 and "Access-Control-Allow-Origin" not in resp.headers

        inbound = topic_records(tracker, "journeys-inbound-v1")
        stored = {orjson.loads(r.value)["messageId"]: (dict(r.headers), orjson.loads(r.value)) for r in inbound}
        assert sorted(stored) == sorted([c["messageId"] for c in calls.values()] + [b["messageId"] for b in batch]
                                        + ["ajs-next-beacon", "ajs-next-long"])
        assert all(h["journeys.source"] == b"website" and h["journeys.write_key_id"] == key_id(KEY).encode()
                   for h, _ in stored.values())
        assert all("writeKey" not in v and v["receivedAt"] for _, v in stored.values())
        assert stored["ajs-next-g1"][1]["groupId"] == "acct-initech"
        assert stored["ajs-next-t1"][1]["context"]["page"]["path"] == "/pricing"
        dead = topic_records(tracker, "journeys-inbound-v1-dlq")  # the screen call only; a 403 is stored nowhere
        assert len(dead) == 1 and orjson.loads(dead[0].value)["messageId"] == "ajs-next-s1"
        assert KEY.encode() not in dead[0].value
    finally:
        collector.stop()
