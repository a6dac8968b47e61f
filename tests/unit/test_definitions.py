"""The shared definitions file: the default is valid; mistakes get precise messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from schemas.definitions import DEFAULT_PATH, check, load
from schemas.errors import ConfigurationError
from streams.rules import alerts
from streams.rules.journey import new_journey, on_journey_event
from tests.support import events as ev
from tests.unit.test_journey_rules import entry

ROOT = Path(__file__).resolve().parents[2]


def problems(mutate) -> str:
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    mutate(data)
    with pytest.raises(ConfigurationError) as info:
        check(yaml.safe_dump(data), "defs.yaml")
    return str(info.value)


def test_default_file_is_valid() -> None:
    defs = load()
    assert defs.stage("mql") is not None and defs.persona_of("Chief Revenue Officer") == "executive"


def test_exact_error_messages() -> None:
    assert problems(lambda d: d.pop("sla")) == "defs.yaml: 1 problem(s)\n$.sla: Field required"
    assert problems(lambda d: d["channels"]["web"].update(side="offline")) == (
        "defs.yaml: 1 problem(s)\n$.channels.web.side: Input should be 'digital', 'human' or 'crm'"
    )
    assert problems(lambda d: d["stages"][0].update(when=[{}])) == (
        "defs.yaml: 1 problem(s)\n$.stages[0].when[0]: Value error, a condition needs score_at_least, "
        "lead_status, opportunity or conversation_outcome"
    )
    assert problems(lambda d: d["personas"][0].update(title_patterns=["(unclosed"])) == (
        "defs.yaml: 1 problem(s)\n$.personas[0].title_patterns: Value error, not a regular expression: "
        "'(unclosed' (missing ), unterminated subpattern at position 0)"
    )
    assert problems(lambda d: d["scoring"]["channel_points"].update(fax=3)) == (
        "defs.yaml: 1 problem(s)\n$: Value error, scoring.channel_points names unknown channels: fax"
    )
    assert problems(lambda d: d["stages"].append(dict(d["stages"][0]))) == (
        "defs.yaml: 1 problem(s)\n$: Value error, stage names must be unique; repeated: engaged"
    )
    assert problems(lambda d: d.update(colour="red")) == (
        "defs.yaml: 1 problem(s)\n$.colour: Extra inputs are not permitted"
    )


def test_check_command_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: x\n")
    run = lambda f: subprocess.run([sys.executable, "-m", "streams", "definitions", "check", str(f)],  # noqa: E731
                                   capture_output=True, text=True, cwd=ROOT, timeout=60)
    ok = run(DEFAULT_PATH)
    assert ok.returncode == 0 and "ok (version 2026.1" in ok.stdout
    failed = run(bad)
    assert failed.returncode == 1 and "$.activated_at: Field required" in failed.stderr


def _stage(data: dict, name: str) -> dict:
    return next(s for s in data["stages"] if s["name"] == name)


def test_conditions_naming_unknown_lead_statuses_or_outcomes_are_refused() -> None:
    assert "stage mql: lead_status 'marketing_qualified' is not a lead status; one of accepted, disqualified" in \
        problems(lambda d: _stage(d, "mql")["when"].append({"lead_status": ["marketing_qualified"]}))
    assert "stage sql: conversation_outcome 'demo_done' is not an outcome" in \
        problems(lambda d: _stage(d, "sql")["when"].append({"conversation_outcome": ["demo_done"]}))


def test_stage_names_are_identifiers_and_roles_unique() -> None:
    assert "String should match pattern" in problems(lambda d: _stage(d, "sal").update(name="sales accepted"))
    assert "stage roles must be unique; repeated: won" in problems(lambda d: _stage(d, "lost").update(role="won"))


def test_roles_name_the_stages_the_reports_and_alerts_use_whatever_they_are_called() -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    renamed = {"mql": "mqa", "opportunity": "pipeline", "won": "closed_won", "lost": "closed_lost"}
    for stage in data["stages"]:
        stage["name"] = renamed.get(stage["name"], stage["name"])
    defs = check(yaml.safe_dump(data))
    assert [defs.stage_for(r) for r in ("qualified", "opportunity", "won", "lost")] == \
        ["mqa", "pipeline", "closed_won", "closed_lost"]
    assert defs.funnel_stages() == ["engaged", "mqa", "sal", "sql", "pipeline", "closed_won"]
    for stage in data["stages"]:  # a file written before roles: the stages named as the roles take them
        stage.pop("role", None)
        stage["name"] = {v: k for k, v in renamed.items()}.get(stage["name"], stage["name"])
    old = check(yaml.safe_dump(data))
    assert [old.stage_for(r) for r in ("qualified", "opportunity", "won", "lost")] == ["mql", "opportunity", "won", "lost"]
    for stage in data["stages"]:
        stage["name"] = renamed.get(stage["name"], stage["name"])
    assert check(yaml.safe_dump(data)).stage_for("qualified") == ""  # renamed without a role: none


def test_renamed_stages_still_drive_the_handoff_clock_and_the_timers() -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    for stage in data["stages"]:
        stage["name"] = {"mql": "mqa", "opportunity": "pipeline"}.get(stage["name"], stage["name"])
    defs = check(yaml.safe_dump(data))
    state = new_journey()
    for h in range(1, 8):
        on_journey_event(state, entry(ev.page(h, user="jane", path="/pricing")), "acme", defs)
    assert state["stage"] == "mqa" and state["mql_at_ms"]
    due = alerts.next_due_ms(state, defs)
    assert due == state["mql_at_ms"] + int(defs.sla.mql_first_touch_hours * 3_600_000)
    assert [a.rule for a in alerts.on_tick(state, "acme", due + 1, defs)] == ["missed_handoff"]
    fresh = new_journey() | {"last_touch_ms": 1}  # no stage yet: no timer whatever the role names
    data["stages"] = [s for s in data["stages"] if s["name"] != "pipeline"]
    data["alerts"]["committee_from_stage"] = "sql"
    no_opportunity = check(yaml.safe_dump(data))
    assert alerts.on_tick(fresh, "acme", 10**13, no_opportunity) == []
