"""Never let Kafka commit past a record that no agent processed (bugs B7 and B10, docs/faults.md).

Three guards on Faust's consumer, installed once per process by :func:`install`:

* **acks** (B7) — a record Faust skipped is never marked committable;
* **fetch continuity** (B10) — a record is never handed on past records the fetch skipped;
* **commit head** (B10) — a commit never moves past an unacked record at its head;
* **start of an uncommitted partition** (B11) — read from its first offset, never from wherever
  the client's position was left.

B7, the ack guard:

faust-streaming 0.15 skips a record it takes from a stream's buffer while flow control is off
(a rebalance or table recovery has begun) or whose consumer generation is stale (fetched
before the rebalance), and then *acks* it. The next commit — the one made while partitions
are revoked — moves the group's offset past it, and the partition's next owner starts after a
record nobody handled. The fault suite saw 4 consecutive records lost in a 1 → 2 rebalance
and 1 when a stalled worker rejoined (cf. faust-streaming #216, #221, #223).

The guard refuses the ack of exactly those records: a record of an acking topic that a stream
never *tracked* (Faust tracks a record when it hands it to an agent — also when a processor
filters it out with ``Skip`` — and skips before tracking). Not acked, its offset is never
committed by this worker; after the rebalance the owner seeks to the committed offset and
reads it again. Processed records ack as before, so this costs no duplicate processing.
"""

from __future__ import annotations

import logging

from typing import Any, AsyncIterator, Optional

from faust.transport.consumer import Consumer
from faust.types.tuples import TP, Message, ack_lock

log = logging.getLogger(__name__)

_original_ack = Consumer.ack
_original_getmany = Consumer.getmany
_original_perform_seek = Consumer.perform_seek
_original_seek = Consumer.seek
_original_revoked = Consumer.on_partitions_revoked
_original_new_offset = Consumer._new_offset
refused = 0  # records whose ack was refused in this process (for tests and logs)
rewound = 0  # fetches re-read because they skipped records (for tests and logs)


def _guarded_ack(self: Consumer, message: Message) -> bool:
    global refused
    if not message.tracked and self.app.topics.acks_enabled_for(message.topic):
        with ack_lock:
            # Counted as handled for this delivery (so nothing waits on it), never committed.
            message.acked = True
            self._unacked_messages.discard(message)
            refused += 1
        log.debug("not committing skipped record %s[%d]@%d (rebalance); it will be read again",
                  message.topic, message.partition, message.offset)
        return False
    return _original_ack(self, message)


# -- B10: fetch continuity ----------------------------------------------------------------------
# After a restart, a worker that rebalances while it catches up can be handed a record fetched
# before its seek to the committed offsets (or the rest of a fetch dropped when the generation
# changed, after the client's position had moved on). Faust's drain loop then sees an offset
# jump, takes it for a compaction or transaction-marker gap (``Consumer._add_gap``) and commits
# through it: in one failing run the store's commit went 247 -> 279 on the timeline topic and
# 31 events never reached ClickHouse, without an error. The guard tracks, per partition of every
# acking topic, the next offset the stream must see (set by every seek, advanced by every record
# handed on). A record beyond it is withheld, and the partition is sought back to that offset so
# the skipped records are read again. If fresh fetches keep starting beyond it (REREADS times),
# the gap is real (transaction markers, retention) and is let through, as Faust would.

REREADS = 3
"""Times a partition is read again from the same offset before a jump there is taken as real."""


def _state(consumer: Consumer) -> tuple[dict[TP, int], dict[TP, tuple[int, int]]]:
    """(next offset each partition must deliver, (offset, times read again from it) per partition)."""
    state = consumer.__dict__.get("_journeys_fetch_state")
    if state is None:
        state = consumer.__dict__["_journeys_fetch_state"] = ({}, {})
    return state


