"""Pure parts of ``journeys import`` (row reading) and ``journeys dlq replay`` (selection)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from schemas.errors import InvalidEvent, Reason
from streams import topics as t
from streams.agents.dlq import headers as dlq_headers
from streams.cli.dlq_replay import letter_of, parse_since, select, selected
from streams.cli.importing import check, csv_event, infer_format, read_csv, read_ndjson

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
LIMIT = timedelta(minutes=5)
CSV = (
    "type,conversationId,channel,repId,repRole,direction,startedAt,durationSeconds,contactEmails,crmAccountId,subject\n"
    "conversation,c1,call,r1,SDR,outbound,2026-10-01T10:00:00Z,540,a@acme.example; b@acme.example,acme,\"two\nlines\"\n"
    "\n"
    "conversation,c2,fax,r1,SDR,outbound,2026-10-01T10:00:00Z,,,acme,\n"
    "conversation,c3,call\n"
).encode()


def test_csv_rows_become_events_with_coerced_strings() -> None:
    rows = list(read_csv(CSV, None))
    assert [r.line for r in rows] == [2, 5, 6]
    first = orjson.loads(rows[0].value)
    assert first["contactEmails"] == ["a@acme.example", "b@acme.example"] and first["subject"] == "two\nlines"
    assert first["durationSeconds"] == "540"  # pydantic coerces it
    assert check(rows[0], NOW, LIMIT) == (b"c1", None)
    key, error = check(rows[1], NOW, LIMIT)
    assert key == b"c2" and error is not None and error.reasons[0].path == "$.channel"
    assert [str(r) for r in check(rows[2], NOW, LIMIT)[1].reasons] == ["$: row has 3 cells; the header has 11"]
    assert rows[2].value == b"conversation,c3,call"


def test_csv_event_drops_empty_cells_and_nests_dotted_columns() -> None:
    event = csv_event({"amount": "48000.00", "stage": " ", "properties.plan": "pro", "properties.seats": "5"},
                      "opportunity")
    assert event == {"type": "opportunity", "amount": "48000.00", "properties": {"plan": "pro", "seats": "5"}}


def test_ndjson_keeps_original_line_bytes_and_numbers() -> None:
    rows = list(read_ndjson(b'{"a":1}\n\n  {"b":2}  \r\nnot json\n'))
    assert [(r.line, r.value) for r in rows] == [(1, b'{"a":1}'), (3, b'{"b":2}'), (4, b"not json")]
    assert str(check(rows[2], NOW, LIMIT)[1].reasons[0]).startswith("$: malformed JSON")


def test_format_from_extension() -> None:
    assert infer_format(Path("x.CSV")) == "csv" and infer_format(Path("x.jsonl")) == "ndjson"
    with pytest.raises(ValueError):
        infer_format(Path("x.txt"))


def letter(raw: bytes, source_kind: str = "kafka", reason: str = "$: bad", when: datetime = NOW, source: str = "s"):
    h = dlq_headers(source_kind, source, raw, InvalidEvent([Reason("$", reason.split(": ", 1)[1])]))
    h[t.DLQ_HEADER_REJECTED_AT] = when.isoformat().encode()
    return letter_of(b"k", raw, list(h.items()))


def test_replay_selection_filters_and_deduplicates_payloads() -> None:
    a = letter(b"one", reason="$: in the FUTURE")
    again = letter(b"one", source="t/0@9")  # the same bytes dead-lettered again after a replay
    b = letter(b"two", "collector", when=NOW - timedelta(days=3))
    assert a.dlq_id != again.dlq_id
    assert select([a, again, b]) == [a, b]
    assert select([a, b], source_kind="collector") == [b]
    assert select([a, b], since=NOW - timedelta(hours=1)) == [a]
    assert select([a, b], reason_contains="future") == [a]
    assert select([a, b], ids=[b.dlq_id]) == [b]


def test_replay_selection_streams_the_topic() -> None:
    """A replay sends each selected letter as it is read: the selection never reads ahead."""
    read = []

    def topic():
        for i in range(5):
            read.append(i)
            yield letter(f"payload-{i}".encode())

    stream = selected(topic())
    assert next(stream).value == b"payload-0" and read == [0]
    assert [x.value for x in stream] == [f"payload-{i}".encode() for i in range(1, 5)]


def test_parse_since() -> None:
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-10-01T00:00:00Z", NOW) == datetime(2026, 10, 1, tzinfo=timezone.utc)
    assert parse_since("2026-10-01", NOW) == datetime(2026, 10, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        parse_since("yesterday", NOW)


def test_one_bad_byte_in_a_csv_costs_only_its_row() -> None:
    """Issue 20: one byte that is not UTF-8 aborted the whole import (UnicodeDecodeError)."""
    data = (b"\xef\xbb\xbftype,userId,event,caf\xe9\n"
            b"track,u-1,Viewed,a\n"
            b"track,u-2,Caf\xe9 visited,b\n"
            b"track,u-3,Viewed,c\n")
    rows = list(read_csv(data, None))
    assert [r.line for r in rows] == [2, 3, 4]
    good1, bad, good2 = rows
    assert good1.error is None and orjson.loads(good1.value)["userId"] == "u-1"
    assert good2.error is None and orjson.loads(good2.value)["userId"] == "u-3"
    assert bad.error is not None and "not UTF-8: byte 0xe9" in str(bad.error)
    assert bad.value == b"track,u-2,Caf\xe9 visited,b"  # the original bytes, dead-lettered as they were
    assert bad.size == len(b"track,u-2,Caf\xe9 visited,b\n")


class _Producer:
    """kafka-python's producer as the import sees it: ``send`` refuses a record over
    ``max_request_size`` (1 MiB by default) at once, with ``MessageSizeTooLargeError``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"", headers: list | None = None):
        from kafka.errors import MessageSizeTooLargeError

        if len(value) > 1024 * 1024:
            raise MessageSizeTooLargeError(f"The message is {len(value)} bytes")
        self.sent.append((topic, value))
        return self

    def get(self, timeout: float | None = None) -> None: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


