"""Each alert rule at its edges (streams.rules.alerts): cooldowns, late events, thresholds and
the stages a rule is silent in. The rules' ordinary firing is in test_rule_functions.py."""

from __future__ import annotations

import yaml

from schemas.definitions import DEFAULT_PATH, check, load
from streams.rules import alerts
from tests.support import events as ev
from tests.unit.test_journey_rules import entry

DEFS = load()
H = alerts.HOUR_MS
D = alerts.DAY_MS
T0_MS = int(ev.T0.timestamp() * 1000)
BOUNCE = DEFS.alerts.channel_bounce


def touch(state: dict, hours: float, side: str, path: str = "/blog", newest_ms: int = 0) -> list[alerts.Alert]:
    """A touch on ``side`` at T0 + ``hours``, remembered then judged, as the journey step does."""
    e = entry(ev.call(hours, "pat@acme.com", account="acme") if side == "human"
              else ev.page(hours, user="pat", path=path))
    alerts.remember_touch(state, e, side)
    return alerts.on_touch(state, e, "acme", side, DEFS, newest_ms)


def rules(fired: list[alerts.Alert]) -> list[str]:
    return [a.rule for a in fired]


# channel_bounce and back_to_research (on each touch)

def test_a_bounce_in_the_next_window_waits_for_the_cooldown() -> None:
    window = int(BOUNCE.window_days * D)
    boundary_h = ((T0_MS // window + 1) * window - T0_MS) / H  # where the bounce's anchor changes
    state: dict = {}
    fired = []
    for i, side in enumerate(["digital", "human", "digital", "human"]):
        fired += touch(state, boundary_h - 4 + i, side)
    assert rules(fired) == ["channel_bounce"]
    # past the boundary: a new anchor, still switching, but within cooldown_hours of the last one
    assert touch(state, boundary_h + 1, "digital") == []
    assert touch(state, boundary_h + 2, "human") == []
    later = boundary_h - 1 + BOUNCE.cooldown_hours + 1
    assert rules(touch(state, later, "digital")) == ["channel_bounce"]


def test_back_to_research_needs_an_evaluation_page_soon_enough_after_the_conversation() -> None:
    state: dict = {}
    assert touch(state, 1, "human") == []
    assert touch(state, 2, "digital", "/blog") == []  # not an evaluation page
    late_h = 1 + BOUNCE.return_within_days * 24 + 1
    assert touch(state, late_h, "digital", "/pricing") == []  # past return_within_days
    state = {}
    touch(state, 1, "human")
    assert rules(touch(state, 3, "digital", "/compare/rivals")) == ["back_to_research"]  # a prefix of the path


def test_back_to_research_once_per_conversation_then_the_cooldown() -> None:
    def research(fired: list[alerts.Alert]) -> list[str]:  # these touches also make a channel bounce
        return [r for r in rules(fired) if r == "back_to_research"]

    state: dict = {}
    touch(state, 1, "human")
    assert research(touch(state, 2, "digital", "/pricing")) == ["back_to_research"]
    assert research(touch(state, 3, "digital", "/pricing")) == []  # the same conversation: the same alert id
    touch(state, 4, "human")  # a new conversation, within cooldown_hours of the alert
    assert research(touch(state, 5, "digital", "/pricing")) == []
    after = 2 + BOUNCE.cooldown_hours + 1
    touch(state, after, "human")
    assert research(touch(state, after + 1, "digital", "/pricing")) == ["back_to_research"]


def test_a_late_touch_raises_nothing_for_the_past() -> None:
    state: dict = {}
    touch(state, 1, "human")
    newest = T0_MS + int((2 + DEFS.alerts.allowed_lateness_hours) * H) + 1  # the account has moved on
    assert touch(state, 2, "digital", "/pricing", newest_ms=newest) == []
    assert rules(touch(state, 2.5, "digital", "/pricing", newest_ms=T0_MS + 3 * H)) == ["back_to_research"]


# committee_gap (on stage changes)

def test_no_committee_gap_below_the_stage_or_at_a_rank_zero_stage() -> None:
    for stage in ("engaged", "mql", "sal", "recycled", "disqualified"):
        assert alerts.committee_gap({"stage": stage}, "acme", DEFS.stage(stage).rank, {}, 0, DEFS) == [], stage


def test_committee_gap_once_a_week_as_the_deal_moves_on() -> None:
    state: dict = {"stage": "sql"}
    assert rules(alerts.committee_gap(state, "acme", DEFS.stage("sql").rank, {}, 0, DEFS)) == ["committee_gap"]
    state["stage"] = "opportunity"  # a new stage, still no executive, within the 7-day cooldown
    assert alerts.committee_gap(state, "acme", DEFS.stage("opportunity").rank, {}, D, DEFS) == []
    state["stage"] = "sql"  # back at sql a week later: the same condition, the same alert id
    assert alerts.committee_gap(state, "acme", DEFS.stage("sql").rank, {}, 8 * D, DEFS) == []
    state["stage"] = "opportunity"
    assert rules(alerts.committee_gap(state, "acme", DEFS.stage("opportunity").rank, {}, 9 * D, DEFS)) \
        == ["committee_gap"]


def test_closed_deals_are_known_by_their_role_whatever_the_stages_are_called() -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    names = {"won": "closed_won", "lost": "closed_lost"}
    for stage in data["stages"]:
        stage["name"] = names.get(stage["name"], stage["name"])
    defs = check(yaml.safe_dump(data))
    for closed in names.values():
        rank = defs.stage(closed).rank
        assert alerts.committee_gap({"stage": closed}, "acme", rank, {}, 0, defs) == [], closed
    assert rules(alerts.committee_gap({"stage": "opportunity"}, "acme", defs.stage("opportunity").rank, {}, 0,
                                      defs)) == ["committee_gap"]


# missed_handoff and stalled_opportunity (timers)

def test_no_missed_handoff_after_a_sales_touch_or_once_the_account_moved_on() -> None:
    sla = int(DEFS.sla.mql_first_touch_hours * H)
    touched = {"account": "acme", "stage": "mql", "mql_at_ms": 10 * H, "last_human_ms": 11 * H}
    assert alerts.next_due_ms(touched, DEFS) == 0
    assert alerts.on_tick(touched, "acme", 10 * H + 10 * sla, DEFS) == []
    for stage in ("sal", "sql", "recycled"):
        moved = {"account": "acme", "stage": stage, "mql_at_ms": 10 * H, "last_human_ms": 0}
        assert alerts.on_tick(moved, "acme", 10 * H + 10 * sla, DEFS) == [], stage


def test_a_second_missed_handoff_waits_for_the_cooldown() -> None:
    sla = int(DEFS.sla.mql_first_touch_hours * H)
    cooldown = int(DEFS.alerts.missed_handoff_cooldown_hours * H)
    state = {"account": "acme", "stage": "mql", "mql_at_ms": H, "last_human_ms": 0}
    assert rules(alerts.on_tick(state, "acme", H + sla + 1, DEFS)) == ["missed_handoff"]
    state["mql_at_ms"] = H + sla + 2 * H  # recycled and re-qualified: a new MQL, a new anchor
    assert alerts.next_due_ms(state, DEFS) == H + sla + 1 + cooldown  # due, but held back by the cooldown
    assert alerts.on_tick(state, "acme", H + 2 * sla + 3 * H, DEFS) == []  # within the cooldown
    assert alerts.next_due_ms(state, DEFS) == H + sla + 1 + cooldown  # not ticked again until it ends
    assert rules(alerts.on_tick(state, "acme", H + sla + 1 + cooldown, DEFS)) == ["missed_handoff"]


def test_a_stalled_opportunity_fires_again_only_after_a_new_idle_period() -> None:
    idle = int(DEFS.alerts.stalled_opportunity_days * D)
    state = {"account": "acme", "stage": "opportunity", "last_touch_ms": D}
    assert rules(alerts.on_tick(state, "acme", D + idle + 1, DEFS)) == ["stalled_opportunity"]
    state["last_touch_ms"] = D + idle + 2 * H  # activity: the clock starts again
    assert alerts.next_due_ms(state, DEFS) == D + idle + 2 * H + idle
    assert alerts.on_tick(state, "acme", D + idle + 3 * H, DEFS) == []
    assert rules(alerts.on_tick(state, "acme", D + 2 * idle + 3 * H, DEFS)) == ["stalled_opportunity"]


def test_the_timer_clock_is_event_time_while_events_flow_and_the_wall_clock_when_idle() -> None:
    wall = [1_000_000]
    clock = alerts.AlertClock(idle_ms=5_000, wall_ms=lambda: wall[0])
    clock.saw(400_000)  # a replay of old data
    assert clock.now_ms() == 400_000
    wall[0] += 4_999
    assert clock.now_ms() == 400_000
    wall[0] += 1
    assert clock.now_ms() == 1_005_000


# rejected_leads (on lead outcomes, per source)

def outcomes(events: list[tuple[str, str, float]], source: str = "fair") -> list[alerts.Alert]:
    state: dict = {}
    fired = []
    for lead_id, status, days in events:
        fired += alerts.on_lead_outcome(state, source, status, int(days * D), lead_id, DEFS)
    return fired


def test_rejected_leads_below_its_thresholds_is_silent() -> None:
    assert DEFS.alerts.rejected_leads_min_mqls == 2 and DEFS.alerts.rejected_leads_rate == 0.5
    assert outcomes([("a", "mql", 0), ("a", "rejected", 1)]) == []  # every MQL rejected, but only one MQL
    assert outcomes([("a", "mql", 0), ("b", "mql", 0), ("a", "rejected", 1)]) == []  # 1 of 2: not above the rate
    assert rules(outcomes([("a", "mql", 0), ("b", "mql", 0), ("a", "rejected", 1), ("b", "rejected", 1)])) \
        == ["rejected_leads"]


def test_rejected_leads_counts_only_leads_with_an_outcome_in_the_window() -> None:
    window = DEFS.alerts.rejected_leads_window_days
    assert outcomes([("a", "mql", 0), ("a", "rejected", 1),
                     ("b", "mql", window + 5), ("b", "rejected", window + 6)]) == []


def test_rejected_leads_once_per_window_per_source() -> None:
    fired = outcomes([("a", "mql", 0), ("b", "mql", 0), ("a", "rejected", 1), ("b", "rejected", 1),
                      ("c", "mql", 2), ("c", "rejected", 2), ("d", "mql", 3), ("d", "rejected", 3)])
    assert rules(fired) == ["rejected_leads"]
    assert fired[0].account_id == "source:fair" and "2 of 2" in fired[0].summary
    assert fired[0].at_ms == 1 * D  # when the rate was first crossed
