"""ruff on the contract, the rules and the steps; strict mypy on the contract and the steps
(``pyproject.toml`` holds both configurations)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_passes_on_schemas_rules_and_steps() -> None:
    done = run("ruff", "check", "schemas", "streams/rules", "streams/steps")
    assert done.returncode == 0, done.stdout + done.stderr


def test_strict_mypy_passes_on_schemas_and_the_steps() -> None:
    done = run("mypy", "-p", "schemas", "-p", "streams.steps")
    assert done.returncode == 0, done.stdout + done.stderr
