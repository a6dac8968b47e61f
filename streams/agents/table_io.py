"""A batch stage's table, read and written straight through its RocksDB partitions and its
changelog — past Faust's per-key table machinery (issue #17).

Through Faust, each key a batch writes costs ``Table.__setitem__`` → ``on_key_set`` →
``send_changelog`` → ``send_soon`` → the ``ProducerBuffer`` task → ``Topic.publish_message`` →
``Producer.send`` → ``AIOKafkaProducer.send``, a RocksDB ``put``, and a second RocksDB write per
record (``set_persisted_offset``) when the changelog send completes; each read is a ``contains``
and a ``get``, against every partition's database when no Faust event is current (a batch agent
has none). A live drain spent ≈ 19% of the stream process's event loop there (py-spy, 20,000
events: table writes 137 samples, the producer buffer 121, persisted offsets 21, reads 89 of 1,926).

Here, per batch: each key is read once from its own partition's database (the partition of the
record it came from: every stage's table is co-partitioned with its input topics, as Faust's
own store assumes); the keys written go in one ``WriteBatch`` per partition and their changelog
records straight into the producer's accumulator, on that same partition; and the persisted
offset is written once per partition and batch, from the delivery of its last changelog
record. What is stored and what goes to the changelog are the bytes Faust would have written
(its key and value serialisers), and Faust's recovery (``apply_changelog_batch``) puts changelog
bytes in the database as they are: a worker restored from the changelog, a standby, the web
views reading the table through Faust — all read the same values.

A refused changelog record stops the worker before it commits past the batch
(:func:`streams.agents._exit_if_refused`), as for every output. Only Faust's RocksDB store and
aiokafka's producer are done this way; any other table store (``memory://``) keeps Faust's path
(:func:`streams.agents.write_states`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP

from streams.steps import States


def watch_batch(accumulator: Any, tp: Any, refused: Callable[[Any], None], watched: set[int]) -> None:
    """Call ``refused`` with the outcome of the record batch that the record just added to ``tp``
    went into, once per batch (``watched``: the ids of the batches watched so far in this send).
    aiokafka fails every record of a batch together (``MessageBatch.failure`` sets the batch's
    future and each record's), so one callback per batch sees every refusal that one per record
    saw — without a ``call_soon`` per record when the batch completes: those were 5.7% of a live
    drain's stream process (py-spy, ``python -m bench.drain --profile``). Called right after
    the record was appended: it went into the newest batch of ``tp``, which nothing could have
    taken in between (no await since the append)."""
    batch = accumulator._batches[tp][-1]
    if id(batch) not in watched:
        watched.add(id(batch))
        batch.future.add_done_callback(refused)


async def append(accumulator: Any, tp: Any, key: bytes | None, value: bytes | None, headers: Any,
                 timeout: float) -> tuple[Any, int]:
    """Append a record to ``tp``'s open record batch, as ``accumulator.add_message`` does, but
    without the per-record future it makes (an ``asyncio`` future, resolved with a
    ``RecordMetadata`` when the batch completes) and without a coroutine per record while the
    batch has room: the stages follow their batch's outcome (:func:`watch_batch`), never a
    record's. ≈ 6% of a live drain's stream process went to those futures (py-spy,
    ``python -m bench.drain --profile``: ``create_future`` → ``get_running_loop`` 25 of 549
    samples). With no open batch, a full one, or a closed or failed accumulator, it is
    ``add_message`` itself (which starts a batch, waits for room, or raises). Returns the batch
    and the record's offset within it (its offset on the broker is the batch's base offset
    plus that)."""
    batches = accumulator._batches.get(tp)
    if batches and not accumulator._closed and accumulator._exception is None:
        batch = batches[-1]
        metadata = batch._builder.append(timestamp=None, key=key, value=value, headers=headers)
        if metadata is not None:
            return batch, metadata.offset
    await accumulator.add_message(tp, key, value, timeout, timestamp_ms=None, headers=headers)
    batch = accumulator._batches[tp][-1]
    return batch, batch._msg_futures[-1][1].offset


class PartitionStates(States):
    """A batch's states read through a :class:`DirectTable`: each key from the database of the
    partition of the record it is handled for (``at``, set by :func:`streams.steps.run_batch`)."""

    __slots__ = ("direct",)

    def __init__(self, direct: DirectTable) -> None:
        super().__init__(_unused)
        self.direct = direct

    def get(self, key: str) -> Any:
        if key not in self.values:
            self.values[key] = self.direct.read(key, self.at.partition)
        return self.values[key]


def _unused(key: str) -> Any:
    raise AssertionError("PartitionStates reads through its DirectTable")


class DirectTable:
    """Reads and batch writes of one Faust table on a RocksDB store (see the module)."""

    __slots__ = ("table", "store", "changelog", "_rocksdict", "_loads")

    def __init__(self, table: Any) -> None:
        import rocksdict

        self.table = table
        self.store = table.data
        self.changelog: str = table.changelog_topic.get_topic_name()
        self._rocksdict = rocksdict
        self._loads = self.store._decode_value

    @classmethod
    def of(cls, table: Any, producer: Any) -> DirectTable | None:
        """The direct path for ``table``, or None where it does not apply (another store, a
        producer without aiokafka's accumulator: Faust's path)."""
        kafka = getattr(producer, "_producer", None)
        store = getattr(table, "data", None)
        if not isinstance(store, faust_rocksdb.Store) or not getattr(store, "use_rocksdict", False):
            return None
        if kafka is None or not hasattr(kafka, "_message_accumulator"):
            return None
        return cls(table)

    def states(self) -> PartitionStates:
        """A batch's states, each key read from its partition's database."""
        return PartitionStates(self)

    def key(self, key: str) -> bytes:
        return self.store._encode_key(key)

    def read(self, key: str, partition: int) -> Any:
        """The key's value in ``partition``'s database (deserialised, the caller's own), or None."""
        raw = self.store._db_for_partition(partition).get(self.key(key))
        return None if raw is None else self._loads(raw)

    def encode(self, written: Iterable[tuple[str, Any, Any]]) -> list[tuple[int, bytes, bytes | None]]:
        """``(partition, key, value)`` bytes of a batch's writes (``value`` None: deleted), each
        on the partition of the record it came from."""
        encode_value = self.store._encode_value
        return [(record.partition, self.key(key), None if value is None else encode_value(value))
                for key, value, record in written]

    def put(self, rows: list[tuple[int, bytes, bytes | None]]) -> None:
        """The rows into the partitions' databases: one ``WriteBatch`` per partition."""
        batches: dict[int, Any] = {}
        index = self.store._key_index
        for partition, key, value in rows:
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self._rocksdict.WriteBatch(raw_mode=True)
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
                index[key] = partition
        for partition, batch in batches.items():
            self.store._db_for_partition(partition).write(batch)

    async def write(self, kafka: Any, written: Iterable[tuple[str, Any, Any]],
                    refused: Callable[[str], Callable[[Any], None]]) -> None:
        """A batch's writes: into the databases, and their changelog records into aiokafka's
        accumulator (flushed by Faust before any commit: on the broker before the batch's input
        is committed). ``refused(topic)``: the callback that stops the worker on a refused record."""
        rows = self.encode(written)
        if not rows:
            return
        self.put(rows)
        await self.send(kafka, rows, refused(self.changelog))

    async def send(self, kafka: Any, rows: list[tuple[int, bytes, bytes | None]],
                   refused: Callable[[Any], None]) -> None:
        topic = self.changelog
        await kafka.client._wait_on_metadata(topic)  # as kafka.send: the topic's partitions known
        accumulator = kafka._message_accumulator
        timeout = kafka._request_timeout_ms / 1000
        last: dict[int, tuple[Any, int]] = {}
        watched: set[int] = set()
        for partition, key, value in rows:
            key, value = kafka._serialize(key, value, [])  # as kafka.send: a record over max_request_size raises
            tp = TP(topic, partition)
            last[partition] = await append(accumulator, tp, key, value, [], timeout)
            watch_batch(accumulator, tp, refused, watched)
        for partition, (batch, offset) in last.items():
            batch.future.add_done_callback(self._persisted(partition, offset))

    # -- whole partitions (a sweep) ----------------------------------------------------------
    def active_partitions(self) -> list[int]:
        """The table partitions this worker owns (active, not standby), with a database open."""
        actives = self.table.app.assignor.assigned_actives()
        return sorted(p for p in self.store._dbs if TP(self.changelog, p) in actives)

    def scan(self, partition: int) -> Iterator[tuple[bytes, Any]]:
        """``(key bytes, value)`` of every key in ``partition``'s database (not the persisted offset)."""
        db = self.store._dbs.get(partition)
        if db is None:
            return
        skip = self.store.offset_key
        for key, raw in db.items():
            if key != skip:
                yield key, self._loads(raw)

    async def walk(self, partition: int, chunk: int = 1000,
                   decode: bool = True) -> AsyncIterator[list[tuple[bytes, Any]]]:
        """:meth:`scan` of ``partition`` (``decode=False``: the values' stored bytes) in lists of
        at most ``chunk`` keys, yielding to the event loop between them, so that a walk of a big
        table (a timer's, a recovery's) never stops the stages for long. It ends early once the
        partition's database is no longer the one it started on (revoked in a rebalance: Faust
        drops it, and a reference held here would keep its lock from the next owner of that
        partition in this process); whoever walks again after the next recovery sees the rest."""
        db = self.store._dbs.get(partition)
        if db is None:
            return
        skip, loads = self.store.offset_key, self._loads if decode else bytes
        items = iter(db.items())
        while True:
            rows: list[tuple[bytes, Any]] = []
            for key, raw in items:
                if key != skip:
                    rows.append((key, loads(raw)))
                    if len(rows) >= chunk:
                        break
            if not rows:
                return
            yield rows
            await asyncio.sleep(0)
            if self.store._dbs.get(partition) is not db:
                return

    async def delete(self, kafka: Any, rows: list[tuple[int, bytes]],
                     refused: Callable[[str], Callable[[Any], None]]) -> None:
        """``(partition, key bytes)``: deleted from the databases, with a tombstone on the changelog
        (outside any batch: a sweep; Faust's own delete needs a current event to find the partition)."""
        if rows:
            gone: list[tuple[int, bytes, bytes | None]] = [(p, key, None) for p, key in rows]
            self.put(gone)
            await self.send(kafka, gone, refused(self.changelog))

    def _persisted(self, partition: int, offset: int) -> Callable[[Any], None]:
        """Once the record batch holding the partition's last changelog record of a batch is on the
        broker (that record at ``offset`` within it): its offset is what the database holds up to
        (Faust's ``_on_changelog_sent``; a restore reads on from there). A partition's records are
        delivered in order, so the earlier ones are there too."""

        def done(delivery: Any) -> None:
            if delivery.cancelled() or delivery.exception() is not None:
                return  # refused: the worker stops (``refused``); cancelled: the producer stopped
            metadata = delivery.result()
            if metadata is not None:  # None: acks=0, no offset known
                self.store.set_persisted_offset(TP(self.changelog, partition), metadata.offset + offset)

        return done
