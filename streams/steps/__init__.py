"""The stream stages as pure steps over batches — no Faust here.

A step reads a batch of Kafka records (anything with ``topic, partition, offset, key, value,
headers, timestamp``: Faust's messages, or :class:`Record` in memory), groups them by its key,
and for each key reads the key's state once, applies the pure rules of :mod:`streams.rules`
and writes the state once, putting its outputs in an :class:`Outbox`. Two runners move the
records: :mod:`streams.agents` (Faust and Kafka, the only wiring that imports faust) and
:mod:`streams.steps.memory` (dicts and lists: tests, simulations). The topology — which step
reads which topics, keyed how, with which table — is declared once, in
:mod:`streams.steps.topology`.

The guard is here too (:func:`run_batch`): a key whose handling raises is rolled back and
handled again one record at a time, so only the record that fails is dead-lettered.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from schemas.errors import Reason, RecordFailed, log_exc_info, loggable
from streams import deadletters, metrics

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Record:
    """One Kafka record, as the steps read it (the in-memory runner's; Faust's messages have
    the same attributes)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None = None
    partition: int = 0
    offset: int = 0
    timestamp: float = 0.0


class Outbox:
    """What a batch sends: ``(topic, key, value, headers)`` in order, sent once the batch is done."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]] = []

    def add(self, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, bytes] | None = None) -> None:
        self.items.append((topic, key, value, list(headers.items()) if headers else None))

    def extend(self, other: Outbox) -> None:
        self.items.extend(other.items)

    def __len__(self) -> int:
        return len(self.items)


_ABSENT = object()


class States:
    """A step's keyed state during one batch: each key read at most once from ``read`` and
    written at most once by :meth:`written` (with the record it came from: a Kafka runner
    writes a key's changelog to that record's partition). ``read`` must return a value of the
    step's own (a table's deserialised value, a copy): steps mutate it, and a failed handling
    is retried from the table's value. ``at``: the first record of the key being handled (set by
    :func:`run_batch`; a Kafka runner reads the key from that record's partition)."""

    __slots__ = ("read", "values", "records", "at")

    def __init__(self, read: Callable[[str], Any]) -> None:
        self.read = read
        self.values: dict[str, Any] = {}
        self.records: dict[str, Any] = {}
        self.at: Any = None

    def get(self, key: str) -> Any:
        if key not in self.values:
            self.values[key] = self.read(key)
        return self.values[key]

    def put(self, key: str, value: Any, record: Any) -> None:
        self.values[key] = value
        self.records[key] = record

    def delete(self, key: str, record: Any) -> None:
        """The key's state is gone (a privacy request): written as a deletion (``None``)."""
        self.put(key, None, record)

    def forget(self, key: str) -> None:
        """Drop what a failed handling left (the table still has the value from before the batch)."""
        self.values.pop(key, None)
        self.records.pop(key, None)

    def checkpoint(self, key: str) -> tuple[Any, Any]:
        """A copy of the key's value so far, for :meth:`rollback` (only on the slow path)."""
        if key not in self.values:
            return _ABSENT, None
        return copy.deepcopy(self.values[key]), self.records.get(key)

    def rollback(self, key: str, saved: tuple[Any, Any]) -> None:
        value, record = saved
        self.forget(key)
        if value is not _ABSENT:
            self.values[key] = value
            if record is not None:
                self.records[key] = record

    def written(self) -> Iterable[tuple[str, Any, Any]]:
        """``(key, value, record)`` of every key put in this batch (``value`` ``None``: deleted)."""
        return ((key, self.values[key], record) for key, record in self.records.items())


class Step(Protocol):
    """One stage: ``group`` a batch by key (unreadable records go to the dead letters), then
    ``handle`` each key's items with its state."""

    name: str

    def group(self, records: Sequence[Any], out: Outbox) -> dict[str, list[tuple[Any, ...]]]: ...

    def handle(self, key: str, items: list[tuple[Any, ...]], states: States, out: Outbox) -> None: ...


def is_forget(record: Any) -> bool:
    """A control record asking the stage to drop its key's state (``journeys privacy forget``)."""
    from streams import topics as t

    headers = record.headers
    if not headers:
        return False
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return any(k == t.CONTROL_HEADER and v == t.CONTROL_FORGET for k, v in pairs)


def where(record: Any) -> str:
    """Where a record was read: ``topic/partition@offset``, and ``#i`` for the i-th record of a
    pack (:mod:`streams.packs`)."""
    index = getattr(record, "index", None)
    return f"{record.topic}/{record.partition}@{record.offset}" + ("" if index is None else f"#{index}")


def dead_letter(out: Outbox, dead_letters: str, record: Any, stage: str, exc: Exception) -> None:
    """The record that made ``stage`` fail goes to the dead letters (original bytes, where it
    was read, the error as the reason) with the batch's outputs."""
    text = loggable(exc, MAX_REASON_CHARS)  # paths and error types: no input values (PII) in logs
    log.error("%s: record %s dead-lettered: %s", stage, where(record), text, exc_info=log_exc_info(exc))
    error = RecordFailed([Reason("$", f"{stage} failed on this record: {text}")], stage=stage)
    raw = deadletters.redact_write_keys(record.value if record.value is not None else b"")
    out.add(dead_letters, record.key, raw, deadletters.headers("kafka", where(record), raw, error))
    metrics.child(metrics.EVENTS_OUT, stage, "dead-lettered").inc()


def run_batch(step: Step, records: Sequence[Any], states: States, out: Outbox, dead_letters: str) -> None:
    """One batch through ``step``: grouped, each key handled with its state (the guard: a key
    whose handling raises is rolled back and handled again one item at a time, so only the
    item that fails is dead-lettered; the outputs of a failed try are discarded)."""
    for key, items in step.group(records, out).items():
        states.at = items[0][0]
        mine = Outbox()
        try:
            step.handle(key, items, states, mine)
            out.extend(mine)
            continue
        except Exception:  # noqa: BLE001 - retried one by one below
            states.forget(key)
        for item in items:
            mine = Outbox()
            saved = states.checkpoint(key)
            try:
                step.handle(key, [item], states, mine)
                out.extend(mine)
            except Exception as exc:  # noqa: BLE001 - the guard
                states.rollback(key, saved)
                dead_letter(out, dead_letters, item[0], step.name, exc)


@dataclass(frozen=True)
class Names:
    """The broker names of the topics the steps write (``streams.topics`` with a prefix)."""

    inbound: str
    inbound_dlq: str
    receipts: str
    events: str
    persons: str
    timeline: str
    identity_links: str
    journey_updates: str
    journey_ticks: str
    journey_rebuilds: str
    lead_outcomes: str
    alerts: str

    @classmethod
    def with_prefix(cls, prefix: str = "") -> Names:
        from streams import topics as t

        return cls(**{f: t.name(spec, prefix) for f, spec in (
            ("inbound", t.INBOUND), ("inbound_dlq", t.INBOUND_DLQ), ("receipts", t.RECEIPTS), ("events", t.EVENTS),
            ("persons", t.PERSONS), ("timeline", t.TIMELINE), ("identity_links", t.IDENTITY_LINKS),
            ("journey_updates", t.JOURNEY_UPDATES), ("journey_ticks", t.JOURNEY_TICKS),
            ("journey_rebuilds", t.JOURNEY_REBUILDS), ("lead_outcomes", t.LEAD_OUTCOMES), ("alerts", t.ALERTS))})
