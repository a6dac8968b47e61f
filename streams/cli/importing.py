"""``journeys import``: CSV/NDJSON files of events → inbound topic; bad rows → dead letters.

Rows are read and validated here (the worker validates again: the file is checked early so the
operator sees every problem at once). Accepted rows are produced with acks=all; a rejected row
is dead-lettered with ``source_kind="import"`` and ``source="import:<file name>:<line>"``.

* NDJSON: one event per line; the produced / dead-lettered value is the line's original bytes.
* CSV: a header row of model field names (``type`` may come from ``--type``); empty cells are
  absent; ``contactEmails`` is ``;``-separated; a dotted column (``properties.plan``) nests.
  Values stay strings (pydantic coerces ``"540"`` and ``"48000.00"``). The value produced or
  dead-lettered is the row as a JSON object (a bare CSV line is meaningless without its header).
* CSV through a preset (``--preset salesforce-task``, :mod:`streams.cli.presets`): a CRM export
  as its tool wrote it; each row becomes zero or more events; a row the preset cannot map is
  dead-lettered as the row's JSON object with the column and reason.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, Callable, Generator, Iterator

import orjson
from kafka.errors import KafkaError

from schemas.decode import decode
from schemas.errors import InvalidEvent, Reason
from schemas.events import MAX_EVENT_BYTES
from schemas.keys import inbound_key, raw_key
from streams import topics as t
from streams.agents.dlq import headers as dlq_headers
from streams.cli.output import printable
from streams.cli.presets import Cells, Context, Preset, Unmappable
from streams.deadletters import redact_write_keys
from streams.headers import SOURCE_HEADER
from streams.producer import make_producer
from streams.settings import Settings

LIST_FIELDS = frozenset({"contactEmails"})
_BAD_BYTE = re.compile("[\udc80-\udcff]")
"""A byte that is not UTF-8, as ``surrogateescape`` decodes it."""
_CHECK_EVERY = 1000


@dataclass(frozen=True)
class Row:
    """One record of the file: its first line number, size in the file, and JSON value."""

    line: int
    size: int
    value: bytes
    error: InvalidEvent | None = None
    skip: bool = False
    """Nothing to produce (a row the preset skips); only its size counts for progress."""


@dataclass
class Summary:
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def infer_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".ndjson", ".jsonl", ".json"):
        return "ndjson"
    raise ValueError(f"cannot tell the format of {path.name!r} from its extension; pass --format")


Source = bytes | Path
"""A file to read: its path (read as it is consumed, never whole) or, in tests, its bytes."""


def _binary(source: Source) -> IO[bytes]:
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115 - closed by callers


def read_ndjson(source: Source) -> Iterator[Row]:
    """One Row per non-blank line (lines end with ``\\n``; a ``\\r\\n`` ending is stripped with
    the spaces), the file read as the rows are consumed: a file of any size imports in bounded
    memory."""
    with _binary(source) as lines:
        for number, line in enumerate(lines, 1):
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


def _csv_records(source: Source) -> Generator[tuple[int, int, str, list[str], str | None], None, None]:
    """(first line, size in bytes, raw text, cells, problem) of every record, the header first;
    a quoted cell may span lines. The UTF-8 byte-order mark exports often start with is dropped.
    Bytes that are not UTF-8 are kept as surrogates (``surrogateescape``), so one bad byte costs
    only its row (:func:`_unreadable`), not the import; so does a record the csv module refuses
    (a cell over its 128 KiB field limit): no cells, and the problem. The file is read as the
    records are consumed, and only the current record's lines are kept."""
    # newline="\n": lines end at "\n" only, their endings as they were (a "\r" inside a cell stays)
    with io.TextIOWrapper(_binary(source), encoding="utf-8-sig", errors="surrogateescape", newline="\n") as lines:
        consumed: list[str] = []

        def feed() -> Iterator[str]:
            for text in lines:
                consumed.append(text)
                yield text

        first, reader = 1, csv.reader(feed())
        while True:
            problem = None
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # the reader goes on with the next line
                cells, problem = [], f"row cannot be read as CSV: {exc} (the other rows are imported)"
            if first == 1:  # the header: a bad byte in a column name becomes U+FFFD (names, not data)
                cells = [_BAD_BYTE.sub("\ufffd", c) for c in cells]
            raw, size = "".join(consumed), sum(len(x.encode("utf-8", "surrogateescape")) for x in consumed)
            yield first, size, raw, cells, problem
            first += len(consumed)
            consumed.clear()


