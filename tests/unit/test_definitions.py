"""The shared definitions file: the default is valid; mistakes get precise messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from schemas.definitions import DEFAULT_PATH, check, load
from schemas.errors import ConfigurationError

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
