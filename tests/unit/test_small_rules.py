"""Small public rule and step helpers, each named by a test: whom an event scores for, the
digital channel of a touch, the address in an email-ish value, where ingest routes an entry."""

from __future__ import annotations

from datetime import datetime, timezone

from schemas.decode import event_time, validate
from streams.rules.identity import IdentityConfig
from streams.rules.journey import contact_key
from streams.rules.normalize import digital_channel, normalize
from streams.rules.pii import address_of
from streams.steps.ingest import route_of
from tests.support import events as ev

NOW = datetime(2026, 10, 1, tzinfo=timezone.utc)


def entry(obj: dict):
    inbound = validate(obj)
    return normalize(inbound, event_time=event_time(inbound, NOW), received_at=NOW, source="t")


def test_address_of_plain_and_name_addr_forms() -> None:
    assert address_of("Jane@Acme.com") == "jane@acme.com"
    assert address_of("Jane Doe <jane@acme.com>") == "jane@acme.com"
    assert address_of("no address here") == "" and address_of(42) == "" and address_of("x@" * 300) == ""


def test_contact_key_prefers_the_resolved_person() -> None:
    e = entry(ev.identify(1, None, "u-1", email="jane@acme.com"))
    assert contact_key(e.model_copy(update={"person_id": "p-1"})) == "p-1"
    assert contact_key(e.model_copy(update={"person_id": "", "contact_id": "c-1"})) == "c-1"
    assert contact_key(e.model_copy(update={"person_id": "", "contact_id": ""})) == "jane@acme.com"


def test_digital_channel_paid_medium_is_ads_email_medium_is_email() -> None:
    paid = validate(ev._seg("page", 1, anonymousId="d", context={"campaign": {"medium": "cpc"}}))
    mail = validate(ev._seg("page", 1, anonymousId="d", context={"campaign": {"medium": "email"}}))
    assert digital_channel(paid) == "ads" and digital_channel(mail) == "email"


def test_route_of_device_then_person_then_timeline() -> None:
    cfg = IdentityConfig()
    assert route_of(entry(ev.page(1, anon="dev-1")), cfg)[:2] == ("events", b"dev-1")
    stage, key, _ = route_of(entry(ev.identify(1, None, "u-9")), cfg)
    assert stage == "persons" and key == b"u-9"
