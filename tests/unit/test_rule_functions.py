"""The public rule functions that no other test names, each on a hand-built case."""

from __future__ import annotations

from schemas.definitions import load
from streams.rules import alerts
from streams.rules.identity import account_rule, replay_json
from streams.rules.journey import SEQ_VERSION_BASE, new_journey, output_version, persona_fit, touch_points
from streams.rules.normalize import normalize_email
from tests.unit.test_journey_rules import entry, lead
from tests.support import events as ev

DEFS = load()
H = alerts.HOUR_MS
D = alerts.DAY_MS


def test_remember_touch_keeps_recent_touches_in_time_order_and_bounded() -> None:
    state: dict = {}
    for h in (3, 1, 2):
        alerts.remember_touch(state, entry(ev.page(h, user="jane", path="/x")), "digital")
    assert [r[0] for r in state["recent"]] == sorted(r[0] for r in state["recent"])
    for h in range(alerts.RECENT_MAX + 5):
        alerts.remember_touch(state, entry(ev.page(10 + h, user="jane")), "digital")
    assert len(state["recent"]) == alerts.RECENT_MAX


def test_on_touch_fires_a_bounce_once_and_nothing_for_late_touches() -> None:
    state: dict = {}
    touches = [(1, "digital"), (2, "human"), (3, "digital"), (4, "human")]
    fired = []
    for h, side in touches:
        e = entry(ev.page(h, user="jane", path="/blog"))
        alerts.remember_touch(state, e, side)
        fired += alerts.on_touch(state, e, "acme", side, DEFS, newest_ms=0)
    assert [a.rule for a in fired] == ["channel_bounce"]
    late = entry(ev.page(-1000, user="jane"))
    assert alerts.on_touch(state, late, "acme", "digital", DEFS, newest_ms=fired[0].at_ms) == []


def test_committee_gap_fires_from_the_stage_on_when_a_persona_is_missing() -> None:
    sql = DEFS.stage("sql")
    assert alerts.committee_gap({"stage": "mql"}, "acme", sql.rank - 1, {}, 0, DEFS) == []
    gap = alerts.committee_gap({"stage": "sql"}, "acme", sql.rank, {}, 0, DEFS)
    assert [a.rule for a in gap] == ["committee_gap"] and "executive" in gap[0].summary
    assert alerts.committee_gap({"stage": "sql"}, "acme", sql.rank, {"executive": ["ann"]}, 0, DEFS) == []


def test_no_committee_gap_on_a_closed_deal() -> None:
    for closed in ("won", "lost"):
        rank = DEFS.stage(closed).rank
        assert alerts.committee_gap({"stage": closed}, "acme", rank, {}, 0, DEFS) == [], closed
    opportunity = DEFS.stage("opportunity")
    assert [a.rule for a in alerts.committee_gap({"stage": "opportunity"}, "acme", opportunity.rank, {}, 0, DEFS)] \
        == ["committee_gap"]


def test_stalled_opportunity_fires_after_its_days_and_not_for_closed_deals() -> None:
    day = 86_400_000
    idle = int(DEFS.alerts.stalled_opportunity_days * day)
    state = {"stage": "opportunity", "last_touch_ms": 10 * day, "account": "acme"}
    assert alerts.next_due_ms(state, DEFS) == 10 * day + idle
    assert alerts.on_tick(dict(state), "acme", 10 * day + idle - 1, DEFS) == []
    fired = alerts.on_tick(state, "acme", 10 * day + idle + 1, DEFS)
    assert [a.rule for a in fired] == ["stalled_opportunity"]
    assert alerts.on_tick(state, "acme", 10 * day + idle + 2, DEFS) == []  # once per idle period
    assert alerts.next_due_ms(state, DEFS) == 0
    for closed in ("won", "lost"):
        assert alerts.on_tick({"stage": closed, "last_touch_ms": 1}, "acme", 10**13, DEFS) == []


def test_on_tick_and_next_due_ms_for_a_missed_handoff() -> None:
    state = {"account": "acme", "stage": "mql", "mql_at_ms": 10 * H, "last_human_ms": 0}
    due = alerts.next_due_ms(state, DEFS)
    assert due == 10 * H + int(DEFS.sla.mql_first_touch_hours * H)
    assert alerts.on_tick(state, "acme", due - 1, DEFS) == []
    fired = alerts.on_tick(state, "acme", due + 1, DEFS)
    assert [a.rule for a in fired] == ["missed_handoff"]
    assert alerts.next_due_ms(state, DEFS) == 0  # fired: not due again
    assert alerts.next_due_ms({"stage": "won"}, DEFS) == 0


