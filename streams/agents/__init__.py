"""Faust wiring per stage: each module registers its agents (and tables) on the app."""

from __future__ import annotations

import copy
import logging
import os
import sys
import weakref
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Sequence

import faust
from aiokafka.structs import TopicPartition
from faust.streams import _current_event

from schemas.errors import Reason, RecordFailed, log_exc_info, loggable
from streams import metrics, packs
from streams.agents import batching, delivery, dlq
from streams.agents.table_io import DirectTable, append, watch_batch
from streams.fence import Fence
from streams.steps import Outbox, States, Step, run_batch

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
CRASH_EXIT_CODE = 70
"""A batch stage that cannot go on exits the worker with this code (EX_SOFTWARE)."""


async def fenced(stream: faust.StreamT, fence: Fence, stage: str | None = None) -> AsyncIterator[faust.EventT]:
    """The stream's events, each checked against the fence before the agent touches it (a worker
    frozen past its session exits here, before a stale write) and counted in
    ``journeys_events_in_total{stage}`` when ``stage`` is given. Acks are Faust's as usual: an
    event is acked when the agent asks for the next one."""
    async for event in stream.events():
        fence.check()
        if stage is not None:
            metrics.EVENTS_IN.labels(stage).inc()
        yield event


@asynccontextmanager
async def guarded(event: faust.EventT, dead_letters: faust.TopicT, stage: str) -> AsyncIterator[None]:
    """The one guard around an agent's handling of one record::

        async for event in fenced(stream, fence, "stage"):
            async with guarded(event, topics.inbound_dlq, "stage"):
                ...

    Any exception while handling the record dead-letters THAT record (its original bytes, where
    it was read, ``stage``, the error as the reason), counts it in
    ``journeys_events_out_total{stage, outcome="dead-lettered"}`` and lets the agent go on. (An
    agent that raises is stopped by Faust, which acks the record: the record would be lost and
    every later one would wait.) The dead letter is awaited before the next record is asked for,
    so it is written before the offset is committed. If the dead letter cannot be written, that
    error propagates: the agent stops rather than lose the record silently. Cancellation
    (``BaseException``) is not caught.
    """
    try:
        yield
    except Exception as exc:  # the guard: dead-lettered and counted below
        msg = event.message
        where = f"{msg.topic}/{msg.partition}@{msg.offset}"
        text = loggable(exc, MAX_REASON_CHARS)  # paths and error types: no input values (PII) in logs
        log.error("%s: record %s dead-lettered: %s", stage, where, text, exc_info=log_exc_info(exc))
        error = RecordFailed([Reason("$", f"{stage} failed on this record: {text}")], stage=stage)
        await dlq.send(dead_letters, msg.key, msg.value if msg.value is not None else b"", "kafka", where, error)
        metrics.EVENTS_OUT.labels(stage, "dead-lettered").inc()


# -- batch stages ---------------------------------------------------------------------------


async def batches(stream: faust.StreamT, src: delivery.BatchSource, fence: Fence, settings: Any,
                  stage: str | None = None, name: str | None = None) -> AsyncIterator[tuple[list[Any], list[Any]]]:
    """The source's records in batches (``JOURNEYS_STREAM_BATCH_SIZE`` records, or what came
    within the batch window: ``JOURNEYS_STREAM_BATCH_SECONDS`` while the stage keeps up,
    ``JOURNEYS_STREAM_BATCH_SECONDS_BEHIND`` while it is behind: the newest record queued has
    waited longer than that when the batch's first record is there — :func:`batching.next_window`),
    each checked against the fence and counted in ``journeys_events_in_total{stage}`` (and its
    size in ``journeys_stream_batch_records{stage: name}``). The records are Faust messages
    handed on a fetch at a time (:mod:`streams.agents.delivery`). Each batch comes as its Kafka
    messages and their records, packs unpacked (:mod:`streams.packs`; the sizes above count
    records); the caller acks the messages (``src.ack``) once the records are handled and their
    outputs sent, under :func:`crash_on_error`."""
    delivery.subscribe(stream)
    light, behind = settings.stream_batch_seconds, max(settings.stream_batch_seconds_behind,
                                                      settings.stream_batch_seconds)
    # decided when the batch's first record is there, from the newest record queued: the last
    # batch's age said "behind" after a burst, and the first records after a pause waited the
    # long window at every stage (≈ 0.3 s per hop, the slowest alerts of make bench's latency phase)
    window = lambda queued: batching.next_window(batching.newest_age([queued[-1]]), light, behind)  # noqa: E731
    async for messages in delivery.batches(src, settings.stream_batch_size, window):
        fence.check()
        records = packs.unpacked(messages)
        if stage is not None:
            metrics.EVENTS_IN.labels(stage).inc(len(records))
        metrics.STREAM_BATCH_RECORDS.labels(name or stage or "").observe(len(records))
        yield messages, records


