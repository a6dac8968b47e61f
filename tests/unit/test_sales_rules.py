"""Journey rules as a sales manager reads them: a rep's email is a 1:1 sales touch, a lead sales
rejected does not come straight back as an MQL, each contact has its own score (default
definitions unless said)."""

from __future__ import annotations

import random

import pytest
import yaml

from schemas.definitions import DEFAULT_PATH, Definitions, check
from schemas.errors import ConfigurationError
from schemas.timeline import CHANNELS, utc_ms
from streams.rules import alerts
from sinks.clickhouse import rows
from streams.rules.journey import JourneyOutcome, contact_scores, new_journey, on_journey_event
from streams.rules.normalize import CONVERSATION_CHANNELS
from streams.steps.journey import journey_update
from tests.support import events as ev
from tests.unit.test_journey_rules import DEFS, entry, lead, path, run

HOUR_MS = 3_600_000


def rep_email(hours: float, **kw) -> dict:
    return ev.call(hours, "jane@acme.com", account="acme", channel="email", outcome="replied", **kw)


def pricing(hours: float) -> dict:
    return ev.page(hours, user="jane", path="/pricing")  # web 1 + /pricing 5 = 6 points


def defs_with(**stage_fields) -> Definitions:
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    for stage in data["stages"]:
        if stage["name"] == "recycled":
            stage.update(stage_fields)
    return Definitions.model_validate(data)


# --- a rep's 1:1 email ---------------------------------------------------------------------

def test_a_conversation_email_is_a_human_sales_touch_and_a_campaign_email_is_marketing() -> None:
    e = entry(rep_email(1))
    assert (e.channel, e.side) == ("sales_email", "human")
    assert (DEFS.channels[e.channel].side, DEFS.channels[e.channel].team) == ("human", "sales")
    campaign = entry(ev._seg("page", 1, userId="jane", context={"page": {"path": "/"}, "campaign": {"medium": "email"}}))
    assert (campaign.channel, campaign.side) == ("email", "digital")
    assert (DEFS.channels["email"].side, DEFS.channels["email"].team) == ("digital", "marketing")


def test_every_channel_the_tracker_emits_is_in_the_definitions() -> None:
    assert set(CONVERSATION_CHANNELS.values()) <= CHANNELS
    for medium, name in (("cpc", "/"), ("email", "/"), ("", "Webinar joined"), ("", "Whitepaper download"), ("", "/")):
        context = {"campaign": {"medium": medium}} if medium else {}
        assert entry(ev._seg("track", 1, userId="j", event=name, context=context)).channel in CHANNELS
    assert CHANNELS <= set(DEFS.channels)


def test_definitions_missing_an_emitted_channel_are_refused_with_its_name() -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    del data["channels"]["sales_email"]
    with pytest.raises(ConfigurationError, match=r"channels: missing sales_email"):
        check(yaml.safe_dump(data))


def _mql_state() -> tuple[dict, int]:
    state, changes = run([pricing(h) for h in range(1, 8)])
    assert path(changes) == ["engaged", "mql"]
    return state, state["mql_at_ms"]


def test_a_rep_email_after_the_mql_is_the_handoff_no_missed_handoff_alert() -> None:
    sla_ms = int(DEFS.sla.mql_first_touch_hours * HOUR_MS)
    state, mql_at = _mql_state()
    assert [a.rule for a in alerts.on_tick(dict(state), "acme", mql_at + sla_ms + 1, DEFS)] == ["missed_handoff"]
    on_journey_event(state, entry(rep_email(9)), "acme", DEFS)
    assert state["last_human_ms"] >= mql_at
    assert alerts.on_tick(state, "acme", mql_at + sla_ms + 1, DEFS) == []
    assert alerts.next_due_ms(state, DEFS) == 0


def test_a_rep_email_counts_as_human_in_bounce_detection() -> None:
    state: dict = {}
    bounced_at = []
    for i, e in enumerate([pricing(1), rep_email(2), pricing(3), rep_email(4), pricing(5)]):
        te = entry(e)
        side = DEFS.channels[te.channel].side
        alerts.remember_touch(state, te, side)
        if any(a.rule == "channel_bounce" for a in alerts.on_touch(state, te, "acme", side, DEFS, utc_ms(te.event_time))):
            bounced_at.append(i)
    assert [r[1] for r in state["recent"]] == ["digital", "human", "digital", "human", "digital"]
    assert bounced_at == [3]  # the third switch (min_switches 3), then the cool-down


# --- recycling -------------------------------------------------------------------------------