async def _guarded_getmany(self: Consumer, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
    global rewound
    expected, rereads = _state(self)
    sought: set[TP] = set()
    async for tp, message in _original_getmany(self, timeout):
        if tp in sought:
            continue  # the rest of a partition we sought back in this batch: read again later
        want = expected.get(tp)
        if want is not None and message.offset > want and self.app.topics.acks_enabled_for(message.topic):
            at, times = rereads.get(tp, (want, 0))
            times = times if at == want else 0
            if times < REREADS:
                rereads[tp] = (want, times + 1)
                sought.add(tp)
                rewound += 1
                log.info("fetch of %s[%d] jumped from %d to %d: reading from %d again", tp.topic, tp.partition,
                         want, message.offset, want)
                await _seek_back(self, tp, want)
                continue
            log.warning("%s[%d]: offsets %d..%d were skipped by %d fetches in a row; taken as a real gap "
                        "(transaction markers, retention)", tp.topic, tp.partition, want, message.offset - 1,
                        REREADS + 1)
        if want is None or message.offset >= want:
            expected[tp] = message.offset + 1
        yield tp, message


async def _seek_back(consumer: Consumer, tp: TP, offset: int) -> None:
    """Seek one partition, in the consumer's own thread when it has one (the aiokafka driver)."""
    thread = getattr(consumer, "_thread", None)
    if thread is not None and hasattr(thread, "seek_wait"):
        await thread.seek_wait({tp: offset})  # also sets Faust's read offset
        _state(consumer)[0][tp] = offset
    else:
        await consumer.seek(tp, offset)


async def _tracked_perform_seek(self: Consumer) -> None:
    global rewound
    await _original_perform_seek(self)
    expected, _ = _state(self)
    uncommitted = []
    for tp, offset in list(self._read_offset.items()):  # the committed offsets: the next to read
        if offset is not None:
            expected[tp] = offset
        elif self.app.topics.acks_enabled_for(tp.topic):
            uncommitted.append(tp)
        else:
            expected.pop(tp, None)
    # B11: a partition with no commit yet is left where the client's position happens to be by
    # aiokafka's seek_to_committed. Records fetched there while flow was off (table recovery)
    # were dropped by Faust and the position had moved past them: a restarted worker read
    # inbound[1] from offset 30, and 30 events never went further (fault suite, kill -9 of the
    # stream worker before its first commit on that partition). Nothing committed means "from
    # the start" (auto_offset_reset=earliest): seek there, so nothing before it is skipped.
    if uncommitted:
        starts = await self.earliest_offsets(*uncommitted)
        for tp in uncommitted:
            start = starts.get(tp)
            if start is None or start < 0:
                expected.pop(tp, None)
                continue
            await _seek_back(self, tp, start)
            expected[tp] = start
            _starts(self)[tp] = start
            rewound += 1
            log.info("%s[%d] has no committed offset: reading it from its start (%d)", tp.topic, tp.partition, start)


async def _tracked_seek(self: Consumer, partition: TP, offset: int) -> None:
    await _original_seek(self, partition, offset)
    _state(self)[0][partition] = offset


async def _tracked_revoked(self: Consumer, revoked: set[TP]) -> None:
    expected, rereads = _state(self)
    for tp in revoked:
        expected.pop(tp, None)
        rereads.pop(tp, None)
    await _original_revoked(self, revoked)


# -- B10: commit head ----------------------------------------------------------------------------
# Faust refuses a commit whose first acked offset is beyond the committed one only when the
# distance exceeds 1 (``min(acked) - committed_offset > 1``) and only when the committed offset is
# truthy, so one unacked record right at the head (e.g. a record whose ack the B7 guard refused)
# is committed past. Here any hole at the head, not covered by a gap, stops the commit.

def _starts(consumer: Consumer) -> dict[TP, int]:
    """First offset of each partition that had no commit when it was assigned (B11)."""
    return consumer.__dict__.setdefault("_journeys_starts", {})


def _guarded_new_offset(self: Consumer, tp: TP) -> Optional[int]:
    committed = self._committed_offset.get(tp)
    acked = self._acked.get(tp)
    if committed is None and acked and tp in _starts(self):
        committed = _starts(self)[tp]  # nothing committed yet: the first commit starts at the start
    if committed is not None and acked:
        head = min(acked)
        gaps: Any = self._gap.get(tp)
        if gaps:
            head = min(head, min(interval.begin for interval in gaps))
        if head > committed:
            return None
    return _original_new_offset(self, tp)


def install() -> None:
    """Patch Faust's consumer once per process (idempotent)."""
    if Consumer.ack is not _guarded_ack:
        Consumer.ack = _guarded_ack  # type: ignore[method-assign]
        Consumer.getmany = _guarded_getmany  # type: ignore[method-assign]
        Consumer.perform_seek = _tracked_perform_seek  # type: ignore[method-assign]
        Consumer.seek = _tracked_seek  # type: ignore[method-assign]
        Consumer.on_partitions_revoked = _tracked_revoked  # type: ignore[method-assign]
        Consumer._new_offset = _guarded_new_offset  # type: ignore[method-assign]
