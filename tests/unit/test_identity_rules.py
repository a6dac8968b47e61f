"""The identity rules on hand-built journeys (pure: no Faust, no store)."""

from __future__ import annotations

import random

import orjson
from datetime import datetime, timezone

from schemas.decode import event_time, validate
from streams.rules.identity import (
    NEG_INF_MS, IdentityConfig, at_time, new_device, new_person, on_device_event, on_person_event,
    person_key,
)
from streams.rules.normalize import normalize
from tests.support import events as ev

CFG = IdentityConfig(max_persons_per_device=2)
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def entry(obj: dict):
    inbound = validate(obj)
    return normalize(inbound, event_time=event_time(inbound, NOW), received_at=NOW, source="t")


def test_anonymous_events_are_buffered_then_replayed_on_identification() -> None:
    state = new_device()
    for h in range(3):
        assert on_device_event(state, entry(ev.page(h, anon="d1")), CFG).buffered
    out = on_device_event(state, entry(ev.identify(4, "d1", "u1")), CFG)
    assert out.person == "u1" and len(out.replays) == 3
    (link,) = out.links
    assert (link.kind, link.src, link.dsts, link.valid_from_ms[0]) == ("device", "d1", ("u1",), NEG_INF_MS)
    # after identification, anonymous events of the device resolve to the person
    assert on_device_event(state, entry(ev.page(5, anon="d1")), CFG).person == "u1"


def test_shared_device_never_fuses_people_and_is_capped() -> None:
    state = new_device()
    on_device_event(state, entry(ev.identify(1, "kiosk", "alice")), CFG)
    on_device_event(state, entry(ev.identify(10, "kiosk", "bob")), CFG)
    assert on_device_event(state, entry(ev.page(5, anon="kiosk")), CFG).person == "alice"
    assert on_device_event(state, entry(ev.page(11, anon="kiosk")), CFG).person == "bob"
    out = on_device_event(state, entry(ev.identify(12, "kiosk", "carol")), CFG)
    assert out.refused and not out.links  # the cap stops a third person


def test_blocked_values_never_link() -> None:
    assert person_key(entry(ev.identify(1, "d", "undefined")), CFG) == ""


def test_job_change_keeps_earlier_touches_with_the_earlier_account() -> None:
    state = new_person()
    on_person_event(state, entry(ev.group(1, "u1", "acme")), "u1", CFG)
    on_person_event(state, entry(ev.group(100, "u1", "globex")), "u1", CFG)
    assert on_person_event(state, entry(ev.page(50, user="u1")), "u1", CFG).account == "acme"
    assert on_person_event(state, entry(ev.page(150, user="u1")), "u1", CFG).account == "globex"


def test_domain_account_is_merged_into_the_crm_account() -> None:
    state = new_person()
    on_person_event(state, entry(ev.identify(1, None, "jane@acme.com", email="jane@acme.com")), "jane@acme.com", CFG)
    out = on_person_event(state, entry(ev.call(2, "jane@acme.com", account="acme-corp")), "jane@acme.com", CFG)
    merges = [(l.src, l.dsts) for l in out.links if l.kind == "account_merge"]
    assert merges == [("domain:acme.com", ("acme-corp",))]
    assert out.account == "acme-corp"  # CRM evidence beats the domain fallback


def test_domain_account_is_merged_into_the_group_account_without_a_crm_account() -> None:
    """A browser identify with a work email, then the web app's group call: the domain account
    merges into the group's; a CRM account, once known, is the target instead."""
    state = new_person()
    kim = "kim@initech.example"
    on_person_event(state, entry(ev.identify(1, None, kim, email=kim)), kim, CFG)
    out = on_person_event(state, entry(ev.group(2, kim, "acct-web")), kim, CFG)
    merges = [(l.src, l.dsts, l.rules) for l in out.links if l.kind == "account_merge"]
    assert merges == [("domain:initech.example", ("acct-web",), ("domain→group",))]
    out = on_person_event(state, entry(ev.call(3, kim, account="initech-crm")), kim, CFG)
    merges = [(l.src, l.dsts, l.rules) for l in out.links if l.kind == "account_merge"]
    assert merges == [("domain:initech.example", ("initech-crm",), ("domain→crm",))]


def test_person_links_do_not_depend_on_arrival_order() -> None:
    events = [entry(e) for e in (ev.group(1, "u", "a1"), ev.group(30, "u", "a2"), ev.group(60, "u", "a1"),
                                  ev.page(10, user="u"), ev.group(45, "u", "a2"))]
    def final_links(order):
        state = new_person()
        last = {}
        for e in order:
            for link in on_person_event(state, e, "u", CFG).links:
                last[(link.kind, link.src)] = link
        return last, at_time(state["accounts"], 40 * 3600 * 1000)
    baseline = final_links(sorted(events, key=lambda e: e.event_time))
    rng = random.Random(7)
    for _ in range(20):
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert final_links(shuffled) == baseline


def test_evidence_cap_never_refuses_a_first_crm_account() -> None:
    state = new_person()
    cfg = IdentityConfig(max_points_per_person=8)
    for h in range(20):  # many touches naming the same domain account
        on_person_event(state, entry(ev.identify(h, None, "li@corp.io", email="li@corp.io")), "li@corp.io", cfg)
    out = on_person_event(state, entry(ev.call(30, "li@corp.io", account="corp-crm")), "li@corp.io", cfg)
    assert not out.refused and out.account == "corp-crm"
    assert len(state["accounts"]) <= 8
    assert ("domain:corp.io", ("corp-crm",)) in [(l.src, l.dsts) for l in out.links if l.kind == "account_merge"]


