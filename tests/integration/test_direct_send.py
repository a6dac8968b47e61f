"""A stage's outputs go straight into the producer's accumulator (streams/agents, ``send_direct``),
not through ``send`` per record — each record on the partition ``send`` would pick, in order, with
its headers, on the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streams.agents import send_direct
from tests.support.topics import read_all

pytestmark = pytest.mark.integration


def _read(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, bytes | None, bytes, list]]:
    return [(m.partition, m.key, m.value, list(m.headers or [])) for m in read_all(bootstrap, topic, partitions)]


def test_outputs_go_where_per_record_sends_put_them_without_a_send_each(kafka_bootstrap: str) -> None:
    name = f"batched-send-{uuid.uuid4().hex[:8]}"
    batched, single = f"{name}-batched", f"{name}-single"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(t, num_partitions=4, replication_factor=1) for t in (batched, single)])
    keys = [f"account-{i % 7}".encode() for i in range(60)]
    items = [(batched, key, f"v{i}".encode(), [("h", str(i).encode())] if i % 2 else None)
             for i, key in enumerate(keys)]

    async def produce() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks=-1, max_batch_size=1024 * 1024)
        await producer.start()
        sends: list[str] = []
        original = producer.send

        async def counted(topic, *args, **kwargs):
            sends.append(topic)
            return await original(topic, *args, **kwargs)

        producer.send = counted  # type: ignore[method-assign]
        try:
            await send_direct(producer, items)
            for i, key in enumerate(keys):  # the same records one by one, as before
                await producer.send(single, f"v{i}".encode(), key=key)
            await producer.flush()
        finally:
            await producer.stop()
        return sends.count(batched)

    try:
        assert asyncio.run(produce()) == 0  # no send per record
        got, expected = _read(kafka_bootstrap, batched, 4), _read(kafka_bootstrap, single, 4)
        assert len(got) == 60
        assert {(p, k, v) for p, k, v, _ in got} == {(p, k, v) for p, k, v, _ in expected}
        for key in set(keys):  # per key, in the order sent
            values = [v for _, k, v, _ in got if k == key]
            assert values == [v for _, k, v, _ in items if k == key]
        headers = {v: h for _, _, v, h in got}
        assert headers[b"v1"] == [("h", b"1")] and headers[b"v2"] == []
    finally:
        admin.delete_topics([batched, single])
        admin.close()


def test_a_refused_record_is_seen_with_one_callback_per_record_batch(kafka_bootstrap: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker refuses one record (over the topic's ``max.message.bytes``): the worker's exit
    callback sees it, although it is attached once per record batch, not once per record."""
    import streams.agents as agents

    topic = f"refused-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                                  topic_configs={"max.message.bytes": "4000"})])
    outcomes: list[BaseException | None] = []
    monkeypatch.setattr(agents, "_exit_if_refused", lambda _topic: lambda d: outcomes.append(d.exception()))
    small = [(topic, f"k{i}".encode(), b"x" * 20, None) for i in range(40)]
    big = (topic, b"big", b"y" * 20_000, None)

    async def produce(items: list) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks=-1, max_batch_size=1024 * 1024)
        await producer.start()
        try:
            await send_direct(producer, items)
            await producer.flush()
            await asyncio.sleep(0.1)  # the callbacks run on the loop after the flush
        finally:
            await producer.stop()

    try:
        asyncio.run(produce(small))
        assert 1 <= len(outcomes) <= 2 and all(o is None for o in outcomes)  # 40 records, one callback per batch
        outcomes.clear()
        asyncio.run(produce([big]))
        assert len(outcomes) == 1 and outcomes[0] is not None  # refused: the worker would exit here
        assert "MessageSizeTooLarge" in type(outcomes[0]).__name__ or "too large" in str(outcomes[0]).lower()
    finally:
        admin.delete_topics([topic])
        admin.close()


def test_appended_records_keep_their_order_and_know_their_offsets_across_full_batches(kafka_bootstrap: str) -> None:
    """``table_io.append`` adds a record to the open batch without a future of its own, and falls
    back to ``add_message`` when the batch is full: with 1 KiB batches, 300 records of ~100 bytes
    fill many; every record lands once, in order, at the offset its batch's base plus its own."""
    from aiokafka.structs import TopicPartition

    from streams.agents.table_io import append

    topic = f"append-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    values = [f"{i:04d}".encode() * 25 for i in range(300)]

    async def produce() -> tuple[list[int], int]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks=-1, max_batch_size=1024)
        await producer.start()
        try:
            await producer.client._wait_on_metadata(topic)
            accumulator, tp = producer._message_accumulator, TopicPartition(topic, 0)
            placed = [await append(accumulator, tp, b"k", value, [], 30.0) for value in values]
            batches = len({id(batch) for batch, _ in placed})
            await producer.flush()
            return [(await batch.future).offset + offset for batch, offset in placed], batches
        finally:
            await producer.stop()

    try:
        offsets, batches = asyncio.run(produce())
        assert batches > 10  # the full-batch fallback ran
        got = read_all(kafka_bootstrap, topic, 1)
        assert [m.value for m in got] == values
        assert offsets == [m.offset for m in got]
    finally:
        admin.delete_topics([topic])
        admin.close()
