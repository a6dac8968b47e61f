"""A batch stage's table written straight through its RocksDB partitions and its changelog
(streams/agents/table_io.py): what Faust itself would have stored and sent, on the real broker,
each key on the partition of the record it came from, and the persisted offset each partition's
database is restored from."""

from __future__ import annotations

import asyncio
import types
import uuid
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TP
from kafka.admin import KafkaAdminClient, NewTopic

from streams import tables
from streams.agents.dedupe import sweep_partitions
from streams.agents.journey import fill_due_index
from streams.agents.table_io import DirectTable
from streams.rules.alerts import DueIndex
from streams.settings import Settings
from streams.steps import Record
from tests.support.topics import read_all

pytestmark = pytest.mark.integration

PARTITIONS = 4


def _changelog(bootstrap: str, topic: str) -> list[tuple[int, int, bytes | None, bytes | None]]:
    return sorted((m.partition, m.offset, m.key, m.value) for m in read_all(bootstrap, topic, PARTITIONS))


def _table(tmp_path: Path, app_id: str, store: str = "rocksdb://") -> Any:
    settings = Settings(table_store=store, topic_partitions=PARTITIONS, table_memory_mb=16)
    app = faust.App(app_id, broker="kafka://127.0.0.1:1", datadir=str(tmp_path), autodiscover=False,
                    store=tables.store_url(settings, ""))
    return tables.table(app, settings, "journeys", help="test")


def test_writes_reach_the_partition_databases_and_the_changelog_as_faust_would_write_them(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    table = _table(tmp_path, f"table-io-{uuid.uuid4().hex[:8]}")
    changelog = table.changelog_topic.get_topic_name()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(changelog, num_partitions=PARTITIONS, replication_factor=1)])
    values = {f"account-{i}": {"stage": "mql", "n": i, "history": [[i, f"e{i}", ["x", None]]]} for i in range(12)}
    first = [(key, value, Record("timeline", key.encode(), b"", partition=i % PARTITIONS))
             for i, (key, value) in enumerate(values.items())]
    # a second batch: one key deleted (a privacy request), one rewritten
    gone, again = "account-5", "account-6"
    second = [(gone, None, Record("timeline", gone.encode(), b"", partition=5 % PARTITIONS)),
              (again, dict(values[again], n=600), Record("timeline", again.encode(), b"", partition=6 % PARTITIONS))]
    refused: list[Any] = []

    async def write() -> DirectTable:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks=-1)
        await producer.start()
        try:
            direct = DirectTable.of(table, types.SimpleNamespace(_producer=producer))
            assert direct is not None
            await direct.write(producer, iter(first), lambda topic: refused.append)
            await direct.write(producer, iter(second), lambda topic: refused.append)
            await producer.flush()
            await asyncio.sleep(0.1)  # the delivery callbacks run on the loop after the flush
            return direct
        finally:
            await producer.stop()

    try:
        direct = asyncio.run(write())
        assert all(d.exception() is None for d in refused)  # every record delivered
        store = table.data
        records = _changelog(kafka_bootstrap, changelog)
        assert len(records) == len(first) + len(second)
        for i, (key, value) in enumerate(values.items()):
            p = i % PARTITIONS
            mine = [r for r in records if r[2] == store._encode_key(key)]  # Faust's key bytes
            assert {r[0] for r in mine} == {p}  # the key's partition: the record's
            if key == gone:
                assert [r[3] for r in mine] == [store._encode_value(value), None]  # then a tombstone
                assert direct.read(key, p) is None
                continue
            newest = dict(value, n=600) if key == again else value
            assert mine[-1][3] == store._encode_value(newest)  # Faust's own bytes
            assert direct.read(key, p) == newest
            assert all(direct.read(key, other) is None for other in range(PARTITIONS) if other != p)
            assert table.data[key] == newest  # Faust reads what was written (no current event: its key search)
        for p in range(PARTITIONS):  # a restore reads the changelog on from the last record written here
            last = max(offset for partition, offset, _, _ in records if partition == p)
            assert store.persisted_offset(TP(changelog, p)) == last
        states = direct.states()
        states.at = Record("timeline", b"account-3", b"", partition=3)
        assert states.get("account-3") == values["account-3"]
        states.at = Record("timeline", b"account-4", b"", partition=0)
        assert states.get("account-4") == values["account-4"]
    finally:
        admin.delete_topics([changelog])
        admin.close()


def test_another_table_store_keeps_fausts_own_path(tmp_path: Path) -> None:
    table = _table(tmp_path, "table-io-memory", store="memory://")
    producer = types.SimpleNamespace(_producer=types.SimpleNamespace(_message_accumulator=object()))
    assert DirectTable.of(table, producer) is None
    rocks = _table(tmp_path / "rocks", "table-io-rocks")
    assert DirectTable.of(rocks, types.SimpleNamespace(_producer=None)) is None  # no aiokafka producer
    assert DirectTable.of(rocks, producer) is not None