def test_a_redelivered_event_sends_its_links_again() -> None:
    """kill -9 between the state write and the sends: the redelivered event finds its facts in
    the state and must still send the links it produced (a lost link is a split journey)."""
    device = new_device()
    identify = entry(ev.identify(1, "rd-dev", "rd-user", email="kim@rdcorp.com"))
    first = on_device_event(device, identify, CFG)
    again = on_device_event(device, identify, CFG)
    assert [link.model_dump() for link in again.links] == [link.model_dump() for link in first.links] != []

    person = new_person()
    call = entry(ev.call(2, "kim@rdcorp.com", account="rd-crm"))
    for e in (entry(ev.identify(1, None, "rd-user", email="kim@rdcorp.com")), call):
        first = on_person_event(person, e, "rd-user", CFG)
        again = on_person_event(person, e, "rd-user", CFG)
        sent = {(k.kind, k.src, k.dsts) for k in first.links}
        assert sent and sent <= {(k.kind, k.src, k.dsts) for k in again.links}  # (may repeat known aliases too)
    assert ("account_merge", "domain:rdcorp.com", ("rd-crm",)) in sent  # the call ties the domain to the CRM account


def test_an_event_without_identity_facts_sends_no_links() -> None:
    person = new_person()
    page = entry(ev.page(3, user="rd-user"))
    assert on_person_event(person, page, "rd-user", CFG).links == []
    assert on_person_event(person, page, "rd-user", CFG).links == []


def big_page(hours: float, **who) -> dict:
    """A page view with 30 KB of properties (a hostile or careless SDK), and a short path."""
    page = ev.page(hours, path="/pricing", **who)
    page["properties"] = {**page.get("properties", {}), **{f"blob{i}": "x" * 1000 for i in range(30)}}
    return page


def test_a_device_state_stays_under_its_byte_cap_with_200_big_anonymous_events() -> None:
    """200 anonymous 30 KB page views used to make a 6 MB device state — past Faust's 1 MB
    changelog record, a crash loop. Remembered events keep what the journey reads."""
    cfg = IdentityConfig(max_state_bytes=64 * 1024)
    state = new_device()
    for h in range(200):
        assert on_device_event(state, entry(big_page(h * 0.1, anon="d1")), cfg).buffered
    size = len(orjson.dumps(state))
    assert size <= cfg.max_state_bytes
    assert 0 < len(state["buffer"]) < 200  # the oldest went first
    out = on_device_event(state, entry(ev.identify(30, "d1", "u1")), cfg)
    assert len(out.replays) == len(state["buffer"]) or out.replays
    replayed = orjson.loads(out.replays[-1])
    assert replayed["properties"] == {"path": "/pricing"}  # what the journey scores, not the blobs
    default = IdentityConfig()
    assert default.max_state_bytes < 1_000_000 // 2  # far below Faust's record limit, with the other fields


def test_a_person_state_stays_under_its_byte_cap() -> None:
    cfg = IdentityConfig(max_state_bytes=8 * 1024)
    state = new_person()
    for h in range(40):
        on_person_event(state, entry(big_page(h, user="u1")), "u1", cfg)
    assert len(orjson.dumps(state["recent"])) <= cfg.max_state_bytes
    assert len(orjson.dumps(state)) < 16 * 1024


def test_repeating_known_facts_sends_no_links_but_a_redelivery_does() -> None:
    """Every CRM record naming the same account used to re-send the person's links (0.68 link
    records per event on the generated mix), each costing the store a refresh."""
    person = new_person()
    on_person_event(person, entry(ev.call(1, "kim@rdcorp.com", account="rd-crm")), "kim@rdcorp.com", CFG)
    later = entry(ev.call(2, "kim@rdcorp.com", account="rd-crm"))
    assert on_person_event(person, later, "kim@rdcorp.com", CFG).links == []
    again = on_person_event(person, later, "kim@rdcorp.com", CFG)  # the same event redelivered
    assert {link.kind for link in again.links} >= {"person_account"}


def test_a_known_person_browsing_on_a_device_sends_no_device_links() -> None:
    device = new_device()
    assert on_device_event(device, entry(ev.identify(1, "dv", "u9")), CFG).links
    for h in range(2, 6):
        assert on_device_event(device, entry(ev.page(h, anon="dv", user="u9")), CFG).links == []


def test_a_replay_that_reaches_a_person_before_their_account_is_re_sent_once_the_account_is_known() -> None:
    # the device's anonymous page, re-sent on identification, reaches the person stage before the
    # identify that names the email domain (another device's partition): remembered, then re-sent
    state = new_person()
    page = entry(ev.page(1, anon="d1")).model_copy(update={"person_id": "u1", "replay": True})
    assert on_person_event(state, page, "u1", CFG, replay=True).account == ""
    out = on_person_event(state, entry(ev.identify(2, "d2", "u1", email="u1@acme.com")), "u1", CFG)
    assert out.account == "domain:acme.com"
    assert [orjson.loads(r)["event_id"] for r in out.replays] == [page.event_id]
