"""Write-key scopes and origins (issue 20, item 3): parsing both forms, 403 refusals before any
work, and CRM ids scoped by the key's source (routes run in-process against a fake Kafka)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas.decode import validate
from schemas.errors import ConfigurationError
from schemas.events import derived_id
from streams.collector.access import refusal
from streams.collector.app import build_app
from streams.collector.handling import Accepted, Limits, Rejected, handle
from streams.collector.settings import CollectorSettings, Source, key_id
from streams.settings import Settings
from tests.support.fake_out import FakeOut, basic_auth

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
BROWSER, CRM, LEGACY = "wk_browser_1", "wk_crm_2", "wk_legacy_3"
KEYS = {
    BROWSER: {"source": "website", "allow": ["segment"], "origins": ["https://www.acme.example"]},
    CRM: {"source": "salesforce", "allow": ["crm"]},
    LEGACY: "hubspot",
}
WON = {"type": "opportunity", "opportunityId": "006-1", "crmAccountId": "acme", "action": "closed_won",
       "stage": "Won", "amount": "1000000.00", "currency": "EUR", "changedAt": "2026-10-20T16:45:00Z"}
TRACK = {"type": "track", "messageId": "m1", "anonymousId": "a1", "event": "Viewed"}


# -- parsing ------------------------------------------------------------------------------------
def test_both_forms_of_a_write_key() -> None:
    cfg = CollectorSettings(write_keys=KEYS)
    browser, crm, legacy = (cfg.source_for(k) for k in (BROWSER, CRM, LEGACY))
    assert browser == Source("website", key_id(BROWSER), frozenset({"segment"}), ("https://www.acme.example",),
                             "website")
    assert crm is not None and crm.allow == {"crm"} and crm.origins == () and crm.id_scope == "salesforce"
    assert legacy == Source("hubspot", key_id(LEGACY))  # plain form: everything, anywhere, unscoped ids
    assert legacy.allow == {"segment", "crm"} and legacy.id_scope is None
    assert cfg.source_for("wk_other") is None and cfg.source_for(None) is None


def test_write_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_COLLECTOR__WRITE_KEYS", json.dumps(KEYS))
    source = Settings().collector.source_for(BROWSER)
    assert source is not None and source.allow == {"segment"}


def test_origins_are_normalised_and_scoped_ids_can_be_turned_off() -> None:
    entry = {"source": "website", "origins": ["HTTPS://Shop.Example:8443/"], "scoped_ids": False}
    source = CollectorSettings(write_keys={"k": entry}).source_for("k")
    assert source is not None and source.origins == ("https://shop.example:8443",) and source.id_scope is None


@pytest.mark.parametrize(("entry", "says"), [
    ({"allow": ["crm"]}, "source: Field required"),
    ({"source": "w", "allow": ["crm", "admin"]}, "allow.1: Input should be 'segment' or 'crm'"),
    ({"source": "w", "allow": []}, "allow: Frozenset should have at least 1 item"),
    ({"source": "w", "origins": ["https://a.example/shop"]}, "'https://a.example/shop' is not an origin"),
    ({"source": "w", "origins": ["*"]}, "'*' is not an origin"),
    ({"source": "w", "scopes": ["crm"]}, "scopes: Extra inputs are not permitted"),
    ({"source": ""}, "source: String should have at least 1 character"),
    (42, "maps to a value of type 'int'"),
])
def test_a_wrong_entry_is_a_clear_configuration_error_without_the_key(entry: object, says: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CollectorSettings(write_keys={"wk_secret_9": entry})
    message = str(info.value)
    assert says in message and f"the key with id {key_id('wk_secret_9')}" in message
    assert "wk_secret_9" not in message


def test_write_keys_must_be_a_map() -> None:
    with pytest.raises(ConfigurationError, match="must be a JSON object"):
        CollectorSettings(write_keys=["wk_secret_9"])  # type: ignore[arg-type]


# -- the policy ---------------------------------------------------------------------------------
def test_scope_and_origin_refusals() -> None:
    cfg = CollectorSettings(write_keys=KEYS)
    browser, crm, legacy = (cfg.source_for(k) for k in (BROWSER, CRM, LEGACY))
    assert browser and crm and legacy
    refused = refusal(browser, "crm", None)
    assert refused and refused.status == 403 and refused.code == "scope_not_allowed"
    assert "may not post CRM records to /v1/crm" in refused.message and "'website'" in refused.message
    assert refusal(crm, "batch", None).code == "scope_not_allowed"  # type: ignore[union-attr]
    assert refusal(browser, "track", "https://www.acme.example") is None
    assert refusal(browser, "track", "https://WWW.acme.example/") is None
    assert refusal(browser, "batch", None) is None  # no Origin header: not a browser, not refused
    assert refusal(browser, "batch", "https://evil.example").code == "origin_not_allowed"  # type: ignore[union-attr]
    assert refusal(browser, "batch", "null").code == "origin_not_allowed"  # type: ignore[union-attr]
    assert all(refusal(legacy, e, "https://any.example") is None for e in ("crm", "batch", "track"))


# -- routes: 403 before any work, nothing forwarded ----------------------------------------------
def post(out: FakeOut, path: str, body: object, key: str | None, **headers: str) -> tuple[int, dict]:
    settings = Settings(collector={"write_keys": KEYS})

    async def go() -> tuple[int, dict]:
        async with TestClient(TestServer(build_app(settings, out))) as client:  # type: ignore[arg-type]
            sent = {**(basic_auth(key) if key else {}), **headers}
            resp = await client.post(path, data=body if isinstance(body, bytes) else orjson.dumps(body), headers=sent)
            return resp.status, await resp.json()

    return asyncio.run(go())


def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.collector import handling

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the body was parsed before the key was checked")

    monkeypatch.setattr(handling, "parse", refuse)
    monkeypatch.setattr(handling, "handle", refuse)


def test_a_browser_key_posting_crm_records_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    no_parsing(monkeypatch)
    out = FakeOut()
    status, payload = post(out, "/v1/crm", WON, BROWSER)
    assert status == 403 and payload["success"] is False and payload["code"] == "scope_not_allowed"
    assert "may not post CRM records" in payload["message"]
    assert post(out, "/v1/crm", {**WON, "writeKey": BROWSER}, None)[0] == 403  # key in the body
    assert post(out, "/v1/track", TRACK, CRM)[0] == 403
    assert post(out, "/v1/batch", {"batch": [TRACK]}, BROWSER, Origin="https://evil.example")[0] == 403
    assert out.sent == []  # like a 401: stored nowhere, not even as a dead letter


def test_the_key_the_parsed_body_names_decides() -> None:
    out = FakeOut()  # a known crm key hidden in a property does not lend the browser key its scope
    body = orjson.dumps({"writeKey": BROWSER, "batch": [{**WON, "note": {"writeKey": CRM}}]})
    assert post(out, "/v1/crm", body, None)[0] == 403
    assert out.sent == []


def test_allowed_requests_go_through() -> None:
    out = FakeOut()
    assert post(out, "/v1/batch", {"batch": [TRACK]}, BROWSER, Origin="https://www.acme.example") == \
        (200, {"success": True})
    assert post(out, "/v1/track", TRACK, BROWSER) == (200, {"success": True})  # server side: no Origin
    assert post(out, "/v1/crm", WON, CRM) == (200, {"success": True})
    assert post(out, "/v1/crm", WON, LEGACY, Origin="https://anywhere.example") == (200, {"success": True})
    assert len(out.sent) == 4 and not any(r.topic.endswith("-dlq") for r in out.sent)
    origin = dict(out.sent[2].headers)
    assert origin == {"journeys.source": b"salesforce", "journeys.write_key_id": key_id(CRM).encode()}


# -- ids: scoped by the key's source ------------------------------------------------------------
def crm_item(body: dict, id_scope: str | None) -> Accepted | Rejected:
    (item,) = handle(orjson.dumps(body), "crm", received_at=NOW, limits=Limits(max_future=timedelta(minutes=5)),
                     id_scope=id_scope).items
    return item


def test_crm_records_without_message_id_get_an_id_scoped_by_the_source() -> None:
    legacy, salesforce, website = (crm_item(WON, scope) for scope in (None, "salesforce", "website"))
    assert isinstance(legacy, Accepted) and "messageId" not in orjson.loads(legacy.value)  # the worker derives it
    unscoped = validate(dict(WON)).messageId
    ids = [orjson.loads(i.value)["messageId"] for i in (salesforce, website)]
    assert ids[0] != ids[1] and unscoped not in ids and all(i.startswith("derived-") for i in ids)
    assert ids[0] == derived_id(validate(dict(WON)), "salesforce")
    assert validate(orjson.loads(salesforce.value)).messageId == ids[0]  # what the worker then uses
    own = crm_item({**WON, "messageId": "sf-evt-1"}, "salesforce")
    assert orjson.loads(own.value)["messageId"] == "sf-evt-1"  # a sender's own id is kept


def test_unscoped_derived_ids_are_unchanged() -> None:
    """Records already stored keep their ids when re-sent through a plain key or Kafka."""
    assert validate(dict(WON)).messageId == "derived-0f90fc7ad1cc894236de6054cf0e20f6"
    with open("schemas/examples/opportunity.json", "rb") as example:
        assert validate(orjson.loads(example.read())).messageId == "derived-d0bc288466f621050e50788c9a03c32d"


def test_derived_ids_are_reserved() -> None:
    for body, endpoint in (({**WON, "messageId": "derived-0f90fc7ad1cc894236de6054cf0e20f6"}, "crm"),
                           ({**TRACK, "messageId": "derived-abc"}, "track")):
        (item,) = handle(orjson.dumps(body), endpoint, received_at=NOW, limits=Limits()).items
        assert isinstance(item, Rejected)
        assert str(item.error.reasons[0]).startswith("$.messageId: ids starting with 'derived-' are reserved")
