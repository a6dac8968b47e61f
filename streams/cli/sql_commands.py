"""`journeys sql` and `journeys export`: analysts' SQL on the store, read-only (streams/cli/sql_client.py)."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import click
import orjson
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from sinks.clickhouse import sql_guard
from streams.cli import sql_client
from streams.cli.commands import settings_of
from streams.cli.output import emit

ENGINE_FORMAT = {"table": "JSONEachRow", "json": "JSONEachRow", "csv": "CSVWithNames", "parquet": "Parquet"}
ALIASES = {"events": "journey_events"}
"""Export names for the analyst views: ``events`` is every event on its account (docs/analytics.md)."""
TIME_COLUMNS = ("event_time", "changed_at", "rejected_at", "raised_at", "created_at", "updated_at", "linked_at")
_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")


def since_of(value: str, now: datetime | None = None) -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w`` ago, or an ISO date/time (UTC unless it says otherwise)."""
    now = now or datetime.now(timezone.utc)
    found = _RELATIVE.match(value.strip())
    if found:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[found.group(2)]
        return now - timedelta(**{unit: int(found.group(1))})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: use 7d, 12h, 30m, 2w or an ISO date such as 2026-11-01") from exc
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _write(result: sql_client.Result, out: BinaryIO, what: str) -> int:
    """Copy the result's chunks to ``out``, with a progress bar on a terminal."""
    written = 0
    with Progress(TextColumn(what), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  disable=not sys.stderr.isatty(), transient=True) as progress:
        task = progress.add_task(what, total=result.length)
        for chunk in result.chunks:
            out.write(chunk)
            written += len(chunk)
            progress.update(task, advance=len(chunk))
    return written


@click.command("sql")
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(list(ENGINE_FORMAT)), default="table", show_default=True,
              help="Output format (parquet needs --output or a redirected stdout).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.pass_context
def sql(ctx: click.Context, query: str, fmt: str, output: Path | None) -> None:
    """Run a read-only SQL QUERY on the store (as analysts' tools do through the SQL endpoint).

    SELECT, SHOW, DESCRIBE and EXISTS only; dead-letter payloads are not readable; the
    JOURNEYS_SQL__* caps apply. A FORMAT clause in QUERY is written out as the engine gives it."""
    settings = settings_of(ctx)
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        raise click.UsageError("parquet is binary: give --output FILE or redirect stdout")
    result = sql_client.run(settings, query, ENGINE_FORMAT[fmt])
    if output is not None or fmt in ("csv", "parquet") or result.fmt != ENGINE_FORMAT[fmt]:
        with (output.open("wb") if output else _stdout()) as out:
            _write(result, out, f"writing {output}" if output else "")
        return
    records = [orjson.loads(line) for line in b"".join(result.chunks).splitlines() if line.strip()]
    emit(records, fmt)


@click.command("export")
@click.argument("table")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option("--since", help="Only rows from then on: 7d, 12h, 30m, 2w or an ISO date/time (UTC).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write; default TABLE.parquet / TABLE.csv.")
@click.pass_context
def export(ctx: click.Context, table: str, fmt: str, since: str | None, output: Path | None) -> None:
    """Export TABLE (a table or view; `events` = journey_events) to a Parquet or CSV file.

    --since filters on the table's time column (event_time, changed_at, rejected_at …).
    Dead letters are exported without their payload."""
    settings = settings_of(ctx)
    name = ALIASES.get(table, table)
    try:
        sql_guard.identifier(name, "TABLE")
    except sql_guard.Refused as exc:
        raise click.BadParameter(str(exc), param_hint="TABLE") from exc
    hidden = sql_guard.HIDDEN.get(name)
    columns = f"* EXCEPT ({', '.join(sorted(hidden))})" if hidden else "*"
    query = f"SELECT {columns} FROM {name}"
    if since:
        column = _time_column(settings, name)
        when = since_of(since).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        query += f" WHERE {column} >= toDateTime64('{when}', 3, 'UTC')"
    output = output or Path(f"{table}.{fmt}")
    click.echo(f"exporting {name}{' since ' + since if since else ''} …", err=True)
    result = sql_client.run(settings, query, "Parquet" if fmt == "parquet" else "CSVWithNames")
    with output.open("wb") as out:
        size = _write(result, out, f"writing {output}")
    click.echo(f"wrote {output} ({size:,} bytes)", err=True)


def _time_column(settings, name: str) -> str:  # type: ignore[no-untyped-def]
    result = sql_client.run(settings, f"SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                                      f"AND table = '{name}'", "JSONEachRow")
    cols = [orjson.loads(line) for line in b"".join(result.chunks).splitlines() if line.strip()]
    if not cols:
        raise click.BadParameter(f"no table or view {name!r}; see `journeys sql 'SHOW TABLES'`", param_hint="TABLE")
    for preferred in TIME_COLUMNS:
        if any(c["name"] == preferred for c in cols):
            return preferred
    for c in cols:
        if "DateTime" in c["type"]:
            return c["name"]
    raise click.BadParameter(f"{name} has no time column for --since", param_hint="--since")


class _stdout:
    def __enter__(self) -> BinaryIO:
        return sys.stdout.buffer

    def __exit__(self, *exc: object) -> None:
        sys.stdout.buffer.flush()


ALL = [sql, export]
