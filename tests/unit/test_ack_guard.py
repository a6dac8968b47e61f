"""The consumer guards (streams/ack_guard.py). B7: a record Faust skipped without handing it to an
agent is never marked committable; a handled one is, as before. B10: a fetch that jumps past the
position a seek set is read again; a commit never passes an unacked record at its head."""

from __future__ import annotations

import asyncio

import faust
from faust.types.tuples import TP, Message

from streams import ack_guard

TOPIC = "ack-guard-in"


def _consumer():
    ack_guard.install()
    app = faust.App("ack-guard-test", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    consumer = app.consumer  # built, never started: no broker needed
    app.topics._acking_topics.add(TOPIC)  # as the conductor does for an agent's topic
    return consumer


def _message(offset: int, tracked: bool) -> Message:
    message = Message(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None)
    message.tracked = tracked
    return message


def test_a_skipped_record_is_not_committable_and_a_handled_one_is():
    consumer = _consumer()
    before = ack_guard.refused
    handled, skipped, after = _message(10, tracked=True), _message(11, tracked=False), _message(12, tracked=True)
    for m in (handled, after):
        consumer.track_message(m)

    assert consumer.ack(handled) is True
    assert consumer.ack(skipped) is False  # skipped during a rebalance: refused
    assert consumer.ack(after) is True
    assert ack_guard.refused == before + 1
    assert skipped.acked  # nothing waits for it in this process
    tp = handled.tp
    assert sorted(consumer._acked[tp]) == [10, 12]
    # The commit stops before the gap: the skipped record is read again after the rebalance.
    assert consumer._new_offset(tp) == 11


def test_install_is_idempotent():
    ack_guard.install()
    ack_guard.install()
    assert faust.transport.consumer.Consumer.ack is ack_guard._guarded_ack


def test_records_of_non_acking_topics_are_untouched():
    consumer = _consumer()
    message = Message("other-topic", 0, 5, 0.0, 0, None, b"k", b"v", None)
    assert consumer.ack(message) is False  # Faust's own rule: no acks for this topic
    assert message.acked


# -- B10: fetch continuity and commit head -------------------------------------------------------
def _fetches(monkeypatch, consumer, batches: list[list[int]]) -> list[tuple[TP, int]]:
    """Feed ``batches`` of offsets (partition 0) through the guarded getmany; record the seeks."""
    seeks: list[tuple[TP, int]] = []
    pending = list(batches)

    async def fetch(self, timeout):
        for offset in pending.pop(0):
            message = _message(offset, tracked=False)
            yield message.tp, message

    async def seek(tp, offset):
        seeks.append((tp, offset))
        consumer._read_offset[tp] = offset

    monkeypatch.setattr(ack_guard, "_original_getmany", fetch)
    monkeypatch.setattr(ack_guard, "_seek_back", lambda c, tp, offset: seek(tp, offset))
    return seeks


def _drain(consumer, batches: int) -> list[int]:
    async def run() -> list[int]:
        seen = []
        for _ in range(batches):
            async for _tp, message in consumer.getmany(timeout=1.0):
                seen.append(message.offset)
        return seen

    return asyncio.run(run())


def test_a_fetch_that_jumps_past_the_seek_position_is_read_again(monkeypatch):
    consumer = _consumer()
    tp = TP(TOPIC, 0)
    # After a restart the stream is sought to the committed offset 122, but the first records
    # handed on start at 191 (fetched before the seek): Faust would take 122..190 for a gap.
    seeks = _fetches(monkeypatch, consumer, [[191, 192], [122, 123, 124]])
    consumer._read_offset[tp] = 122
    asyncio.run(_seek_done(consumer))
    before = ack_guard.rewound
    assert _drain(consumer, 2) == [122, 123, 124]  # 191, 192 withheld; read again from 122
    assert seeks == [(tp, 122)]
    assert ack_guard.rewound == before + 1


def test_a_real_gap_is_let_through_after_the_re_reads(monkeypatch):
    consumer = _consumer()
    tp = TP(TOPIC, 0)
    # offsets 5 and 6 do not exist (transaction markers, retention): every re-read starts at 7 again
    rereads = [[7, 8]] * ack_guard.REREADS
    seeks = _fetches(monkeypatch, consumer, [[3, 4], *rereads, [7, 8], [9]])
    consumer._read_offset[tp] = 3
    asyncio.run(_seek_done(consumer))
    assert _drain(consumer, ack_guard.REREADS + 3) == [3, 4, 7, 8, 9]
    assert seeks == [(tp, 5)] * ack_guard.REREADS


def test_records_of_other_topics_are_never_withheld(monkeypatch):
    consumer = _consumer()
    other = TP("not-acking", 0)

    async def fetch(self, timeout):
        for offset in (10, 50):
            yield other, Message("not-acking", 0, offset, 0.0, 0, None, b"k", b"v", None)

    monkeypatch.setattr(ack_guard, "_original_getmany", fetch)
    assert _drain(consumer, 1) == [10, 50]


async def _seek_done(consumer) -> None:
    """What Faust's recovery does after an assignment: seek every partition to its committed offset."""
    async def nothing(self):
        return None

    original = ack_guard._original_perform_seek
    ack_guard._original_perform_seek = nothing
    try:
        await consumer.perform_seek()
    finally:
        ack_guard._original_perform_seek = original


def test_a_commit_never_passes_an_unacked_record_at_its_head():
    consumer = _consumer()
    tp = TP(TOPIC, 0)
    consumer._committed_offset[tp] = 11  # the next offset to commit is 11
    for offset in (12, 13):
        message = _message(offset, tracked=True)
        consumer.track_message(message)
        consumer.ack(message)
    # Faust alone commits 14 here (its head check is "more than one behind"), passing record 11.
    assert consumer._new_offset(tp) is None
    handled = _message(11, tracked=True)
    consumer.track_message(handled)
    consumer.ack(handled)
    assert consumer._new_offset(tp) == 14


def test_a_partition_with_no_commit_is_read_from_its_start(monkeypatch):
    """B11: seek_to_committed leaves an uncommitted partition where the client's position was
    (records fetched during recovery and dropped: the fault suite saw a restarted worker start
    inbound[1] at 30). The guard seeks it to its first offset and holds commits until it is read."""
    consumer = _consumer()
    tp = TP(TOPIC, 0)
    seeks = _fetches(monkeypatch, consumer, [[30, 31], [0, 1, 2]])
    consumer._read_offset[tp] = None  # no commit for this partition yet

    async def earliest(*partitions):
        return {p: 0 for p in partitions}

    monkeypatch.setattr(consumer, "earliest_offsets", earliest)
    asyncio.run(_seek_done(consumer))
    assert seeks == [(tp, 0)]
    assert _drain(consumer, 2) == [0, 1, 2]  # 30, 31 (fetched before the seek) withheld, read again later
    # and a commit never starts past the start: 30 acked alone is not committable
    late = _message(30, tracked=True)
    consumer.track_message(late)
    consumer.ack(late)
    assert consumer._new_offset(tp) is None
    for offset in range(30):
        message = _message(offset, tracked=True)
        consumer.track_message(message)
        consumer.ack(message)
    assert consumer._new_offset(tp) == 31
