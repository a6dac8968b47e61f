"""``journeys import``: CSV/NDJSON files of events → inbound topic; bad rows → dead letters.

Rows are read and validated here (the worker validates again: the file is checked early so the
operator sees every problem at once). Accepted rows are produced with acks=all; a rejected row
is dead-lettered with ``source_kind="import"`` and ``source="import:<file name>:<line>"``.

* NDJSON: one event per line; the produced / dead-lettered value is the line's original bytes.
* CSV: a header row of model field names (``type`` may come from ``--type``); empty cells are
  absent; ``contactEmails`` is ``;``-separated; a dotted column (``properties.plan``) nests.
  Values stay strings (pydantic coerces ``"540"`` and ``"48000.00"``). The value produced or
  dead-lettered is the row as a JSON object (a bare CSV line is meaningless without its header).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
from kafka.errors import KafkaError

from schemas.decode import decode
from schemas.errors import InvalidEvent, Reason
from schemas.keys import inbound_key, raw_key
from streams import topics as t
from streams.agents.dlq import headers as dlq_headers
from streams.cli.presets import Cells, Context, Preset, Unmappable
from streams.headers import SOURCE_HEADER
from streams.producer import make_producer
from streams.settings import Settings

LIST_FIELDS = frozenset({"contactEmails"})
_CHECK_EVERY = 1000


@dataclass(frozen=True)
class Row:
    """One record of the file: its first line number, size in the file, and JSON value."""

    line: int
    size: int
    value: bytes
    error: InvalidEvent | None = None


@dataclass
class Summary:
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    unmapped_columns: list[str] = field(default_factory=list)
    """With a preset: the file's columns the preset does not read."""
    unknown_owners: Counter[str] = field(default_factory=Counter)
    """With a preset: owners missing from the definitions' ``reps:`` map (imported as ``other``)."""


class PresetMismatch(ValueError):
    """The file lacks columns the preset needs: nothing is imported."""


def infer_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".ndjson", ".jsonl", ".json"):
        return "ndjson"
    raise ValueError(f"cannot tell the format of {path.name!r} from its extension; pass --format")


def read_ndjson(data: bytes) -> Iterator[Row]:
    for number, line in enumerate(data.splitlines(keepends=True), 1):
        if line.strip():
            yield Row(number, len(line), line.strip())


def csv_event(row: dict[str, str], event_type: str | None) -> dict[str, Any]:
    """One CSV row → an event object (empty cells dropped, lists split, dotted names nested)."""
    event: dict[str, Any] = {"type": event_type} if event_type else {}
    for name, cell in row.items():
        if cell is None or not cell.strip():
            continue
        value: Any = [p.strip() for p in cell.split(";") if p.strip()] if name in LIST_FIELDS else cell.strip()
        _put(event, name.strip(), value)
    return event


def _put(event: dict[str, Any], name: str, value: Any) -> None:
    *parents, leaf = name.split(".")
    node = event
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return  # both "a" and "a.b" columns: the plain one wins
        node = child
    node[leaf] = value


def _csv_records(data: bytes) -> tuple[list[str] | None, Iterator[tuple[int, int, str, list[str]]]]:
    """The header and, lazily, each record: (first line, size in bytes, raw text, cells)."""
    lines = io.StringIO(data.decode("utf-8-sig")).readlines()
    consumed: list[str] = []

    def feed() -> Iterator[str]:
        for text in lines:
            consumed.append(text)
            yield text

    reader = csv.reader(feed())
    header = next(reader, None)

    def records() -> Iterator[tuple[int, int, str, list[str]]]:
        first = len(consumed) + 1
        for cells in reader:
            record = consumed[first - 1 :]
            raw, size = "".join(record), sum(len(x.encode()) for x in record)
            line, first = first, len(consumed) + 1
            if any(c.strip() for c in cells):
                yield line, size, raw, cells

    return header, records()


def _cell_count_error(cells: list[str], header: list[str] | None) -> InvalidEvent | None:
    if header is None or len(cells) != len(header):
        return InvalidEvent([Reason("$", f"row has {len(cells)} cells; the header has {len(header or [])}")])
    return None


def read_csv(data: bytes, event_type: str | None) -> Iterator[Row]:
    header, records = _csv_records(data)
    for line, size, raw, cells in records:
        error = _cell_count_error(cells, header)
        if error is not None:
            yield Row(line, size, raw.rstrip("\r\n").encode(), error)
            continue
        yield Row(line, size, orjson.dumps(csv_event(dict(zip(header or [], cells, strict=True)), event_type)))


