"""Multi-touch attribution of won revenue (pure), sales touches included.

Position-based models put weight on milestone touches: the first touch, the touch that created
the lead (last touch at or before the MQL), the touch that created the opportunity (last touch
at or before it) and the last touch before the deal closed. Whatever a model leaves for the
other touches is shared equally among them; if a journey has no other touches, that share is
spread over the milestones so credit always sums to the revenue.

Every won deal is a journey of its own (the account's touches up to its close). Credit is kept
per currency: amounts in different currencies are never summed as one.

:func:`weights` is the definition of each model. The report computes the same weights in SQL
over every won deal at once (``analytics.attribution_credit``, from :func:`model_plan`), so that
only the credit per channel or role leaves the store — 780k touches of 20k deals on 10M events
took ~2 s as Python objects; ``tests/integration/test_summary_reports.py`` holds the SQL to
:func:`weights` for every model, touch by touch.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Sequence

from schemas.definitions import BUILTIN_ATTRIBUTION_MODELS, PositionWeights

MODELS = BUILTIN_ATTRIBUTION_MODELS
SPLITS = ("channel", "team", "role")
TIME_DECAY_HALF_LIFE_DAYS = 7.0


class Touch(NamedTuple):
    """One touch of a journey (immutable; a named tuple: a won deal's touches are built by the
    hundred thousand per report, ~3x faster than a frozen dataclass)."""

    at: datetime
    channel: str
    side: str
    team: str = ""
    rep_role: str = ""
    event_id: str = ""

    def role(self) -> str:
        """Who gets the credit of this touch: the rep's role (SDR, AE, …) for a 1:1 touch,
        else the channel's team (marketing for digital touches)."""
        if self.side == "human":
            return self.rep_role or self.team or "sales"
        return self.team or "marketing"


def _last_at_or_before(touches: Sequence[Touch], when: datetime | None) -> int | None:
    if when is None:
        return None
    for i in range(len(touches) - 1, -1, -1):  # the last one (in the given order) at or before
        if touches[i].at <= when:
            return i
    return None


def weights(model: str, touches: Sequence[Touch], mql_at: datetime | None, opp_at: datetime | None,
            won_at: datetime, custom: PositionWeights | None = None) -> list[float]:
    """Share of credit per touch (sums to 1 when there is at least one touch); ``custom``: the
    weights of a model from the definitions file (``model`` is then only its name)."""
    n = len(touches)
    if n == 0:
        return []
    if model == "linear":
        return [1 / n] * n
    if model == "time_decay":
        raw = [0.5 ** ((won_at - t.at).total_seconds() / 86400 / TIME_DECAY_HALF_LIFE_DAYS) for t in touches]
        total = sum(raw)
        return [r / total for r in raw]
    first, last = 0, n - 1
    lead = _last_at_or_before(touches, mql_at)
    opp = _last_at_or_before(touches, opp_at)
    plan: list[tuple[int | None, float]]
    rest: float
    if custom is not None:
        plan = [(first, custom.first), (lead, custom.lead), (opp, custom.opportunity), (last, custom.last)]
        rest = custom.rest
    elif model == "first_touch":
        plan, rest = [(first, 1.0)], 0.0
    elif model == "last_touch":
        plan, rest = [(last, 1.0)], 0.0
    elif model == "lead_creation":
        plan, rest = [(lead if lead is not None else first, 1.0)], 0.0
    elif model == "u_shaped":
        plan, rest = [(first, 0.4), (lead, 0.4)], 0.2
    elif model == "w_shaped":
        plan, rest = [(first, 0.3), (lead, 0.3), (opp, 0.3)], 0.1
    elif model == "full_path":
        plan, rest = [(first, 0.225), (lead, 0.225), (opp, 0.225), (last, 0.225)], 0.1
    else:
        raise ValueError(f"unknown model {model!r}; one of {', '.join(MODELS)}")
    out = [0.0] * n
    missing = 0.0
    for idx, share in plan:
        if idx is None:
            missing += share  # the milestone never happened: its share goes to the others
        else:
            out[idx] += share
    milestones = {idx for idx, share in plan if idx is not None and share > 0}
    others = [i for i in range(n) if i not in milestones]
    leftover = rest + missing
    targets = others or sorted(milestones)
    for i in targets:
        out[i] += leftover / len(targets)
    return out