def _unreadable(line: int, size: int, raw: str, problem: str | None) -> Row | None:
    """The invalid Row of a record the csv module refused (``problem``) or with bytes that are
    not UTF-8 (its original bytes kept), or None."""
    bad = _BAD_BYTE.search(raw)
    if problem is None and bad is None:
        return None
    if problem is None:
        assert bad is not None
        problem = (f"row is not UTF-8: byte 0x{ord(bad.group()) - 0xDC00:02x} at character {bad.start() + 1} "
                   "(the other rows are imported)")
    return Row(line, size, raw.rstrip("\r\n").encode("utf-8", "surrogateescape"), InvalidEvent([Reason("$", problem)]))


def read_csv(source: Source, event_type: str | None) -> Iterator[Row]:
    records = _csv_records(source)
    header = next(records, (0, 0, "", None))[3]
    for line, size, raw, cells, problem in records:
        if problem is None and not any(c.strip() for c in cells):
            continue
        bad = _unreadable(line, size, raw, problem)
        if bad is not None:
            yield bad
            continue
        if header is None or len(cells) != len(header):
            error = InvalidEvent([Reason("$", f"row has {len(cells)} cells; the header has {len(header or [])}")])
            yield Row(line, size, raw.rstrip("\r\n").encode(), error)
            continue
        yield Row(line, size, orjson.dumps(csv_event(dict(zip(header, cells, strict=True)), event_type)))


class MissingColumns(ValueError):
    """The file lacks columns the preset requires: nothing is imported."""


@dataclass
class PresetReport:
    """What a preset made of the file besides the events: columns it does not read, rows that
    are no buyer touch, owners missing from the definitions' ``reps:`` map."""

    preset: str
    unmapped: list[str] = field(default_factory=list)
    skipped: int = 0


def preset_header(source: Source, preset: Preset) -> tuple[dict[int, str], list[str]]:
    """(position → column, unmapped header names); ``MissingColumns`` when required ones are absent."""
    records = _csv_records(source)
    try:
        header = next(records, (0, 0, "", []))[3]
    finally:
        records.close()  # the file: only its header was read
    positions, missing, unmapped = preset.resolve(header)
    if missing:
        raise MissingColumns(f"{preset.name}: the file has no column {', '.join(repr(m) for m in missing)} "
                             f"(required); its columns: {printable(', '.join(header)) or 'none'}")  # the file's: inert
    return positions, unmapped


def read_preset(source: Source, preset: Preset, ctx: Context, report: PresetReport) -> Iterator[Row]:
    """Each CSV row through ``preset``: one Row per event; a row the preset cannot map is one
    invalid Row holding the row as a JSON object under its original column names."""
    positions, report.unmapped = preset_header(source, preset)
    records = _csv_records(source)
    header = next(records)[3]
    for line, size, raw, cells, problem in records:
        if problem is None and not any(c.strip() for c in cells):
            continue
        bad = _unreadable(line, size, raw, problem)
        if bad is not None:
            yield bad
            continue
        if len(cells) != len(header):
            error = InvalidEvent([Reason("$", f"row has {len(cells)} cells; the header has {len(header)}")])
            yield Row(line, size, raw.rstrip("\r\n").encode(), error)
            continue
        try:
            events = preset.build(Cells({positions[i]: c for i, c in enumerate(cells) if i in positions}), ctx)
        except Unmappable as exc:
            original = orjson.dumps({name: cell for name, cell in zip(header, cells, strict=True) if cell})
            yield Row(line, size, original, InvalidEvent([Reason(f"$.{exc.column}", str(exc))]))
            continue
        if not events:
            report.skipped += 1
            yield Row(line, size, b"", skip=True)
        for n, event in enumerate(events):
            yield Row(line, size if n == 0 else 0, orjson.dumps(event))


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


def dead_letter(value: bytes, error: InvalidEvent, keep: int = MAX_EVENT_BYTES) -> tuple[bytes, InvalidEvent]:
    """The value and error a rejected row is dead-lettered with: a row over ``keep`` bytes (no
    event is that large) keeps its first ``keep``, as the collector does, so its dead letter fits
    the producer's request limit (1 MiB) and does not stop the import. A ``writeKey`` in it is
    redacted (as the collector does), every other byte kept."""
    value = redact_write_keys(value)
    if len(value) <= keep:
        return value, error
    kept = Reason("$", f"row is {len(value)} bytes (dead letter keeps the first {keep} bytes)")
    return value[:keep], InvalidEvent([*error.reasons, kept], stage=error.stage, oversized=True)


PARALLEL_FROM_BYTES = 4 * 1024 * 1024
"""Files this large are validated in a second process while this one produces (two cores)."""
_CHUNK = 2000
_AHEAD = 4
"""Chunks validated ahead of the producer (bounded: the file is in memory once already)."""

Checked = tuple[bytes | None, tuple[list[Reason], str, bool] | None]


