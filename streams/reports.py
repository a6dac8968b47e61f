"""Named reports: one registry that the CLI and the JSON API both call (one query layer)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

import orjson

from schemas.definitions import Definitions
from sinks.clickhouse import analytics, attribution, queries, ui_queries

Report = Callable[[Any, Definitions, dict[str, str]], list[dict[str, Any]]]


def _records(result: tuple[list[str], list[tuple]]) -> list[dict[str, Any]]:
    return queries.records(*result)


def _funnel(store, defs, p):
    return _records(analytics.funnel(store, by=p.get("by", "source"), mode=p.get("mode", "any"),
                                     stages=defs.funnel_stages(), qualified=defs.stage_for("qualified")))


def _acceptance(store, defs, p):
    return _records(analytics.acceptance(store))


def _handoff(store, defs, p):
    return _records(analytics.handoff(store, defs.sla.mql_first_touch_hours, by=p.get("by", "rep"),
                                      qualified=defs.stage_for("qualified")))


def _time_share(store, defs, p):
    return _records(analytics.time_share(store))


def _paths(store, defs, p):
    return _records(analytics.paths(store, limit=_bounded_int(p, "limit", 20, 1000), won=defs.stage_for("won"),
                                    lost=defs.stage_for("lost")))


def _stages(store, defs, p):
    if not p.get("account"):
        raise ValueError("account is required")
    return _records(analytics.stage_history(store, p["account"]))


def _identity(store, defs, p):
    identifier = (p.get("id") or "").strip()
    if not identifier:
        raise ValueError("id is required (a device, person, email or account id)")
    if len(identifier) > 512:
        raise ValueError("id is longer than 512 characters")
    return _records(analytics.identity_history(store, identifier))


def _attribution(store, defs, p):
    model = p.get("model", "w_shaped")
    custom = defs.attribution.models.get(model)
    if model not in attribution.MODELS and custom is None:
        names = (*attribution.MODELS, *defs.attribution.models)
        raise ValueError(f"model must be one of {', '.join(names)}")
    split = p.get("split", "channel")
    if split not in attribution.SPLITS:
        raise ValueError(f"split must be one of {', '.join(attribution.SPLITS)}")
    plan = attribution.model_plan(model, custom)
    by = "role" if split == "role" else "channel"
    _, rows = analytics.attribution_credit(store, plan, attribution.TIME_DECAY_HALF_LIFE_DAYS, by=by,
                                           qualified=defs.stage_for("qualified"),
                                           opportunity=defs.stage_for("opportunity"))
    if split == "role":
        return attribution.role_rows({(str(cur), str(role)): float(credit) for cur, role, _, credit in rows})
    by_channel = attribution.credit_rows(
        model, {(str(cur), str(ch), str(team)): float(credit) for cur, ch, team, _, credit in rows})
    if split == "team":
        return attribution.team_split(by_channel)
    return by_channel


def _alerts(store, defs, p):
    failed = p.get("failed", "")
    if failed not in ("", "0", "1", "true", "false"):
        raise ValueError("failed must be 1 or 0")
    return _records(analytics.alerts(store, account=p.get("account", ""), rule=p.get("rule", ""),
                                     limit=_bounded_int(p, "limit", 200, 10_000), failed=failed in ("1", "true")))


def _bounded_int(p: dict[str, str], name: str, default: int, high: int) -> int:
    raw = p.get(name, str(default))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not 1 <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer between 1 and {high}")
    return int(raw)


def _account(p: dict[str, str]) -> str:
    if not p.get("account"):
        raise ValueError("account is required")
    return p["account"]


def _search(store, defs, p):
    q = p.get("q", "").strip()
    if not q:
        raise ValueError("q is required: part of an account id, name or domain")
    return _records(ui_queries.search(store, q, limit=_bounded_int(p, "limit", 20, 200)))


def _snapshot(store, defs, p):
    """Latest state; ``committee``: persona → people now, ``committee_ever``: anyone engaged at any time."""
    rows = _records(ui_queries.snapshot(store, _account(p)))
    for row in rows:
        row["committee"] = orjson.loads(row["committee"]) if row.get("committee") else {}
        ever: dict[str, set[str]] = {}
        for text in row.pop("committees", None) or []:
            for persona, people in orjson.loads(text).items():
                ever.setdefault(persona, set()).update(people)
        row["committee_ever"] = {k: sorted(v) for k, v in sorted(ever.items())}
    return rows


def _scores(store, defs, p):
    return _records(ui_queries.scores(store, _account(p), limit=_bounded_int(p, "limit", 2000, 20_000)))


def _contacts(store, defs, p):
    as_of = None
    if p.get("at"):
        try:
            as_of = datetime.fromisoformat(p["at"].replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"at must be an ISO 8601 time, got {p['at'][:40]!r}") from exc
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=timezone.utc)
    return _records(ui_queries.contacts(store, _account(p), defs.scoring.half_life_days,
                                        defs.scoring.engaged_contact_points,
                                        limit=_bounded_int(p, "limit", 500, 10_000), as_of=as_of))


def _comparisons(store, defs, p):
    return _records(analytics.definitions_comparisons(store, runs=_bounded_int(p, "limit", 5, 100)))


def _stage_durations(store, defs, p):
    return _records(analytics.stage_durations(store))


REPORTS: dict[str, Report] = {
    "stage-durations": _stage_durations,
    "alerts": _alerts,
    "funnel": _funnel,
    "acceptance": _acceptance,
    "handoff": _handoff,
    "time-share": _time_share,
    "paths": _paths,
    "stages": _stages,
    "identity": _identity,
    "attribution": _attribution,
    "search": _search,
    "snapshot": _snapshot,
    "scores": _scores,
    "contacts": _contacts,
    "definitions-comparisons": _comparisons,
}


def run(name: str, store: Any, defs: Definitions, params: dict[str, str]) -> list[dict[str, Any]]:
    """Run a named report; ValueError for an unknown report or a bad parameter."""
    if name not in REPORTS:
        raise ValueError(f"unknown report {name!r}; one of {', '.join(REPORTS)}")
    return REPORTS[name](store, defs, params)