@pytest.mark.parametrize("name, data", [
    ("big.ndjson", b'{"type":"track","messageId":"m1","userId":"u","event":"e"}\n'
                   b'{"type":"track","messageId":"m2","userId":"u","event":"e","properties":{"x":"'
                   + b"x" * 2_000_000 + b'"}}\n'
                   b'{"type":"track","messageId":"m3","userId":"u","event":"e"}\n'),
    ("big.csv", b"type,messageId,userId,event\ntrack,m1,u-1,Viewed\ntrack,m2,u-2," + b"x" * 200_000
                + b"\ntrack,m3,u-3,Viewed\n"),
])
def test_one_huge_row_costs_only_its_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str,
                                         data: bytes) -> None:
    """A 2 MB NDJSON line stopped the import ("Kafka failed": its dead letter was over the
    producer's 1 MiB), and so did a CSV cell over the csv module's 128 KiB field limit
    (``_csv.Error``). Now each is dead-lettered with its first 32 KiB, and the other rows go in."""
    from schemas.events import MAX_EVENT_BYTES
    from streams.cli import importing
    from streams.settings import Settings

    producer = _Producer()
    monkeypatch.setattr(importing, "make_producer", lambda settings: producer)
    path = tmp_path / name
    path.write_bytes(data)
    summary = importing.run_import(Settings(), path, importing.infer_format(path))
    assert (summary.accepted, summary.rejected) == (2, 1)
    (dead,) = [value for topic, value in producer.sent if topic.endswith("-dlq")]
    assert len(dead) == MAX_EVENT_BYTES
    assert any("dead letter keeps the first" in r for r in summary.reasons)


def test_a_dead_letter_with_unreadable_headers_is_still_listed_and_replayed() -> None:
    """``journeys dlq replay`` read each letter's reasons and time strictly: one letter whose
    headers another producer wrote badly stopped the whole replay (the store keeps such letters)."""
    for reasons, rejected in ((b"not json", b"2026-11-01T12:00:00+00:00"), (b'{"a": 1}', b"yesterday"),
                              (b"[1, 2]", b"\xff")):
        got = letter_of(b"k", b"payload", [(t.DLQ_HEADER_REASONS, reasons), (t.DLQ_HEADER_REJECTED_AT, rejected)])
        assert got.value == b"payload" and got.reasons and all(isinstance(r, str) for r in got.reasons)
    assert select([got], reason_contains="unreadable") == [got]
    assert select([got], since=NOW) == []  # no readable time: not "since" anything


def test_an_imported_row_is_dead_lettered_without_its_write_key() -> None:
    from streams.cli.importing import dead_letter

    error = InvalidEvent([Reason("$.userId", "required")])
    line = b'{"type":"track","writeKey":"wk_live_secret","event":"x"}'
    value, _ = dead_letter(line, error)
    assert value == b'{"type":"track","writeKey":"[redacted]","event":"x"}'
    huge = b'{"type":"track","event":"' + b"x" * 100 + b'","writeKey":"wk_live_' + b"s" * 200 + b'"}'
    value, kept = dead_letter(huge, error, keep=140)  # the size cut falls inside the key
    assert b"wk_live" not in value and kept.oversized


@pytest.mark.parametrize("kind", ["ndjson", "csv"])
def test_a_file_is_read_as_its_rows_are_consumed(tmp_path: Path, kind: str) -> None:
    """A year of web history is tens of GB: ``journeys import`` read the whole file into memory
    (1M events, 394 MB: 1.1 GB resident). The readers hold only the rows being handled, and the
    same rows come from a path as from its bytes."""
    import tracemalloc

    pad = "x" * 900
    if kind == "ndjson":
        head, row = b"", f'{{"type":"page","anonymousId":"a","properties":{{"pad":"{pad}"}}}}\n'.encode()
    else:
        head, row = b"\xef\xbb\xbftype,anonymousId,properties.pad\n", f'page,a,"{pad}\nsecond line"\r\n'.encode()
    path = tmp_path / f"big.{kind}"
    path.write_bytes(head + row * 5_000)  # ≈ 4.6 MB
    read = read_ndjson if kind == "ndjson" else (lambda source: read_csv(source, None))
    tracemalloc.start()
    try:
        rows = 0
        for got in read(path):
            rows += 1
            assert got.error is None and got.size == len(row)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == 5_000
    assert peak < path.stat().st_size / 20, f"{peak} bytes traced while reading {path.stat().st_size}"
    sample = head + row * 3
    assert [r.value for r in read(sample)] == [r.value for r in read(path)][:3]
