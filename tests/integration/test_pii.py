"""Email pseudonymisation end to end (issue #9, PII): a worker with an HMAC key stores no clear
address, and a web visitor and a sales call about the same person still make one journey."""

from __future__ import annotations

import json

import pytest

from streams.rules import pii
from tests.support import events as ev

pytestmark = pytest.mark.integration

KEY = "test-pepper-9f2c"


def test_worker_with_an_email_key_stores_pseudonyms_and_still_stitches(tracker_factory) -> None:
    tracker = tracker_factory(JOURNEYS_PII__EMAIL_HMAC_KEY=KEY).start()
    events = [
        ev.page(1, anon="pii-dev"),
        ev.identify(2, "pii-dev", "Lee.Park@PiiCorp.com", email="Lee.Park@PiiCorp.com"),
        ev.page(3, anon="pii-dev", path="/pricing"),
        ev.call(4, "lee.park@piicorp.com", account="pii-crm-account", rep="rep-7"),
        # the name-addr form and a %40-encoded address in the page URL: the same person, no clear address
        ev._seg("page", 5, userId="Lee Park <Lee.Park@PiiCorp.com>", name="/signup",
                context={"page": {"path": "/signup", "url": "https://piicorp.example/s?e=lee.park%40piicorp.com"}}),
    ]
    tracker.produce(ev.encode(events))
    tracker.wait_for_stored(events=len(events))

    expected = pii.pseudonymize_email("lee.park@piicorp.com", KEY.encode())
    shown = tracker.journeys("identity", "pseudonym", "Lee.Park@piicorp.com").stdout.strip()
    assert shown == expected

    def timeline() -> list[dict]:
        out = tracker.journeys("timeline", "pii-crm-account", "--format", "json", "--limit", "100")
        return json.loads(out.stdout)

    # the domain account merges into the CRM account: all four events end in one journey
    tracker.wait_until(lambda: len(timeline()) == len(events), 60, "the web touches joining the call's account")
    rows = timeline()
    text = json.dumps(rows).lower()
    assert "lee.park@" not in text and "lee.park" not in text and "lee park" not in text
    assert {r["email"] for r in rows if r["email"]} == {expected}
    assert any(r["rep_id"] == "rep-7" for r in rows)
    # the whole stored rows (properties too), read through the analysts' SQL endpoint
    stored = json.loads(tracker.journeys("sql", "SELECT event_id, user_id, anonymous_id, properties FROM timeline",
                                         "--format", "json").stdout)
    assert len({r["event_id"] for r in stored}) == len(events)
    assert "lee.park" not in json.dumps(stored).lower() and "lee park" not in json.dumps(stored).lower()
    signup = next(r for r in stored if r["event_id"] == events[-1]["messageId"])
    assert signup["user_id"] == expected  # Lee Park <Lee.Park@PiiCorp.com>: the same person as the plain address
    assert json.loads(signup["properties"])["url"] == f"https://piicorp.example/s?e={expected}"
    assert tracker.journeys("timeline", "domain:piicorp.com", "--format", "json").returncode == 0


def test_addresses_as_anonymous_ids_property_keys_and_group_names_are_stored_pseudonymised(tracker_factory) -> None:
    """Issue 20's other gaps, end to end: an address as the anonymousId, as a property key and in
    a free-text property, and as a group's id and name traits reach no stored row in clear."""
    tracker = tracker_factory(JOURNEYS_PII__EMAIL_HMAC_KEY=KEY).start()
    clear = "Kim.Lee@KimCorp.example"
    events = [
        ev._seg("track", 1, anonymousId=clear, event="Form Started",
                properties={clear: True, "note": f"call {clear} back"}),
        ev.group(2, "kim-user", clear, traits={"name": f"Kim Lee <{clear}>"}),
    ]
    tracker.produce(ev.encode(events))
    assert tracker.wait_for_stored(events=len(events))["dead_letters"] == 0
    expected = pii.pseudonymize_email(clear.lower(), KEY.encode())

    def dump(sql: str) -> str:
        out = tracker.journeys("sql", sql, "--format", "json")
        assert out.returncode == 0, out.stderr
        return out.stdout

    timeline = json.loads(dump("SELECT * FROM timeline"))
    assert {r["event_id"] for r in timeline} == {e["messageId"] for e in events}
    stored = dump("SELECT * FROM timeline") + dump("SELECT * FROM identity_links")
    assert "kim.lee" not in stored.lower() and "kim lee <" not in stored.lower()
    track = next(r for r in timeline if r["event_id"] == events[0]["messageId"])
    assert track["anonymous_id"] == expected
    assert json.loads(track["properties"]) == {expected: True, "note": f"call {expected} back"}
