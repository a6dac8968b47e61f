"""Attribution weights (pure): every model's shares exactly, custom models from the definitions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from schemas.definitions import DEFAULT_PATH, PositionWeights, check
from schemas.errors import ConfigurationError
from sinks.clickhouse.attribution import Touch, attribute, role_split, weights

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def path(*channels: str) -> list[Touch]:
    sides = {"call": ("human", "sales", "SDR"), "meeting": ("human", "sales", "AE")}
    return [Touch(T0 + timedelta(days=i), ch, *sides.get(ch, ("digital", "marketing", "")), f"e{i}")
            for i, ch in enumerate(channels)]


TOUCHES = path("ads", "web", "content", "call", "meeting", "web")  # days 0..5
MQL, OPP, WON = T0 + timedelta(days=2, hours=1), T0 + timedelta(days=3, hours=1), T0 + timedelta(days=9)


@pytest.mark.parametrize("model, expect", [
    ("first_touch", [1, 0, 0, 0, 0, 0]),
    ("last_touch", [0, 0, 0, 0, 0, 1]),
    ("lead_creation", [0, 0, 1, 0, 0, 0]),
    ("u_shaped", [0.4, 0.05, 0.4, 0.05, 0.05, 0.05]),
    ("w_shaped", [0.3, 0.1 / 3, 0.3, 0.3, 0.1 / 3, 0.1 / 3]),
    ("full_path", [0.225, 0.05, 0.225, 0.225, 0.05, 0.225]),
    ("linear", [1 / 6] * 6),
])
def test_each_model_gives_its_documented_shares(model: str, expect: list[float]) -> None:
    assert weights(model, TOUCHES, MQL, OPP, WON) == pytest.approx(expect)


def test_a_custom_model_from_the_definitions_file() -> None:
    custom = PositionWeights(first=0.2, lead=0.2, opportunity=0.35, last=0.15, rest=0.1)
    got = weights("sales_assist", TOUCHES, MQL, OPP, WON, custom)
    assert got == pytest.approx([0.2, 0.05, 0.2, 0.35, 0.05, 0.15])
    # no MQL: the lead share goes to the touches that are not milestones
    got = weights("sales_assist", TOUCHES, None, OPP, WON, custom)
    assert got == pytest.approx([0.2, 0.1, 0.1, 0.35, 0.1, 0.15])
    assert sum(got) == pytest.approx(1)


def test_credit_is_split_by_team_and_rep_role_and_kept_per_currency() -> None:
    journeys = [{"touches": [(t.at, t.channel, t.side, t.team, t.rep_role, t.event_id) for t in TOUCHES],
                 "revenue": 1000.0, "currency": "EUR", "mql_at": MQL, "opp_at": OPP, "won_at": WON},
                {"touches": [(t.at, t.channel, t.side, t.team, t.rep_role, t.event_id) for t in TOUCHES[:2]],
                 "revenue": 500.0, "currency": "USD", "mql_at": None, "opp_at": None, "won_at": WON}]
    roles = {(r["currency"], r["role"]): r["credit"] for r in role_split(journeys, "w_shaped")}
    assert roles == pytest.approx({("EUR", "marketing"): 300 + 100 / 3 + 300 + 100 / 3, ("EUR", "SDR"): 300,
                                   ("EUR", "AE"): 100 / 3, ("USD", "marketing"): 500}, abs=0.01)  # rounded to cents
    rows = attribute(journeys, "first_touch", {})
    assert [(r["currency"], r["channel"], r["credit"], r["share"]) for r in rows] == [
        ("EUR", "ads", 1000.0, 1.0), ("USD", "ads", 500.0, 1.0)]


def test_definitions_reject_weights_that_do_not_sum_to_one_and_taken_names() -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    data["attribution"]["models"]["lopsided"] = {"first": 0.5, "rest": 0.2}
    with pytest.raises(ConfigurationError, match=r"attribution\.models\.lopsided: Value error, first \+ lead"):
        check(yaml.safe_dump(data), "defs.yaml")
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    data["attribution"]["models"]["linear"] = {"rest": 1}
    with pytest.raises(ConfigurationError, match="model names already taken by built-in models: linear"):
        check(yaml.safe_dump(data), "defs.yaml")
