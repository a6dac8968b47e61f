"""CLI output of values that came from events (anyone with a write key): no terminal escapes or
Rich markup in tables, no spreadsheet formulas in CSV (issue 20, "Smaller")."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from streams.cli.importing import PresetReport, Row, Summary, check
from streams.cli.ingest_commands import _print_summary
from streams.cli.output import emit
from streams.cli.presets import Context
from streams.settings import Settings

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


def test_the_import_summary_shows_reasons_and_owners_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    """The summary of ``journeys import`` lists the commonest rejection reasons, whose paths
    carry the file's property keys and type names, and a preset's unknown owners (CSV cells)."""
    key = orjson.dumps("\x1b]0;pwned\x07\x1b[2J[bold]k[/bold]")  # escaped in the JSON, not in the path
    line = b'{"type":"[blink]x[/blink]","messageId":"m","userId":"u"}'
    deep = b'{"type":"track","messageId":"m","userId":"u","event":"e","properties":{' + key + b":" \
        + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}}"
    summary = Summary(rejected=2)
    for raw in (line, deep):
        _, error = check(Row(1, len(raw), raw), datetime.now(timezone.utc), timedelta(minutes=5))
        assert error is not None
        summary.reasons.update(str(r)[:160] for r in error.reasons)
    context = Context()
    context.unknown_owners["[red]Eve\x1b[5m"] += 3
    _print_summary(Settings(), Path("f.csv"), summary, "hubspot-deal", PresetReport("hubspot-deal"), context)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "[blink]x[/blink]" in out and "[bold]k[/bold]" in out and "[red]Eve" in out
