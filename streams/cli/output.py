"""Render query results as a table, JSON or CSV."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

FORMATS = click.Choice(["table", "json", "csv"])


def emit(records: list[dict[str, Any]], fmt: str, *, title: str = "", columns: list[str] | None = None) -> None:
    columns = columns or (list(records[0]) if records else [])
    if fmt == "json":
        sys.stdout.buffer.write(orjson.dumps(records, option=orjson.OPT_INDENT_2) + b"\n")
        return
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        return
    table = Table(title=title or None, show_lines=False)
    for col in columns:
        table.add_column(col)
    for rec in records:
        table.add_row(*("" if rec.get(c) is None else str(rec.get(c)) for c in columns))
    Console(width=200).print(table)