def test_on_lead_outcome_fires_when_sales_reject_most_mqls_of_a_source() -> None:
    state: dict = {}
    out = []
    for i, status in enumerate(["mql", "mql", "mql"]):
        out += alerts.on_lead_outcome(state, "webinar", status, i * H, f"L{i}", DEFS)
    out += alerts.on_lead_outcome(state, "webinar", "rejected", 5 * H, "L0", DEFS)
    assert out == []  # 1 of 3 rejected
    out += alerts.on_lead_outcome(state, "webinar", "rejected", 6 * H, "L1", DEFS)
    assert [a.rule for a in out] == ["rejected_leads"] and out[0].account_id == "source:webinar"


def test_replay_json_keeps_only_what_the_journey_reads() -> None:
    e = entry({**ev.page(1, user="jane", path="/pricing"), "properties": {"path": "/pricing", "junk": "x" * 50}})
    kept = replay_json(e)
    assert '"junk"' not in kept and '"/pricing"' in kept


def test_account_rule_names_where_the_account_came_from() -> None:
    assert account_rule(entry(ev.call(1, "a@acme.com", account="acme"))) == "crm"
    assert account_rule(entry(ev.group(1, "jane", "acme"))) == "group"
    assert account_rule(entry(ev.page(1, user="jane")).model_copy(update={"account_id": "domain:acme.com"})) == "domain"


def test_output_version_grows_with_the_events_applied() -> None:
    assert output_version({}) == SEQ_VERSION_BASE
    assert output_version({"seq": 7}) == SEQ_VERSION_BASE + 7


def test_touch_points_and_persona_fit() -> None:
    page = entry(ev.page(1, user="jane", path="/pricing"))
    assert touch_points(page, DEFS) == DEFS.scoring.channel_points["web"] + DEFS.scoring.page_points["/pricing"]
    assert touch_points(entry(lead(1, "mql")), DEFS) == 0.0
    state = new_journey()
    assert persona_fit(state, DEFS) == 0.0
    state["contacts"]["ann"] = {"persona": "executive", "score": 0.0, "ref_ms": 0, "title": ""}
    assert persona_fit(state, DEFS) == next(p.fit_points for p in DEFS.personas if p.name == "executive")


def test_persona_fit_points_are_made_once_per_definitions_and_follow_a_new_version() -> None:
    from streams.rules.journey import _fit_points

    assert _fit_points(DEFS) is _fit_points(DEFS)  # not rebuilt for every fact applied
    state = new_journey()
    state["contacts"]["ann"] = {"persona": "executive", "score": 0.0, "ref_ms": 0, "title": ""}
    newer = DEFS.model_copy(update={"personas": [p.model_copy(update={"fit_points": 99.0}) for p in DEFS.personas]})
    assert persona_fit(state, newer) == 99.0
    assert persona_fit(state, DEFS) == next(p.fit_points for p in DEFS.personas if p.name == "executive")


def test_normalize_email() -> None:
    assert normalize_email("  Jane@ACME.com ") == "jane@acme.com"
    assert normalize_email("not an email") == "" and normalize_email(None) == ""


def test_rejected_leads_fires_whatever_order_the_outcomes_of_different_leads_arrive_in() -> None:
    outcomes = [("a", "mql", 1), ("a", "rejected", 5), ("b", "mql", 2), ("b", "rejected", 6)]
    for order in ([0, 1, 2, 3], [0, 1, 3, 2], [3, 1, 0, 2], [2, 3, 1, 0]):
        state: dict = {}
        fired = []
        for i in order:
            lead, status, hours = outcomes[i]
            fired += alerts.on_lead_outcome(state, "fair", status, hours * 3_600_000, lead, DEFS)
        assert [a.rule for a in fired] == ["rejected_leads"], order


def test_back_to_research_fires_the_same_whichever_of_the_call_and_the_page_arrives_first() -> None:
    call = entry(ev.call(1, "pat@acme.com", account="acme"))
    page = entry(ev.page(3, user="pat", path="/pricing"))
    got = []
    for order in ([call, page], [page, call]):
        state: dict = {}
        fired = []
        for e in order:
            side = DEFS.channels[e.channel].side
            alerts.remember_touch(state, e, side)
            fired += alerts.on_touch(state, e, "acme", side, DEFS, 0)
        got.append([(a.rule, a.alert_id, a.at_ms) for a in fired if a.rule == "back_to_research"])
    assert got[0] == got[1] and len(got[0]) == 1
