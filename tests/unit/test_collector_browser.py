"""Browser collection (issue 21, item 1): analytics.js's short paths, ``text/plain`` bodies and
CORS (preflights, ``Access-Control-Allow-Origin``), in-process against a fake Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.collector import access
from streams.collector.app import build_app
from streams.collector.handling import SHORT_PATHS, endpoint_for
from streams.collector.settings import CollectorSettings
from streams.settings import Settings
from tests.support.fake_out import FakeOut, basic_auth

SITE, EVIL = "https://www.acme.example", "https://evil.example"
BROWSER, CRM, LEGACY = "wk_browser_1", "wk_crm_2", "wk_legacy_3"
KEYS = {
    BROWSER: {"source": "website", "allow": ["segment"], "origins": [SITE]},
    CRM: {"source": "salesforce", "allow": ["crm"], "origins": ["https://crm.example"]},
}
TEXT = {"Content-Type": "text/plain"}  # what analytics.js's fetch sends
BEACON = {"Content-Type": "text/plain;charset=UTF-8"}  # what navigator.sendBeacon(url, string) sends
CONTEXT = {"page": {"path": "/pricing", "url": f"{SITE}/pricing", "title": "Pricing", "referrer": "", "search": ""},
           "userAgent": "Mozilla/5.0", "locale": "en-US", "library": {"name": "analytics.js", "version": "next-1.84.3"}}


def ajs(kind: str, n: int, **fields: object) -> dict:
    """A call as analytics.js posts it (normalize(): writeKey, sentAt, _metadata, userId null)."""
    return {"type": kind, "messageId": f"ajs-next-{kind}-{n}", "timestamp": "2026-11-01T11:59:58.000Z",
            "anonymousId": "anon-1", "userId": None, "context": CONTEXT, "integrations": {},
            "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
            "writeKey": BROWSER, "sentAt": "2026-11-01T11:59:59.000Z", **fields}


CALLS = {
    "t": ajs("track", 1, event="Pricing Viewed", properties={"plan": "pro"}),
    "p": ajs("page", 1, name="Pricing", category=None, properties={"path": "/pricing"}),
    "i": ajs("identify", 1, userId="u-1", traits={"email": "ann@acme.example"}),
    "g": ajs("group", 1, userId="u-1", groupId="acct-acme", traits={"name": "Acme"}),
    "a": ajs("alias", 1, previousId="anon-1", userId="u-1"),
}


def run(keys: dict, test: Callable[[TestClient, FakeOut], Awaitable[None]]) -> FakeOut:
    out = FakeOut()

    async def go() -> None:
        app = build_app(Settings(collector={"write_keys": keys}), out)  # type: ignore[arg-type]
        async with TestClient(TestServer(app)) as client:
            await test(client, out)

    asyncio.run(go())
    return out


async def post(client: TestClient, path: str, body: object, **headers: str) -> tuple[int, dict, dict]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = await client.post(path, data=data, headers=headers)
    return resp.status, dict(resp.headers), await resp.json()


# -- routing ------------------------------------------------------------------------------------
def test_short_paths_name_the_long_endpoints() -> None:
    assert {p: endpoint_for(p) for p in SHORT_PATHS} == {
        "t": "track", "p": "page", "i": "identify", "g": "group", "a": "alias", "s": "screen", "b": "batch"}
    assert endpoint_for("track") == "track" and endpoint_for("crm") == "crm"
    assert endpoint_for("x") is None and endpoint_for("c") is None and endpoint_for("") is None


def test_analytics_js_calls_on_short_paths_are_stored() -> None:
    async def test(client: TestClient, out: FakeOut) -> None:
        for path, call in CALLS.items():
            assert (await post(client, f"/v1/{path}", call, Origin=SITE, **TEXT))[0::2] == (200, {"success": True})
        status, _, payload = await post(client, "/v1/t", {**CALLS["p"], "messageId": "m-wrong"}, Origin=SITE, **TEXT)
        assert status == 400 and payload["rejected"][0]["reasons"] == ["$.type: 'page' was posted to /v1/track"]
        status, _, _ = await post(client, "/v1/zz", CALLS["t"], Origin=SITE, **TEXT)
        assert status == 404

    out = run(KEYS, test)
    inbound = [r for r in out.sent if not r.topic.endswith("-dlq")]
    stored = [orjson.loads(r.value) for r in inbound]
    assert [s["type"] for s in stored] == ["track", "page", "identify", "group", "alias"]
    assert all("writeKey" not in s and s["receivedAt"] for s in stored)
    assert all(dict(r.headers)["journeys.source"] == b"website" for r in inbound)


def test_the_batching_dispatcher_shape_on_b() -> None:
    """batched-dispatcher: ``{writeKey, batch: [calls without sentAt, each with writeKey], sentAt}``."""
    items = [{k: v for k, v in c.items() if k != "sentAt"} for c in CALLS.values()]
    body = {"writeKey": BROWSER, "batch": items, "sentAt": "2026-11-01T11:59:59.500Z"}

    async def test(client: TestClient, out: FakeOut) -> None:
        assert (await post(client, "/v1/b", body, Origin=SITE, **TEXT))[0] == 200

    out = run(KEYS, test)
    stored = [orjson.loads(r.value) for r in out.sent]
    assert len(stored) == 5 and not any(r.topic.endswith("-dlq") for r in out.sent)
    assert all("writeKey" not in s and s["sentAt"] == "2026-11-01T11:59:59.500Z" for s in stored)


def test_screen_calls_are_rejected_and_dead_lettered() -> None:
    async def test(client: TestClient, out: FakeOut) -> None:
        for path in ("/v1/s", "/v1/screen"):
            status, headers, payload = await post(client, path, ajs("screen", 1, name="Home"), Origin=SITE, **TEXT)
            assert status == 400 and payload["code"] == "invalid_events" and payload["accepted"] == 0
            assert payload["rejected"][0]["reasons"][0].startswith("$.type: screen calls (mobile app screens) are not")
            assert headers["Access-Control-Allow-Origin"] == SITE  # the page may read why
        in_batch = {"writeKey": BROWSER, "batch": [CALLS["t"], ajs("screen", 2)]}
        status, _, payload = await post(client, "/v1/b", in_batch, Origin=SITE, **TEXT)
        assert status == 400 and payload["accepted"] == 1 and payload["rejected"][0]["index"] == 1

    out = run(KEYS, test)
    dead = [r for r in out.sent if r.topic.endswith("-dlq")]
    assert len(dead) == 3 and all(BROWSER.encode() not in r.value for r in dead)
    assert [orjson.loads(r.value)["type"] for r in dead] == ["screen"] * 3


# -- text/plain ---------------------------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", "application/json", None])
def test_text_plain_bodies_are_json_like_any_other(content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    bad = b'{"writeKey": "' + BROWSER.encode() + b'", "type": "track", '

    async def test(client: TestClient, out: FakeOut) -> None:
        assert (await post(client, "/v1/t", CALLS["t"], **headers))[0] == 200
        assert (await post(client, "/v1/track", CALLS["t"], **headers))[0] == 200
        status, _, payload = await post(client, "/v1/t", {**CALLS["t"], "writeKey": "wk_unknown_0"}, **headers)
        assert status == 401
        status, _, payload = await post(client, "/v1/t", bad, **basic_auth(BROWSER), **headers)
        assert status == 400 and payload["rejected"][0]["reasons"][0].startswith("$: malformed JSON")

    out = run(KEYS, test)
    assert len(out.sent) == 3
    first, second = ({k: v for k, v in orjson.loads(r.value).items() if k != "receivedAt"} for r in out.sent[:2])
    assert first == second and first["type"] == "track" and "writeKey" not in first
    assert out.sent[2].topic.endswith("-dlq") and BROWSER.encode() not in out.sent[2].value


# -- CORS ---------------------------------------------------------------------------------------
async def options(client: TestClient, path: str, **headers: str) -> tuple[int, dict]:
    resp = await client.options(path, headers=headers)
    return resp.status, dict(resp.headers)


PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"}


def test_preflights_are_answered_for_origins_a_key_allows() -> None:
    async def test(client: TestClient, out: FakeOut) -> None:
        for path in ("/v1/t", "/v1/batch", "/v1/b", "/v1/track"):
            status, headers = await options(client, path, Origin=SITE, **PREFLIGHT)
            assert status == 204, path
            assert headers["Access-Control-Allow-Origin"] == SITE and headers["Vary"] == "Origin"
            assert headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
            allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
            # analytics.js needs Content-Type; RudderStack's SDK also Authorization, AnonymousId, SentAt
            assert {"content-type", "authorization", "anonymousid", "sentat"} <= allowed, allowed
            assert int(headers["Access-Control-Max-Age"]) > 0
        assert (await options(client, "/v1/t", Origin="HTTPS://WWW.ACME.EXAMPLE", **PREFLIGHT))[0] == 204
        for origin in (EVIL, "null", f"{SITE}.evil.example", "http://www.acme.example"):
            status, headers = await options(client, "/v1/t", Origin=origin, **PREFLIGHT)
            assert status == 403 and "Access-Control-Allow-Origin" not in headers, origin
        # the only key allowed /v1/crm is the CRM key, for its own origin
        assert (await options(client, "/v1/crm", Origin=SITE, **PREFLIGHT))[0] == 403
        assert (await options(client, "/v1/crm", Origin="https://crm.example", **PREFLIGHT))[0] == 204
        assert (await options(client, "/v1/t", Origin="https://crm.example", **PREFLIGHT))[0] == 403
        status, headers = await options(client, "/v1/t")  # no Origin: not a preflight
        assert status == 204 and headers["Allow"] == "POST, OPTIONS" and "Access-Control-Allow-Origin" not in headers
        assert (await options(client, "/v1/nope", Origin=SITE, **PREFLIGHT))[0] == 404

    assert run(KEYS, test).sent == []


def test_answers_carry_cors_headers_only_for_an_origin_the_key_allows() -> None:
    async def test(client: TestClient, out: FakeOut) -> None:
        status, headers, _ = await post(client, "/v1/t", CALLS["t"], Origin=SITE, **TEXT)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == SITE and headers["Vary"] == "Origin"
        status, headers, _ = await post(client, "/v1/t", CALLS["t"], Origin=SITE, **TEXT, **basic_auth(BROWSER))
        assert status == 200 and headers["Access-Control-Allow-Origin"] == SITE
        status, headers, payload = await post(client, "/v1/t", CALLS["t"], Origin=EVIL, **TEXT)
        assert status == 403 and payload["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in headers and headers["Vary"] == "Origin"
        # another key's origin does not open this key's answers
        status, headers, _ = await post(client, "/v1/t", CALLS["t"], Origin="https://crm.example", **TEXT)
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
        status, headers, _ = await post(client, "/v1/t", {**CALLS["t"], "writeKey": "wk_unknown_0"}, Origin=SITE)
        assert status == 401 and headers["Access-Control-Allow-Origin"] == SITE  # readable: no retry loop
        status, headers, _ = await post(client, "/v1/t", {**CALLS["t"], "writeKey": "wk_unknown_0"}, Origin=EVIL)
        assert status == 401 and "Access-Control-Allow-Origin" not in headers
        status, headers, _ = await post(client, "/v1/t", {**CALLS["t"], "event": 42}, Origin=SITE, **TEXT)
        assert status == 400 and headers["Access-Control-Allow-Origin"] == SITE
        status, headers, _ = await post(client, "/v1/t", CALLS["t"], **TEXT)  # a server: no CORS at all
        assert status == 200 and "Access-Control-Allow-Origin" not in headers and "Vary" not in headers

    out = run(KEYS, test)
    assert len(out.sent) == 4  # 2 + the 400's dead letter + the server's call; 401/403: nothing


def test_a_key_without_origins_answers_any_origin_but_null() -> None:
    async def test(client: TestClient, out: FakeOut) -> None:
        call = {**CALLS["t"], "writeKey": LEGACY}
        status, headers, _ = await post(client, "/v1/t", call, Origin="https://anywhere.example", **TEXT)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://anywhere.example"
        assert (await options(client, "/v1/crm", Origin="https://anywhere.example", **PREFLIGHT))[0] == 204
        status, headers, _ = await post(client, "/v1/t", call, Origin="null", **TEXT)
        assert status == 200 and "Access-Control-Allow-Origin" not in headers  # accepted as before, not readable
        assert (await options(client, "/v1/t", Origin="null", **PREFLIGHT))[0] == 403

    assert len(run({**KEYS, LEGACY: "hubspot"}, test).sent) == 2


def test_the_preflight_policy() -> None:
    sources = CollectorSettings(write_keys={**KEYS, LEGACY: {"source": "s", "allow": ["crm"]}}).sources()
    assert access.preflight_allowed(sources, "track", SITE)
    assert not access.preflight_allowed(sources, "track", EVIL)
    assert access.preflight_allowed(sources, "crm", EVIL)  # the crm key without origins
    assert not access.preflight_allowed(sources, "crm", "null")
    assert not access.preflight_allowed([], "track", SITE)
    assert access.cors_headers(" https://a.example ") == {"Access-Control-Allow-Origin": "https://a.example",
                                                          "Vary": "Origin"}