class Plan(NamedTuple):
    """A model as the SQL computes it: the shares of the first, lead-creation, opportunity-creation
    and last touches and of the rest (:func:`weights`' plan, a missing milestone's share included),
    whether a missing lead-creation touch falls back to the first (``lead_creation``), and
    whether it is ``time_decay`` instead."""

    first: float = 0.0
    lead: float = 0.0
    opportunity: float = 0.0
    last: float = 0.0
    rest: float = 0.0
    lead_falls_back: bool = False
    decay: bool = False


BUILTIN_PLANS = {
    "first_touch": Plan(first=1.0),
    "last_touch": Plan(last=1.0),
    "lead_creation": Plan(lead=1.0, lead_falls_back=True),
    "u_shaped": Plan(first=0.4, lead=0.4, rest=0.2),
    "w_shaped": Plan(first=0.3, lead=0.3, opportunity=0.3, rest=0.1),
    "full_path": Plan(first=0.225, lead=0.225, opportunity=0.225, last=0.225, rest=0.1),
    "linear": Plan(rest=1.0),  # no milestone: each touch rest / n (= 1 / n)
    "time_decay": Plan(decay=True),
}
"""The built-in models of :func:`weights` as plans (a share of 0 changes nothing there)."""


def model_plan(model: str, custom: PositionWeights | None = None) -> Plan:
    """The plan of ``model`` (``custom``: a model from the definitions file)."""
    if custom is not None:
        return Plan(custom.first, custom.lead, custom.opportunity, custom.last, custom.rest)
    if model not in BUILTIN_PLANS:
        raise ValueError(f"unknown model {model!r}; one of {', '.join(MODELS)}")
    return BUILTIN_PLANS[model]


def credit_rows(model: str, credit: dict[tuple[str, str, str], float]) -> list[dict]:
    """The report's rows from the credit per (currency, channel, team)."""
    totals: dict[str, float] = {}
    for (currency, _, _), v in credit.items():
        totals[currency] = totals.get(currency, 0.0) + v
    return [
        {"model": model, "currency": cur, "channel": ch, "team": team, "credit": round(v, 2),
         "share": round(v / (totals[cur] or 1.0), 4)}
        for (cur, ch, team), v in sorted(credit.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))
        if v > 0
    ]


def role_rows(credit: dict[tuple[str, str], float]) -> list[dict]:
    """The report's rows from the credit per (currency, role)."""
    return _shares(credit, "role")


def _touches(journey: dict) -> list[Touch]:
    return list(map(Touch._make, journey["touches"]))


def attribute(journeys: Sequence[dict], model: str, team_of: dict[str, str],
              custom: PositionWeights | None = None) -> list[dict]:
    """Credit per currency, channel and team over won deals: ``revenue`` × weight, summed.

    ``team_of`` (channel → team, from the definitions) names the team of a touch whose row
    carries none."""
    credit: dict[tuple[str, str, str], float] = {}
    for j in journeys:
        touches = _touches(j)
        currency, revenue = j.get("currency") or "", float(j["revenue"])
        for touch, w in zip(touches, weights(model, touches, j.get("mql_at"), j.get("opp_at"), j["won_at"], custom),
                                   strict=True):
            key = (currency, touch.channel, touch.team or team_of.get(touch.channel, "none"))
            credit[key] = credit.get(key, 0.0) + w * revenue
    return credit_rows(model, credit)


def role_split(journeys: Sequence[dict], model: str, custom: PositionWeights | None = None) -> list[dict]:
    """Credit per currency and role: marketing (digital touches) and each rep role (SDR, AE, …)."""
    credit: dict[tuple[str, str], float] = {}
    for j in journeys:
        touches = _touches(j)
        currency, revenue = j.get("currency") or "", float(j["revenue"])
        for touch, w in zip(touches, weights(model, touches, j.get("mql_at"), j.get("opp_at"), j["won_at"], custom),
                                   strict=True):
            key = (currency, touch.role())
            credit[key] = credit.get(key, 0.0) + w * revenue
    return _shares(credit, "role")


def team_split(rows: Sequence[dict]) -> list[dict]:
    """Marketing vs sales (and other teams) share of the credited revenue, per currency."""
    credit: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r.get("currency", ""), r["team"])
        credit[key] = credit.get(key, 0.0) + r["credit"]
    return _shares(credit, "team")


def _shares(credit: dict[tuple[str, str], float], name: str) -> list[dict]:
    totals: dict[str, float] = {}
    for (currency, _), v in credit.items():
        totals[currency] = totals.get(currency, 0.0) + v
    return [{"currency": cur, name: who, "credit": round(v, 2), "share": round(v / (totals[cur] or 1.0), 4)}
            for (cur, who), v in sorted(credit.items())]
