"""CLI output of values that came from events (anyone with a write key): no terminal escapes or
Rich markup in tables, no spreadsheet formulas in CSV (issue 20, "Smaller")."""

from __future__ import annotations

import csv
import io

import pytest

from streams.cli.output import emit

HOSTILE = {"event": "\x1b]0;pwned\x07\x1b[31mred [bold]markup[/bold] [link=https://evil.example]x[/link]",
           "name": '=HYPERLINK("https://evil.example","click")', "plan": "@SUM(1+1)", "delta": "-3", "n": -4}


def test_a_table_shows_markup_as_text_and_no_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    emit([HOSTILE], "table", columns=["event"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b" in out and "[bold]markup[/bold]" in out and "[link=" in out


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(capsys: pytest.CaptureFixture[str]) -> None:
    emit([HOSTILE], "csv", columns=["name", "plan", "delta", "n"])
    (row,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row == {"name": "'" + HOSTILE["name"], "plan": "'@SUM(1+1)", "delta": "-3", "n": "-4"}
