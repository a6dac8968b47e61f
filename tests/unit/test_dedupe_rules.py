"""First receipt wins (streams/rules/dedupe.py, bug B4): which receipts of an id go on."""

from __future__ import annotations

import asyncio
import json

import faust
from aiokafka.partitioner import DefaultPartitioner

from streams.agents.dedupe import MemoryReceipts, sweep
from streams.rules.dedupe import expired, new_receipt, passes


def test_the_first_receipt_goes_on_and_a_re_send_stops():
    assert passes(None, "in/0@5")
    first = new_receipt("in/0@5", now_ms=1_000)
    assert not passes(first, "in/1@9")  # the same id in another inbound record: a re-send
    assert not passes(first, "collector/0@5")


def test_the_same_record_read_again_after_a_crash_goes_on_again():
    first = new_receipt("in/0@5", now_ms=1_000)
    assert passes(first, "in/0@5")  # its effects may have been lost in the crash: redo them


def test_ids_are_forgotten_after_the_retention():
    assert expired(new_receipt("a", 1_000), cutoff_ms=2_000)
    assert not expired(new_receipt("b", 5_000), cutoff_ms=2_000)
    assert not expired(new_receipt("a", 1_000), cutoff_ms=1_000)  # exactly at the cutoff: kept
    assert not expired(None, cutoff_ms=2_000)  # already gone


def test_the_sweep_forgets_old_ids_and_lets_other_tasks_run():
    receipts = {f"id-{i}": new_receipt("in/0@1", now_ms=1_000 if i % 2 else 9_000) for i in range(2_500)}
    ticks = 0

    async def other_task() -> None:  # an agent sharing the event loop
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def run() -> int:
        task = asyncio.create_task(other_task())
        await asyncio.sleep(0)
        forgotten = await sweep(receipts, cutoff_ms=5_000)
        task.cancel()
        return forgotten

    assert asyncio.run(run()) == 1_250
    assert sorted(receipts) == sorted(f"id-{i}" for i in range(0, 2_500, 2))
    assert ticks >= 3  # the scan and the deletes yielded to it between chunks


def test_the_sweep_of_a_memory_table_runs_outside_a_stream_and_tombstones_each_id_on_its_partition():
    """``memory://`` tables: Faust's own delete needs a current event, and the hourly timer has
    none (it raised on the first expired id). The tombstone goes on the partition the id's
    receipts were on: the producer's default partitioner over the id's bytes."""
    app = faust.App("sweep-test", broker="kafka://127.0.0.1:1", store="memory://")  # never connected
    table = app.Table("event-ids", default=None, partitions=4, key_type=str)
    for i in range(40):
        table.data[f"id-{i}"] = new_receipt("in/0@1", now_ms=1_000 if i % 2 else 9_000)

    assert asyncio.run(sweep(MemoryReceipts(table), cutoff_ms=5_000)) == 20

    assert sorted(table.data.keys()) == sorted(f"id-{i}" for i in range(0, 40, 2))
    sent = []
    while not app.producer.buffer.pending.empty():
        sent.append(app.producer.buffer.pending.get_nowait().message)
    ids = [json.loads(m.key) for m in sent]  # the table's key serializer: JSON
    assert sorted(ids) == sorted(f"id-{i}" for i in range(1, 40, 2))
    partitioner = DefaultPartitioner()
    for event_id, m in zip(ids, sent, strict=True):
        assert m.value is None and m.channel.get_topic_name() == table.changelog_topic.get_topic_name()
        assert m.partition == partitioner(event_id.encode(), [0, 1, 2, 3], [0, 1, 2, 3])
    assert len({m.partition for m in sent}) > 1  # not one partition for all
