"""The stage machine and scoring on hand-built journeys (default definitions)."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from schemas.decode import event_time, validate
from schemas.definitions import load
from streams.rules.journey import decay, new_journey, on_journey_event
from streams.rules.normalize import normalize
from tests.support import events as ev

DEFS = load()
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def entry(obj: dict, account: str = "acme"):
    inbound = validate(obj)
    e = normalize(inbound, event_time=event_time(inbound, NOW), received_at=NOW, source="t")
    return e.model_copy(update={"journey_account_id": account, "person_id": e.contact_id or e.user_id})


def lead(hours: float, status: str, **kw) -> dict:
    return {"type": "lead_status", "leadId": "L1", "status": status, "changedAt": ev.at(hours),
            "crmAccountId": "acme", "email": "jane@acme.com", **kw}


def opp(hours: float, action: str) -> dict:
    return {"type": "opportunity", "opportunityId": "O1", "crmAccountId": "acme", "action": action,
            "changedAt": ev.at(hours), "amount": "1000.00", "currency": "EUR"}


def run(events: list[dict]) -> tuple[dict, list]:
    state, changes = new_journey(), {}
    for e in events:  # as the store keeps them: one row per change id, newest wins, retractions drop
        out = on_journey_event(state, entry(e), "acme", DEFS)
        for change_id in out.retracted:
            changes.pop(change_id, None)
        changes.update((c.change_id, c) for c in out.stage_changes)
    return state, list(changes.values())


def path(changes) -> list[str]:
    return [c.to_stage for c in sorted(changes, key=lambda c: (c.at_ms, c.to_stage))]


def test_score_driven_stages_then_crm_facts_with_rule_and_version() -> None:
    events = [ev.page(1, user="jane", path="/pricing"), ev.page(2, user="jane"),
              {**ev.page(3, user="jane"), "type": "track", "event": "Webinar Attended"},
              lead(4, "mql"), lead(5, "accepted"), opp(6, "created"), opp(9, "closed_won")]
    events[2].pop("name")
    state, changes = run(events)
    assert path(changes) == ["engaged", "mql", "sal", "opportunity", "won"]
    engaged = changes[0]
    assert engaged.rule == "score >= 10" and engaged.definitions_version == DEFS.version
    assert state["stage"] == "won"


def test_rejection_recycles_and_regressions_are_kept() -> None:
    _, changes = run([lead(1, "mql"), lead(2, "rejected", reason="no budget"), lead(30, "mql")])
    assert path(changes) == ["mql", "recycled", "mql"]


def test_redelivered_event_is_a_no_op() -> None:
    state = new_journey()
    e = entry(ev.page(1, user="jane", path="/pricing"))
    first = on_journey_event(state, e, "acme", DEFS)
    again = on_journey_event(state, e, "acme", DEFS)
    assert not first.duplicate and again.duplicate
    assert state["engagement"] == DEFS.scoring.channel_points["web"] + DEFS.scoring.page_points["/pricing"]


def test_engagement_decays_with_half_life_in_event_time() -> None:
    state, _ = run([ev.page(0, user="jane", path="/pricing"), ev.page(30 * 24, user="jane")])
    first = DEFS.scoring.channel_points["web"] + DEFS.scoring.page_points["/pricing"]
    assert abs(state["engagement"] - (decay(first, 30 * 86_400_000, 30) + 1)) < 1e-9
    assert abs(decay(8, 30 * 86_400_000, 30) - 4) < 1e-12


def test_late_events_end_in_the_same_journey_as_in_order() -> None:
    events = [ev.page(1, user="jane"), lead(2, "mql"), lead(3, "accepted"),
              ev.call(4, "jane@acme.com", account="acme", outcome="meeting_held"), opp(5, "created"),
              opp(7, "closed_lost")]
    in_order_state, in_order = run(events)
    rng = random.Random(3)
    for _ in range(10):
        shuffled = events[:]
        rng.shuffle(shuffled)
        state, changes = run(shuffled)
        assert path(changes) == path(in_order)
        assert state["stage"] == in_order_state["stage"] == "lost"
        assert abs(state["engagement"] - in_order_state["engagement"]) < 1e-9


def test_committee_persona_from_title() -> None:
    state, _ = run([ev.identify(1, None, "jane", email="jane@acme.com") | {"traits": {"title": "VP Marketing",
                                                                                        "email": "jane@acme.com"}}])
    contact = next(iter(state["contacts"].values()))
    assert contact["persona"] == "executive"


def test_a_redelivered_event_hands_back_its_stage_changes() -> None:
    state = new_journey()
    e = entry(lead(1, "mql"))
    first = on_journey_event(state, e, "acme", DEFS)
    again = on_journey_event(state, e, "acme", DEFS)  # e.g. after a kill -9 before the sends
    assert again.duplicate and [c.change_id for c in again.stage_changes] == [c.change_id for c in first.stage_changes]


def test_outputs_lost_in_a_crash_are_re_sent_by_the_redelivered_event_late_ones_included() -> None:
    """kill -9 between the state write and the sends (fault scenario 1): the redelivered event
    must hand back everything it emitted — its stage changes, the later changes a late event
    re-emits, and its retractions — so the store ends as an in-order run (bug B8's sequel)."""
    events = [ev.page(1, user="jane", path="/pricing"), ev.page(2, user="jane"), lead(3, "mql"),
              lead(4, "rejected", reason="no budget"), lead(5, "mql"), lead(6, "accepted"),
              ev.call(7, "jane@acme.com", account="acme", outcome="meeting_held"), opp(8, "created"),
              opp(9, "closed_lost")]

    def as_stored(changes) -> list[tuple]:
        return sorted((c.change_id, c.from_stage, c.to_stage, c.at_ms) for c in changes)

    _, in_order = run(events)
    rng = random.Random(5)
    for _ in range(25):
        shuffled = [entry(e) for e in events]
        rng.shuffle(shuffled)
        state, stored = new_journey(), {}

        def apply(out) -> None:  # the store: the newest record of a change id wins
            for change_id in out.retracted:
                stored.pop(change_id, None)
            stored.update((c.change_id, c) for c in out.stage_changes)

        for i, e in enumerate(shuffled):
            out = on_journey_event(state, e, "acme", DEFS)
            if rng.random() < 0.5:
                # crashed before the sends: these outputs are lost, and Kafka redelivers every
                # event since the last commit (the last 1-3 events here), in order
                for again in shuffled[max(0, i - rng.randint(0, 2)): i + 1]:
                    out = on_journey_event(state, again, "acme", DEFS)
                    assert out.duplicate
                    apply(out)
            else:
                apply(out)
        assert as_stored(stored.values()) == as_stored(in_order)


def test_a_group_call_without_icp_traits_keeps_the_account_fit() -> None:
    """A CRM contact's link to its account (a group call with no traits) says nothing about the
    fit: the fit the account's own traits gave stands."""
    state, _ = run([ev.group(1, "acct", "acme", traits={"employees": 1200, "industry": "software"}),
                    ev.group(2, "jane", "acme")])
    assert state["account_fit"] == 25
    state, _ = run([ev.group(1, "acct", "acme", traits={"employees": 1200, "industry": "software"}),
                    ev.group(2, "acct", "acme", traits={"employees": 50})])
    assert state["account_fit"] == 0  # a call that names ICP traits still sets the fit


def test_forwarded_facts_are_tagged_dropped_on_unmerge_and_untagged_when_they_also_arrive_on_their_own() -> None:
    from streams.rules.journey import drop_forwarded, fact_event, fact_item, facts, mark_forwarded, on_journey_events

    mine = [entry(ev.page(h, user="jane", path="/pricing")) for h in (1, 3)] + [entry(lead(4, "mql"))]
    theirs = [entry(ev.page(h, user="bob", path="/pricing"), account="domain:acme.com") for h in (0, 2, 2.5)]
    alone, _ = run([])
    on_journey_events(alone, mine, "acme", DEFS)
    # the domain journey's facts, as forwarded (fact items → events of the target's journey)
    donor = new_journey()
    on_journey_events(donor, theirs, "domain:acme.com", DEFS)
    absorbed = [fact_event(*item, "acme") for item in facts(donor)]
    assert [(e.event_id, e.channel, e.person_id, e.properties) for e in absorbed] == [
        (e.event_id, e.channel, e.person_id, {"path": "/pricing"}) for e in theirs]
    assert [fact_item(e) for e in absorbed] == facts(donor)

    merged = new_journey()
    on_journey_events(merged, mine, "acme", DEFS)
    on_journey_events(merged, absorbed, "acme", DEFS)
    mark_forwarded(merged, {e.event_id: "domain:acme.com" for e in absorbed})
    assert merged["engagement"] > alone["engagement"]
    assert facts(merged) == facts(alone), "facts() is the journey's own"
    # Bob's first page also reaches the account on its own (his person's account was learnt): it stays
    mark_forwarded(merged, {}, own={theirs[0].event_id})
    out = drop_forwarded(merged, "domain:acme.com", "acme", DEFS)
    assert out is not None and drop_forwarded(merged, "domain:acme.com", "acme", DEFS) is None
    assert [h[1] for h in merged["history"]] == [theirs[0].event_id] + [e.event_id for e in mine]
    on_journey_events(alone, theirs[:1], "acme", DEFS)
    assert round(merged["engagement"], 9) == round(alone["engagement"], 9)
    assert merged["stage"] == alone["stage"]


def test_recompute_sends_every_stage_change_of_the_history_again_with_a_newer_version() -> None:
    from streams.rules.journey import output_version, recompute

    state, changes = run([ev.page(h, user="jane", path="/pricing") for h in range(1, 4)] + [lead(5, "mql")])
    version = output_version(state)
    out = recompute(state, "acme", DEFS, "unmerge:domain:acme.com")
    assert {c.change_id for c in out.stage_changes} == {c.change_id for c in changes} and not out.retracted
    assert path(out.stage_changes) == path(changes) and output_version(state) == version + 1


def test_before_window_names_new_events_older_than_every_kept_fact_once_a_base_exists(monkeypatch) -> None:
    import streams.rules.journey as journey

    monkeypatch.setattr(journey, "HISTORY_MAX", 5)
    state = new_journey()
    pages = [entry(ev.page(h, user="jane")) for h in range(10, 18)]
    old, known, newer = entry(ev.page(1, user="jane")), pages[-1], entry(ev.page(16.5, user="jane"))
    assert journey.before_window(state, [old]) == []  # nothing kept yet
    journey.on_journey_events(state, pages[:4], "acme", DEFS)
    assert "base" not in state and journey.before_window(state, [old]) == []  # no base: replays are exact
    journey.on_journey_events(state, pages[4:], "acme", DEFS)  # 8 facts: 3 folded into the base
    assert state["base"] and len(state["history"]) == 5
    assert journey.before_window(state, [old, known, newer]) == [old]


def test_rebuild_into_keeps_every_stage_change_and_drops_the_retracted_ones() -> None:
    from streams.rules.journey import rebuild_into

    page, first_mql, late_mql = ev.page(1, user="jane"), lead(3, "mql"), lead(2, "mql")
    fresh, changes = new_journey(), {}
    rebuild_into(fresh, [entry(page), entry(first_mql)], "acme", DEFS, changes)
    before = set(changes)
    rebuild_into(fresh, [entry(late_mql)], "acme", DEFS, changes)  # the MQL happened earlier
    assert before - set(changes), "the MQL on the later status change is retracted"
    _, in_order = run([page, late_mql, first_mql])
    assert set(changes) == {c.change_id for c in in_order}
    assert all(changes[c.change_id] == dict(c.__dict__) for c in in_order)