def check_values(values: list[bytes | None], max_future: timedelta) -> list[Checked]:
    """:func:`check` for a chunk of row values, in a validation process: (key, None) or (key,
    the error's reasons, stage, oversized) — an exception's own pickling would lose its reasons.
    ``None`` values (rows with nothing to check) give (None, None)."""
    out: list[Checked] = []
    for value in values:
        if value is None:
            out.append((None, None))
            continue
        key, error = check(Row(0, 0, value), datetime.now(timezone.utc), max_future)
        out.append((key, None if error is None else (error.reasons, error.stage, error.oversized)))
    return out


def _checked(rows: Iterator[Row], max_future: timedelta, parallel: bool) -> Iterator[tuple[Row, bytes | None,
                                                                                      InvalidEvent | None]]:
    """Each row with its key and error, in file order; with ``parallel`` validated by a second
    process, :data:`_AHEAD` chunks ahead of the caller."""
    if not parallel:
        for row in rows:
            if row.skip:
                yield row, None, None
            else:
                yield row, *check(row, datetime.now(timezone.utc), max_future)
        return
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor
    from itertools import islice
    from multiprocessing import get_context

    def results(chunk: list[Row], done: Future[list[Checked]]) -> Iterator[tuple[Row, bytes | None,
                                                                              InvalidEvent | None]]:
        for row, (key, error) in zip(chunk, done.result(), strict=True):
            if row.error is not None:
                yield row, None, row.error
            elif error is not None:
                yield row, key, InvalidEvent(error[0], stage=error[1], oversized=error[2])
            else:
                yield row, key, None

    # spawn, not fork: this process runs threads (the producer's sender, the progress bar)
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        pending: deque[tuple[list[Row], Future[list[Checked]]]] = deque()
        while chunk := list(islice(rows, _CHUNK)):
            values = [None if (r.skip or r.error is not None) else r.value for r in chunk]
            pending.append((chunk, pool.submit(check_values, values, max_future)))
            if len(pending) > _AHEAD:
                yield from results(*pending.popleft())
        while pending:
            yield from results(*pending.popleft())


def run_import(settings: Settings, path: Path, fmt: str, *, event_type: str | None = None,
               preset: Preset | None = None, ctx: Context | None = None, report: PresetReport | None = None,
               on_progress: Callable[[int], None] = lambda n: None, parallel: bool | None = None) -> Summary:
    """Validate and produce every record of ``path``; raise ``KafkaError`` if the broker fails.

    With ``preset`` the file is a CRM export read through it (``MissingColumns`` before anything
    is produced when it lacks a required column); ``report`` receives what the preset noticed.
    ``parallel``: validate in a second process (None: for files of :data:`PARALLEL_FROM_BYTES`
    or more, on a machine with 2 or more CPUs) — the same answers, in the same order."""
    if preset is not None:
        report = report if report is not None else PresetReport(preset.name)
        preset_header(path, preset)
        rows = read_preset(path, preset, ctx or Context(), report)
    else:
        rows = read_csv(path, event_type) if fmt == "csv" else read_ndjson(path)
    inbound, dead = t.name(t.INBOUND, settings.topic_prefix), t.name(t.INBOUND_DLQ, settings.topic_prefix)
    origin = [(SOURCE_HEADER, f"import:{path.name}".encode())]
    max_future = timedelta(seconds=settings.max_future_seconds)
    summary, pending = Summary(), []
    if parallel is None:
        parallel = path.stat().st_size >= PARALLEL_FROM_BYTES and (os.cpu_count() or 1) >= 2
    producer = make_producer(settings)
    try:
        for row, key, error in _checked(iter(rows), max_future, parallel):
            if row.skip:
                on_progress(row.size)
                continue
            if error is None:
                pending.append(producer.send(inbound, key=key, value=row.value, headers=origin))
                summary.accepted += 1
            else:
                source = f"import:{path.name}:{row.line}"
                value, error = dead_letter(row.value, error)
                headers = list(dlq_headers("import", source, value, error).items()) + origin
                pending.append(producer.send(dead, key=key, value=value, headers=headers))
                summary.rejected += 1
                summary.reasons.update(str(r)[:160] for r in error.reasons)
            on_progress(row.size)
            if len(pending) >= _CHECK_EVERY:
                _wait(producer, pending)
        _wait(producer, pending)
    finally:
        producer.close(timeout=10)
    return summary


def _wait(producer: Any, pending: list[Any]) -> None:
    producer.flush(timeout=60)
    for future in pending:
        future.get(timeout=60)
    pending.clear()


__all__ = ["KafkaError", "MissingColumns", "PresetReport", "Summary", "infer_format", "run_import", "csv_event",
           "dead_letter",
           "read_csv", "read_ndjson", "read_preset", "check"]
