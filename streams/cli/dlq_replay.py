"""``journeys dlq replay``: read the dead-letter topic, pick letters, re-submit their bytes.

Reads the DLQ **topic** from the beginning with kafka-python (no consumer group, nothing
committed), so it needs neither the store nor a running worker. Selected letters are
produced back to the inbound topic with their original key and value and the header
``journeys.replay_of = <dlq id>``; the worker validates them again (a letter that is still
invalid becomes a new dead letter). Letters with identical bytes are re-submitted once (a
letter that failed again after a replay has the same bytes as the first one).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

from kafka import KafkaConsumer, TopicPartition

from streams import topics as t
from streams.deadletters import reasons_of
from streams.headers import REPLAY_OF_HEADER, SOURCE_HEADER, WRITE_KEY_ID_HEADER
from streams.kafka_config import client_options
from streams.producer import make_producer
from streams.settings import Settings

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_KEPT_HEADERS = (SOURCE_HEADER, WRITE_KEY_ID_HEADER)


@dataclass(frozen=True)
class DeadLetter:
    dlq_id: str
    source_kind: str
    source: str
    stage: str
    reasons: list[str]
    rejected_at: datetime | None
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    def as_record(self) -> dict[str, Any]:
        return {"dlq_id": self.dlq_id, "rejected_at": self.rejected_at.isoformat() if self.rejected_at else "",
                "source_kind": self.source_kind, "source": self.source, "stage": self.stage,
                "reasons": self.reasons, "bytes": len(self.value)}  # fmt: skip


def parse_since(text: str, now: datetime) -> datetime:
    """``2026-10-01T00:00:00Z`` (aware or taken as UTC) or a look-back like ``90m``, ``2h``, ``7d``."""
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def letter_of(key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]) -> DeadLetter:
    """A DLQ record (headers as written by ``streams.agents.dlq.headers``) → :class:`DeadLetter`."""
    h = {name: raw for name, raw in headers}

    def text(name: str) -> str:
        return h[name].decode("utf-8", "replace") if h.get(name) is not None else ""

    try:  # a header another producer wrote badly: the letter is listed and replayed all the same
        rejected_at: datetime | None = datetime.fromisoformat(text(t.DLQ_HEADER_REJECTED_AT))
    except ValueError:
        rejected_at = None
    payload = value or b""
    return DeadLetter(
        dlq_id=text(t.DLQ_HEADER_ID) or hashlib.sha256(payload).hexdigest()[:32],
        source_kind=text(t.DLQ_HEADER_SOURCE_KIND) or "kafka", source=text(t.DLQ_HEADER_SOURCE),
        stage=text(t.DLQ_HEADER_STAGE), reasons=reasons_of(h.get(t.DLQ_HEADER_REASONS)),
        rejected_at=rejected_at,
        key=key, value=payload, headers={k: v for k, v in h.items() if k in _KEPT_HEADERS},
    )  # fmt: skip


def select(letters: Iterable[DeadLetter], *, source_kind: str | None = None, since: datetime | None = None,
           reason_contains: str | None = None, ids: Iterable[str] = ()) -> list[DeadLetter]:
    """Letters matching every given filter, once per distinct payload (first occurrence wins)."""
    return list(selected(letters, source_kind=source_kind, since=since, reason_contains=reason_contains, ids=ids))


def selected(letters: Iterable[DeadLetter], *, source_kind: str | None = None, since: datetime | None = None,
             reason_contains: str | None = None, ids: Iterable[str] = ()) -> Iterator[DeadLetter]:
    """:func:`select`, one letter at a time: only a 32-byte digest per letter is kept (to
    replay each distinct payload once), not the letters."""
    wanted_ids, needle = set(ids), (reason_contains or "").lower()
    seen: set[bytes] = set()
    for letter in letters:
        if source_kind and letter.source_kind != source_kind:
            continue
        if since and (letter.rejected_at is None or letter.rejected_at < since):
            continue
        if needle and not any(needle in r.lower() for r in letter.reasons):
            continue
        if wanted_ids and letter.dlq_id not in wanted_ids:
            continue
        digest = hashlib.sha256((letter.key or b"") + b"\0" + letter.value).digest()
        if digest not in seen:
            seen.add(digest)
            yield letter


def read_letters(settings: Settings, *, timeout_ms: int = 10_000) -> Iterator[DeadLetter]:
    """Every record of the DLQ topic, from the beginning up to its end when called, one poll at
    a time (:func:`select` keeps only the letters it selects: a filtered replay of a large topic
    does not hold the whole topic in memory)."""
    topic = t.name(t.INBOUND_DLQ, settings.topic_prefix)
    consumer = KafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False,
                             client_id=f"{settings.effective_app_id}-dlq-replay")
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            batch = consumer.poll(timeout_ms=timeout_ms)
            if not batch:
                raise TimeoutError(f"no progress reading {topic} for {timeout_ms / 1000:g}s")
            for tp, records in batch.items():
                yield from (letter_of(r.key, r.value, r.headers) for r in records if r.offset < ends[tp])
    finally:
        consumer.close()


REPLAY_CHUNK = 1000
"""Letters in flight at most: each chunk is flushed and every send confirmed before the next is read."""


def replay(settings: Settings, letters: Iterable[DeadLetter], on_sent: Callable[[DeadLetter], None] = lambda x: None,
           chunk: int = REPLAY_CHUNK) -> int:
    """Produce each letter's bytes to the inbound topic (acks=all) as they are read, ``chunk``
    at a time (a replay of a large topic holds one chunk, not the topic); return how many.
    ``on_sent`` is called for each letter the broker acknowledged."""
    topic = t.name(t.INBOUND, settings.topic_prefix)
    producer = make_producer(settings)
    sent = 0
    try:
        pending: list[tuple[DeadLetter, Any]] = []

        def confirm() -> None:
            producer.flush(timeout=60)
            for letter, future in pending:
                future.get(timeout=60)
                on_sent(letter)
            pending.clear()

        for letter in letters:
            headers = [*letter.headers.items(), (REPLAY_OF_HEADER, letter.dlq_id.encode())]
            pending.append((letter, producer.send(topic, key=letter.key, value=letter.value, headers=headers)))
            sent += 1
            if len(pending) >= chunk:
                confirm()
        confirm()
        return sent
    finally:
        producer.close(timeout=10)
