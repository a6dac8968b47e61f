"""Helpers for agents that handle batches: the dedup token naming exactly a batch's offsets (the
store), and the stream stages' outbox and per-batch table access."""

from __future__ import annotations

import copy
import weakref
from typing import Any, Sequence

import faust
from faust.streams import _current_event


def offsets_token(table: str, events: Sequence[faust.EventT]) -> str:
    """``table:topic/p:first-last,...`` — a retried identical batch carries the same token."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for event in events:
        msg = event.message
        span = ranges.setdefault((msg.topic, msg.partition), [msg.offset, msg.offset])
        span[0] = min(span[0], msg.offset)
        span[1] = max(span[1], msg.offset)
    parts = ",".join(f"{tp[0]}/{tp[1]}:{a}-{b}" for tp, (a, b) in sorted(ranges.items()))
    return f"{table}:{parts}"


# -- the stream stages' batch machinery --------------------------------------------------------


_ABSENT = object()


class Outbox:
    """What a batch sends, produced in one go once the batch is computed: straight to the
    producer (the topics exist before a worker starts, ``streams.admin``), without Faust's
    per-record channel machinery. Delivery needs no await here: Faust flushes the producer
    before it commits an offset, so a batch's outputs are on the broker before its input is
    committed (at-least-once; every consumer of these topics is idempotent)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]] = []

    def add(self, topic: str, key: bytes | None, value: bytes, headers: dict[str, bytes] | None = None) -> None:
        self.items.append((topic, key, value, list(headers.items()) if headers else None))

    def extend(self, other: "Outbox") -> None:
        self.items.extend(other.items)

    def __len__(self) -> int:
        return len(self.items)

    async def flush(self, app: faust.App) -> None:
        producer = app.producer
        for topic, key, value, headers in self.items:
            await producer.send(topic, key, value, None, None, headers)
        self.items.clear()


class BatchTable:
    """A Faust table read at most once and written at most once per key and batch.

    ``put`` remembers the event the value came from: Faust writes a table key's changelog to
    the partition of the *current* event, and in a batch that is whichever record came last —
    so :meth:`flush` makes each key's own event current while it writes (the partition that
    owns the key), else a restore after a rebalance would miss it."""

    __slots__ = ("table", "values", "events")

    def __init__(self, table: Any) -> None:
        self.table = table
        self.values: dict[str, Any] = {}
        self.events: dict[str, faust.EventT] = {}

    def get(self, key: str) -> Any:
        if key not in self.values:
            self.values[key] = self.table.get(key)
        return self.values[key]

    def put(self, key: str, value: Any, event: faust.EventT) -> None:
        self.values[key] = value
        self.events[key] = event

    def forget(self, key: str) -> None:
        """Drop what a failed handling left in the cache (the table still has the last good value)."""
        self.values.pop(key, None)
        self.events.pop(key, None)

    def checkpoint(self, key: str) -> tuple[Any, Any]:
        """A copy of the key's cached value (and its event), for :meth:`rollback` — taken only on
        the slow path, after a failure."""
        if key not in self.values:
            return _ABSENT, None
        return copy.deepcopy(self.values[key]), self.events.get(key)

    def rollback(self, key: str, saved: tuple[Any, Any]) -> None:
        value, event = saved
        self.forget(key)
        if value is not _ABSENT:
            self.values[key] = value
            if event is not None:
                self.events[key] = event

    def flush(self) -> None:
        for key, event in self.events.items():
            token = _current_event.set(weakref.ref(event))
            try:
                self.table[key] = self.values[key]
            finally:
                _current_event.reset(token)
        self.values.clear()
        self.events.clear()
