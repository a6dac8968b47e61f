"""Packs: many of a batch's records for one topic partition sent as one Kafka record (issue #17).

A record on the broker costs about the same whatever it holds: the producer appends it, the
broker validates and indexes it, the consumer decodes it into a message that the worker tracks,
hands on and acks. A batch stage sends hundreds of small records per batch to the same few
partitions of its next topic: 4.25 records per inbound event on the five hops below, 0.03 in
packs (docs/benchmarks.md, twenty-eighth session, with the drains and latencies measured).

So the stages can send the records of a :data:`PACKED` topic in **packs** (``JOURNEYS_PACK_RECORDS=true``;
off by default: at 700 events/s they made event → queryable p99 worse, docs/benchmarks.md): the records a batch sends
to one partition, in their order, as one Kafka record whose value is their ``[key, value,
headers]`` list in MessagePack (a binary format with a C codec: record values are bytes, which
JSON cannot carry), under the header ``journeys.pack: <count>``. Each record still goes to the
partition its own key picks (the producer's partitioner), so keyed state stays co-partitioned;
within a partition the order is the order sent. A pack holds at most :data:`MAX_PACK_BYTES`
(a bigger batch makes several; one record bigger than that goes alone, as before).

The reading stage unpacks (:func:`unpacked`): each record of a pack becomes an :class:`Item` with
the pack's topic, partition, offset and timestamp, its own key, value and headers, and its place
in the pack (``index``); a record without the header is itself. The pack is the unit of
delivery and of acknowledgement: a batch takes whole packs, and their offsets are committed
once every record of theirs is handled. A reader also accepts records that are not packs (a
producer outside the stages, a worker of an earlier version): either kind may be on the topic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgpack  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

PACK_HEADER = "journeys.pack"
"""On a pack: how many records it holds (ASCII digits)."""

MAX_PACK_BYTES = 256 * 1024
"""The most a pack's records (keys, values, headers) hold; well under a record's 1 MB limit
(the broker's ``message.max.bytes``, the producer's ``max_request_size``)."""

PACKED = ("receipts", "events", "persons", "timeline", "identity_links")
"""The topics (fields of :class:`streams.steps.Names`) the stages write in packs."""

_Headers = Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None


class Item:
    """One record of a pack, as the steps read a record (:class:`streams.steps.Record`'s
    attributes) — where it was read is its pack's place, and ``index`` its place in the pack."""

    __slots__ = ("topic", "partition", "offset", "timestamp", "key", "value", "headers", "index")

    def __init__(self, pack: Any, index: int, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.topic: str = pack.topic
        self.partition: int = pack.partition
        self.offset: int = pack.offset
        self.timestamp: float = pack.timestamp
        self.key = key
        self.value: bytes | None = value
        self.headers = headers
        self.index = index

    def __repr__(self) -> str:
        return f"<Item {self.topic}/{self.partition}@{self.offset}#{self.index}>"


def _size(headers: _Headers) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    return list(headers.items()) if isinstance(headers, Mapping) else [(str(k), bytes(v)) for k, v in headers]


def count(headers: _Headers) -> int:
    """How many records a Kafka record with ``headers`` holds: a pack's count, else 1."""
    if not headers:
        return 1
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in pairs:
        if name == PACK_HEADER:
            return max(1, int(value))
    return 1


def pack(records: Sequence[tuple[bytes | None, bytes, _Headers]]) -> bytes:
    """``(key, value, headers)`` records as one pack's value (:func:`unpack` reads it)."""
    packed: bytes = msgpack.packb([[key, value, _size(headers)] for key, value, headers in records], use_bin_type=True)
    return packed


def packs(records: Iterable[tuple[bytes | None, bytes, _Headers]],
          max_bytes: int = MAX_PACK_BYTES) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    """The records of one partition, in order, as ``(key, value, headers)`` Kafka records: packs
    of at most ``max_bytes`` each (keyed by their first record's key); a record alone when it
    does not fit in any (sent as it is, not packed)."""
    out: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
    run: list[tuple[bytes | None, bytes, _Headers]] = []
    size = 0

    def close() -> None:
        if len(run) == 1:
            key, value, headers = run[0]
            out.append((key, value, _size(headers)))
        elif run:
            out.append((run[0][0], pack(run), [(PACK_HEADER, str(len(run)).encode())]))
        run.clear()

    for record in records:
        key, value, headers = record
        bytes_ = len(key or b"") + len(value) + sum(len(k) + len(v) for k, v in _size(headers))
        if run and size + bytes_ > max_bytes:
            close()
            size = 0
        run.append(record)
        size += bytes_
    close()
    return out


def unpack(record: Any) -> list[Any]:
    """A Kafka record's records: a pack's :class:`Item` s in order, else the record itself (and
    a pack that cannot be read too, with an error logged: the stage's guard dead-letters it)."""
    if not _is_pack(record.headers):
        return [record]
    try:
        return [Item(record, i, key, value, [(str(k), bytes(v)) for k, v in headers])
                for i, (key, value, headers) in enumerate(msgpack.unpackb(record.value or b"", raw=False))]
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        log.error("a pack at %s/%s@%s cannot be read (%s): handed on as it is", record.topic, record.partition,
                  record.offset, type(exc).__name__)
        return [record]


def _is_pack(headers: _Headers) -> bool:
    if not headers:
        return False
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return any(name == PACK_HEADER for name, _ in pairs)


def unpacked(records: Iterable[Any]) -> list[Any]:
    """Every record of ``records``, packs unpacked (:func:`unpack`), in order."""
    out: list[Any] = []
    for record in records:
        if record.headers and _is_pack(record.headers):
            out.extend(unpack(record))
        else:
            out.append(record)
    return out