def test_a_rejected_lead_does_not_re_mql_on_the_score_sales_just_rejected() -> None:
    _, changes = run([*(pricing(h) for h in range(1, 8)), lead(10, "rejected", reason="no budget"), pricing(11),
                      pricing(12), pricing(13)])
    assert path(changes) == ["engaged", "mql", "recycled", "engaged"]  # re-engaged (18 new points), not an MQL


def test_new_engagement_after_the_rejection_re_qualifies_and_the_history_says_why() -> None:
    events = [*(pricing(h) for h in range(1, 8)), lead(10, "rejected", reason="no budget"), *(pricing(h) for h in range(11, 18))]
    state, changes = run(events)
    assert path(changes) == ["engaged", "mql", "recycled", "engaged", "mql"]
    requalified = sorted(changes, key=lambda c: c.at_ms)[-1]
    assert requalified.rule == "score >= 40 (engagement since recycled)"
    assert requalified.from_stage == "engaged"
    assert state["mql_at_ms"] == requalified.at_ms  # the handoff SLA clock restarts at the new MQL


def test_a_crm_status_re_mqls_at_once_it_is_a_person_s_decision() -> None:
    _, changes = run([*(pricing(h) for h in range(1, 8)), lead(10, "rejected", reason="no budget"), lead(11, "mql")])
    assert path(changes) == ["engaged", "mql", "recycled", "mql"]


def test_a_cool_down_holds_score_stages_back_for_its_days() -> None:
    defs = defs_with(cooldown_days=2)
    state = new_journey()
    seen = []
    for e in [*(pricing(h) for h in range(1, 8)), lead(10, "rejected", reason="no budget"), *(pricing(h) for h in range(11, 25)),
              pricing(10 + 48 + 1)]:
        seen += [c.to_stage for c in on_journey_event(state, entry(e), "acme", defs).stage_changes]
    assert seen == ["engaged", "mql", "recycled", "engaged", "mql"]
    assert state["stage_since_ms"] == state["history"][-1][0]  # only the page after the two days


def test_recycling_is_the_same_whatever_the_arrival_order() -> None:
    events = [*(pricing(h) for h in range(1, 8)), lead(10, "rejected", reason="no budget"), *(pricing(h) for h in range(11, 16)),
              rep_email(16.5)]
    _, in_order = run(events)
    for seed in range(5):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        _, got = run(shuffled)
        assert sorted((c.to_stage, c.at_ms, c.rule) for c in got) == sorted((c.to_stage, c.at_ms, c.rule) for c in in_order)


def test_recycling_holds_on_a_journey_longer_than_the_history() -> None:
    """300 engagement events, a rejection, 200 more: the rejection leaves the 150 kept facts for
    the base state, which carries the cycle, and a late event replays to the same stages."""
    events = [pricing(h / 10) for h in range(1, 300)] + [lead(40, "rejected", reason="no budget")]
    events += [ev.page(40 + h / 10, user="jane", path="/") for h in range(1, 200)]  # 1 point each
    late = pricing(45.05)
    _, in_order = run(sorted([*events, late], key=lambda e: e.get("timestamp") or e.get("changedAt")))
    state, changes = run([*events, late])
    assert path(in_order) == ["engaged", "mql", "recycled", "engaged", "mql"]
    assert sorted((c.to_stage, c.at_ms) for c in changes) == sorted((c.to_stage, c.at_ms) for c in in_order)
    assert state["base"]["cycle_stage"] == "recycled"
    assert len(state["history"]) == 150


# --- per-contact scores ------------------------------------------------------------------------

def test_each_contact_keeps_its_own_score_and_the_update_carries_the_touched_ones() -> None:
    state, _ = run([ev._seg("identify", 0.5, userId="jane", traits={"email": "jane@acme.com", "title": "CFO"}),
                    pricing(1), pricing(2),
                    ev.page(3, user="raj", path="/demo")])
    scores = {k: (persona, score) for k, persona, _, score, _ in contact_scores(state, ["jane", "raj", "nobody"])}
    assert scores["jane"][0] == "executive" and scores["raj"][0] == ""
    assert scores["jane"][1] == pytest.approx(12, abs=0.01)  # two pricing pages, an hour apart
    assert scores["raj"][1] == pytest.approx(11, abs=0.01)  # web 1 + /demo 10
    assert "nobody" not in scores
    last = entry(ev.page(3, user="raj", path="/demo"))
    update = journey_update(state, "acme", last, JourneyOutcome(), DEFS, contacts={"raj"})
    assert [(c.contact_id, c.score) for c in update.contacts] == [("raj", scores["raj"][1])]
    assert rows.contact_rows(update) == [("acme", "raj", "", "", scores["raj"][1], update.contacts[0].scored_at,
                                          update.version)]
