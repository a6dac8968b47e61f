"""Render query results as a table, JSON or CSV.

Values come from events, so from anyone with a write key: a table shows them as plain text
(no Rich markup, control characters such as the terminal's ESC shown as ``\\x1b``), and a CSV cell
starting with ``= + - @`` (or a tab/CR) is prefixed with ``'`` so a spreadsheet does not run it
as a formula. JSON is escaped by the JSON writer.
"""

from __future__ import annotations

import csv
import re
import sys
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

FORMATS = click.Choice(["table", "json", "csv"])
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?")


def printable(text: str) -> str:
    """``text`` without control characters a terminal would act on (shown as ``\\xNN``)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet would read as a formula, quoted with a leading ``'`` (OWASP);
    a number written as text (``-3``: ClickHouse quotes 64-bit integers) is left as it is."""
    if isinstance(value, str) and value.startswith(_FORMULA) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def emit(records: list[dict[str, Any]], fmt: str, *, title: str = "", columns: list[str] | None = None) -> None:
    columns = columns or (list(records[0]) if records else [])
    if fmt == "json":
        sys.stdout.buffer.write(orjson.dumps(records, option=orjson.OPT_INDENT_2) + b"\n")
        return
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: csv_safe(v) for k, v in rec.items()} for rec in records)
        return
    table = Table(title=title or None, show_lines=False)
    for col in columns:
        table.add_column(col)
    for rec in records:
        table.add_row(*(Text("" if rec.get(c) is None else printable(str(rec.get(c)))) for c in columns))
    Console(width=200).print(table)
