"""The stages :func:`streams.rules.journey._apply` tries for an event: every stage of the
definitions, in order, with the conditions an event of that type can meet (a replay applies every
fact of a journey again, and most facts are page views that meet no CRM condition)."""

from __future__ import annotations

from schemas.definitions import load
from streams.rules import journey as j

DEFS = load()
TYPES = ("page", "track", "identify", "group", "lead_status", "opportunity", "conversation", "email_open")


def _reference(event_type: str) -> list[tuple[str, list[str]]]:
    """What can match, read straight off the definitions (a condition's CRM field names its type)."""
    needs = {"lead_status": "lead_status", "opportunity": "opportunity", "conversation_outcome": "conversation"}
    out = []
    for stage in DEFS.stages:
        conds = [c.describe() for c in stage.when
                 if all(getattr(c, field) is None or event_type == kind for field, kind in needs.items())]
        if conds:
            out.append((stage.name, conds))
    return out


def test_each_event_type_tries_only_the_conditions_it_can_meet_in_the_definitions_order() -> None:
    for event_type in TYPES:
        plan = [(stage.name, [c.describe() for c in conds]) for stage, conds in j._stage_plan(DEFS, event_type)]
        assert plan == _reference(event_type)
    page = [stage.name for stage, _ in j._stage_plan(DEFS, "page")]
    crm = [stage.name for stage, _ in j._stage_plan(DEFS, "lead_status")]
    assert set(page) < set(crm)  # a page view cannot reach a stage only a CRM status enters
    assert all(c.score_at_least is not None for _, conds in j._stage_plan(DEFS, "page") for c in conds)


def test_odd_event_types_past_the_cache_get_the_same_plan() -> None:
    for i in range(j._PLAN_TYPES_MAX + 10):
        assert [s.name for s, _ in j._stage_plan(DEFS, f"custom_{i}")] == [s for s, _ in _reference(f"custom_{i}")]
    plans = j._STAGE_PLANS[id(DEFS)][1]
    assert len(plans) <= j._PLAN_TYPES_MAX