def csv_header(data: bytes) -> list[str]:
    """The header row of a CSV file ([] when the file is empty)."""
    header, _ = _csv_records(data)
    return header or []


def read_preset(data: bytes, preset: Preset, ctx: Context) -> Iterator[Row]:
    """A CRM export → events by ``preset``: a row may give several events (same line); a row
    the preset cannot map is one invalid Row whose value is the export row as a JSON object."""
    header, records = _csv_records(data)
    for line, size, raw, cells in records:
        error = _cell_count_error(cells, header)
        if error is not None:
            yield Row(line, size, raw.rstrip("\r\n").encode(), error)
            continue
        row = dict(zip(header or [], cells, strict=True))
        try:
            events = preset.map_row(Cells(row), ctx)
        except Unmappable as exc:
            reason = Reason(f"$.{exc.column}", f"{exc.message} (preset {preset.name})")
            yield Row(line, size, orjson.dumps(row), InvalidEvent([reason], stage="map"))
            continue
        for number, event in enumerate(events):
            yield Row(line, size if number == 0 else 0, orjson.dumps(event))


def check(row: Row, received_at: datetime, max_future: timedelta) -> tuple[bytes | None, InvalidEvent | None]:
    """(Kafka key, None) for a valid row, (best-effort key, error) for an invalid one."""
    if row.error is not None:
        return None, row.error
    try:
        event, _ = decode(row.value, received_at=received_at, max_future=max_future)
    except InvalidEvent as exc:
        try:
            key = raw_key(orjson.loads(row.value))
        except orjson.JSONDecodeError:
            key = None
        return (key.encode() if key else None), exc
    key = inbound_key(event)
    return (key.encode() if key else None), None


def preset_rows(data: bytes, preset: Preset, ctx: Context, summary: Summary) -> Iterator[Row]:
    """Check the header against ``preset`` (``PresetMismatch`` if required columns are missing),
    note its unmapped columns in ``summary``, and return the mapped rows."""
    header = csv_header(data)
    missing = preset.missing(header)
    if missing:
        raise PresetMismatch(f"the file has no column {', '.join(repr(m) for m in missing)} that preset "
                             f"{preset.name} ({preset.crm} {preset.object}) needs; its header: {', '.join(header)}")
    summary.unmapped_columns = preset.unmapped(header)
    return read_preset(data, preset, ctx)


def run_import(settings: Settings, path: Path, fmt: str, *, event_type: str | None = None,
               preset: Preset | None = None, context: Context | None = None,
               on_progress: Callable[[int], None] = lambda n: None) -> Summary:
    """Validate and produce every record of ``path``; raise ``KafkaError`` if the broker fails.
    With ``preset`` the file is a CRM export (CSV) mapped by it; ``PresetMismatch`` if the file's
    header lacks a required column."""
    data = path.read_bytes()
    summary = Summary()
    ctx = context or Context()
    if preset is not None:
        rows = preset_rows(data, preset, ctx, summary)
    else:
        rows = read_csv(data, event_type) if fmt == "csv" else read_ndjson(data)
    inbound, dead = t.name(t.INBOUND, settings.topic_prefix), t.name(t.INBOUND_DLQ, settings.topic_prefix)
    origin = [(SOURCE_HEADER, f"import:{path.name}".encode())]
    max_future = timedelta(seconds=settings.max_future_seconds)
    pending: list[Any] = []
    producer = make_producer(settings)
    try:
        for row in rows:
            key, error = check(row, datetime.now(timezone.utc), max_future)
            if error is None:
                pending.append(producer.send(inbound, key=key, value=row.value, headers=origin))
                summary.accepted += 1
            else:
                source = f"import:{path.name}:{row.line}"
                headers = list(dlq_headers("import", source, row.value, error).items()) + origin
                pending.append(producer.send(dead, key=key, value=row.value, headers=headers))
                summary.rejected += 1
                summary.reasons.update(str(r)[:160] for r in error.reasons)
            on_progress(row.size)
            if len(pending) >= _CHECK_EVERY:
                _wait(producer, pending)
        _wait(producer, pending)
    finally:
        producer.close(timeout=10)
    summary.unknown_owners = ctx.unknown_owners
    return summary


def _wait(producer: Any, pending: list[Any]) -> None:
    producer.flush(timeout=60)
    for future in pending:
        future.get(timeout=60)
    pending.clear()


__all__ = ["KafkaError", "PresetMismatch", "Summary", "preset_rows", "read_preset", "infer_format", "run_import", "csv_event", "read_csv", "read_ndjson", "check"]