@asynccontextmanager
async def crash_on_error(stage: str) -> AsyncIterator[None]:
    """Around a batch: an error that escapes the per-record guard (the dead letters cannot be
    written, a bug in the stage itself) stops the whole worker at once, non-zero, before the
    batch is acked: its records are redelivered to the restarted worker, never skipped. (An
    agent that raises is only stopped by Faust, silently: the worker would go on without it.)"""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the crash below is the handling
        log.critical("%s: cannot go on; the worker exits (%d) so its batch is redelivered",
                     stage, CRASH_EXIT_CODE, exc_info=log_exc_info(exc))
        logging.shutdown()
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)


class _At:
    """Stands for the Faust event a table write comes from (Faust reads only its message)."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, message: Any) -> None:
        self.message = message


def write_states(table: faust.TableT, states: States) -> None:
    """Write every key a batch changed, once, each with its own record made the current event:
    Faust writes a table key's changelog to the current event's partition, and in a batch that
    is whichever record came last — a restore after a rebalance would miss the key. A ``None``
    value deletes the key."""
    for key, value, message in states.written():
        at = _At(message)
        token = _current_event.set(weakref.ref(at))
        try:
            if value is not None:
                table[key] = value
            elif key in table:  # deleted (a privacy request): a tombstone on the changelog
                del table[key]
        finally:
            _current_event.reset(token)


def _exit_if_refused(topic: str) -> Callable[[Any], None]:
    """A delivery the broker refused (record too large for the topic, authorisation, a topic
    deleted…) lost an output: stop the worker at once, before Faust commits past the batch that
    made it (the flush before a commit does not fail on it). The record itself is not logged: it
    may carry personal data."""

    def done(delivery: Any) -> None:
        if delivery.cancelled() or delivery.exception() is None:
            return
        exc = delivery.exception()
        log.critical("the broker refused a record for %s (%s); the worker exits (%d) before it commits past "
                     "the batch that made it", topic, loggable(exc), CRASH_EXIT_CODE)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)

    return done


async def send(app: faust.App, out: Outbox) -> None:
    """A batch's outputs, straight to the producer (the topics exist before a worker starts,
    ``streams.admin``), without Faust's per-record channel machinery. No await of the
    delivery: Faust flushes the producer before it commits an offset, so the outputs are on
    the broker before the batch's input is committed (at-least-once; every consumer of these
    topics is idempotent). A refused delivery stops the worker (:func:`_exit_if_refused`).
    With aiokafka (Faust's producer), the records go straight to its accumulator
    (:func:`send_direct`), those of the packed topics in packs (:mod:`streams.packs`)."""
    if not out.items:
        return
    producer = app.producer
    kafka = getattr(producer, "_producer", None)
    if kafka is not None and hasattr(kafka, "_message_accumulator"):
        await send_direct(kafka, out.items, getattr(app, PACKED_ATTR, frozenset()))
        return
    for topic, key, value, headers in out.items:
        delivery = await producer.send(topic, key, value, None, None, headers)
        delivery.add_done_callback(_exit_if_refused(topic))


PACKED_ATTR = "journeys_packed"
"""The app attribute naming the topics its stages write in packs (``streams.app``)."""


async def send_direct(kafka: Any, items: Sequence[tuple[str, bytes | None, bytes, Any]],
                      packed: frozenset[str] = frozenset()) -> None:
    """``items`` into an aiokafka producer's accumulator, in order, each on the partition
    ``kafka.send`` would pick (the producer's partitioner on its key) — what ``kafka.send`` does,
    with the topic's metadata checked once per topic and each key partitioned once per batch
    instead of both per record, and without Faust's wrapper (the producer path was ≈ 8% of a live
    drain's event loop). Records still join the open record batch of their partition, as
    ``send`` does (aiokafka's ``send_batch`` would queue a batch per call and wait for the one
    before it to drain: measured slower). The records of a topic in ``packed`` go in packs, one
    per partition (:func:`streams.packs.packs`), each record still on its own key's partition.
    A refused record stops the worker (:func:`_exit_if_refused`, watched once per record batch:
    :func:`~streams.agents.table_io.watch_batch`)."""
    accumulator = kafka._message_accumulator
    timeout = kafka._request_timeout_ms / 1000
    by_topic: dict[str, list[tuple[bytes | None, bytes, Any]]] = {}
    for topic, key, value, headers in items:
        by_topic.setdefault(topic, []).append((key, value, headers))
    for topic, records in by_topic.items():
        await kafka.client._wait_on_metadata(topic)  # as kafka.send: the topic's partitions known
        refused = _exit_if_refused(topic)
        watched: set[int] = set()
        tps: dict[bytes, TopicPartition] = {}
        if topic in packed:
            by_tp: dict[TopicPartition, list[tuple[bytes | None, bytes, Any]]] = {}
            for key, value, headers in records:
                by_tp.setdefault(_partition(kafka, topic, tps, key, value), []).append((key, value, headers))
            for tp, run in by_tp.items():
                for key, value, headers in packs.packs(run):
                    key, value = kafka._serialize(key, value, headers)  # a record over max_request_size raises
                    await append(accumulator, tp, key, value, headers, timeout)
                    watch_batch(accumulator, tp, refused, watched)
            continue
        for key, value, headers in records:
            headers = headers or []
            key, value = kafka._serialize(key, value, headers)  # as kafka.send: a record over max_request_size raises
            tp = _partition(kafka, topic, tps, key, value)
            await append(accumulator, tp, key, value, headers, timeout)
            watch_batch(accumulator, tp, refused, watched)


def _partition(kafka: Any, topic: str, known: dict[bytes, TopicPartition], key: bytes | None,
               value: bytes) -> TopicPartition:
    """The partition ``kafka.send`` would pick for ``key`` (its partitioner), once per key."""
    tp = known.get(key) if key is not None else None
    if tp is None:
        tp = TopicPartition(topic, kafka._partition(topic, None, key, value, key, value))
        if key is not None:
            known[key] = tp
    return tp


def stage_agent(app: faust.App, source: faust.TopicT, step: Step, settings: Any, fence: Fence,
                table: faust.TableT | None = None, stage: str | None = None) -> None:
    """Run ``step`` (:mod:`streams.steps`) as a Faust agent on ``source``: batches in, the
    step's state in ``table``, outputs sent, the worker stopped on an error the step's guard
    did not take (:func:`crash_on_error`)."""
    read: Callable[[str], Any] = (lambda _key: None) if table is None else table.get
    if table is not None and not str(settings.table_store).startswith("rocksdb"):
        # RocksDB hands out a fresh deserialised value per read; other stores (memory://) the
        # stored object itself, which a failed handling must not have mutated
        read = lambda key: copy.deepcopy(table.get(key))  # noqa: E731
    dead_letters = step.names.inbound_dlq  # type: ignore[attr-defined]

    src = delivery.source(app, source, limit=4 * settings.stream_batch_size)

    @app.agent(source, name=step.name)
    async def run(stream: faust.StreamT) -> None:
        direct = None if table is None else DirectTable.of(table, app.producer)  # the producer has started
        async for messages, records in batches(stream, src, fence, settings, stage, step.name):
            async with crash_on_error(step.name):
                out = Outbox()
                # with the direct path, each key is read from its own partition's database (issue #17)
                states = States(read) if direct is None else direct.states()
                run_batch(step, records, states, out, dead_letters)
                fence.check()  # a worker frozen past its session writes nothing from stale state
                if direct is not None:
                    await direct.write(app.producer._producer, states.written(), _exit_if_refused)
                elif table is not None:
                    write_states(table, states)
                await send(app, out)
                src.ack(messages)