def test_the_dedupe_sweep_forgets_old_ids_in_each_partition_with_a_tombstone(kafka_bootstrap: str,
                                                                               tmp_path: Path) -> None:
    """The hourly sweep deletes through the databases and the changelog: Faust's own table delete
    raises outside a stream (it takes the partition from the current event; a timer has none)."""
    settings = Settings(topic_partitions=PARTITIONS, table_memory_mb=16)
    app = faust.App(f"sweep-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1", datadir=str(tmp_path),
                    autodiscover=False, store=tables.store_url(settings, ""))
    table = tables.table(app, settings, "event-ids", help="test")
    changelog = table.changelog_topic.get_topic_name()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(changelog, num_partitions=PARTITIONS, replication_factor=1)])
    ids = {f"id-{i}": {"ref": f"inbound/0@{i}", "at": 1_000 if i % 3 == 0 else 9_000} for i in range(2_500)}
    old = {k for k, v in ids.items() if v["at"] < 5_000}

    async def run() -> tuple[DirectTable, int]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks=-1)
        await producer.start()
        try:
            direct = DirectTable.of(table, types.SimpleNamespace(_producer=producer))
            assert direct is not None
            direct.put([(i % PARTITIONS, direct.key(k), direct.store._encode_value(v))
                        for i, (k, v) in enumerate(ids.items())])
            gone = await sweep_partitions(direct, producer, 5_000, list(range(PARTITIONS)))
            await producer.flush()
            return direct, gone
        finally:
            await producer.stop()

    try:
        direct, gone = asyncio.run(run())
        assert gone == len(old) == 834
        left = {key: value for p in range(PARTITIONS) for key, value in direct.scan(p)}
        assert left == {direct.key(k): v for k, v in ids.items() if k not in old}  # (no persisted offset key)
        records = _changelog(kafka_bootstrap, changelog)
        assert len(records) == len(old) and all(value is None for *_, value in records)
        assert {(p, key) for p, _, key, _ in records} == {(i % PARTITIONS, direct.key(k))
                                                          for i, k in enumerate(ids) if k in old}
    finally:
        admin.delete_topics([changelog])
        admin.close()


def test_the_timer_index_is_refilled_from_the_table_while_the_stages_go_on(tmp_path: Path) -> None:
    """After a rebalance the due times are read from the journeys table in chunks, in the
    background (read at once, 100,000 accounts held the recovery up for 10 s): the loop runs
    other work between chunks, and an account the stage writes meanwhile keeps the stage's due
    time, not the one of the state the walk read."""
    table = _table(tmp_path, f"due-{uuid.uuid4().hex[:8]}")
    direct = DirectTable(table)
    # as the journey stage writes them (due_ms first, read from the bytes' start), and as older
    # states may hold it (anywhere: parsed whole)
    states = {f"account-{i}": ({"due_ms": 1_000 + i if i % 4 == 0 else 0, "stage": "mql"} if i % 3 else
                               {"stage": "mql", "due_ms": 1_000 + i if i % 4 == 0 else 0}) for i in range(2_500)}
    direct.put([(i % PARTITIONS, direct.key(k), direct.store._encode_value(v)) for i, (k, v) in enumerate(states.items())])
    index = DueIndex()
    index.note("gone-elsewhere", 5)  # an account of a partition this worker no longer owns

    async def run() -> tuple[int, int]:
        fill = asyncio.ensure_future(fill_due_index(direct, index, list(range(PARTITIONS)), index.refill()))
        turns = 0
        while not fill.done():
            turns += 1
            if turns == 2:  # the stage, mid-walk: account-8 settled, account-9 now due
                for account, due in (("account-8", 0), ("account-9", 77)):
                    index.note(account, due)
                    direct.put([(9 % PARTITIONS if account == "account-9" else 0, direct.key(account),
                                 direct.store._encode_value({"stage": "sql", "due_ms": due}))])
            await asyncio.sleep(0)
        return fill.result(), turns

    due, turns = asyncio.run(run())
    expected = {k: v["due_ms"] for k, v in states.items() if v["due_ms"] and k != "account-8"} | {"account-9": 77}
    assert due == len(expected) == 625
    assert sorted(index.due(10**9)) == sorted(expected)
    assert sorted(index.due(1_000)) == ["account-0", "account-9"] and index.due(76) == []
    assert turns >= 2_500 // 1_000  # a turn of the loop at least every chunk

    # a partition revoked mid-walk (Faust drops its database): the walk ends there
    async def revoked() -> int:
        rows = 0
        async for chunk in direct.walk(1, chunk=100, decode=False):
            rows += len(chunk)
            direct.store._dbs.pop(1)
        return rows

    assert asyncio.run(revoked()) == 100
