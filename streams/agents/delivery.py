"""A fetch at a time: the busy topics' records go to their batch agent in lists, past Faust's
per-record stream (issue #17).

Faust hands every fetched record to its agent one at a time: the fetch loop races the record's
delivery against the flow's suspension in four asyncio tasks (``Service.wait_first``), the
conductor decodes it into an event and queues it on the agent's channel, and the stream takes it
off again, tracks it, sets it as the current event, runs the processors and acks it. A trivial
Faust agent reads 4,300–6,300 records/s on this machine (``make bench``'s floor; py-spy of
``python -m bench.faust_floor agent``: its event loop busy 83% of the time, the consumer thread
idle), about 160 µs per record — and an event passes about five such deliveries in the stream
process and as many in the store process. A stage that handles batches needs none of that per
record.

:func:`install` replaces Faust's fetch loop (``Consumer._drain_messages``, faust-streaming
0.15.3) with the same loop, in which a record of a topic a :class:`BatchSource` reads is appended
to a list instead; once the fetch is iterated, each source gets its list at once
(:meth:`BatchSource.deliver`). Everything else is Faust's, unchanged: the fetch itself (with the
ack guard's fetch continuity, :mod:`streams.ack_guard`), the read offsets and gaps, the other
topics' per-record delivery (changelogs, control topics, the low-volume agents), offsets,
commits, rebalances and table recovery.

What Faust's stream guaranteed per record, a source keeps per record:

* **Nothing from before a rebalance.** A record fetched while the flow was suspended or under
  an older consumer generation is never handed on (Faust's stream skips exactly those); it is
  not tracked either, so the ack guard (B7) never lets it be committed, and the partition's owner
  reads it again.
* **Tracked before handled, acked after.** A record is tracked (``Consumer.track_message``, as
  the stream does) when its agent takes it, and acked by :meth:`BatchSource.ack` only after the
  agent has handled its batch and sent the outputs. A revocation waits for tracked records to be
  acked (Faust's ``wait_empty``), as it waited for the stream's. An agent that fails exits the
  worker before it acks (:func:`streams.agents.crash_on_error`): the batch is read again.
* **Backpressure.** A source holds at most ``limit`` records; past it the fetch loop waits for
  its agent, as it waited on a full stream buffer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, AsyncIterator, Callable, Iterable, Sequence, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.types.tuples import Message
from mode.services import Service

from streams import packs

log = logging.getLogger(__name__)

SOURCES = "journeys_batch_sources"
"""The app attribute that maps a topic name to its :class:`BatchSource`."""

_original_drain = Consumer._drain_messages
stale = 0  # records not handed on because a rebalance began after they were fetched (tests, logs)


class BatchSource:
    """The records of ``topics`` for one agent, in the order they were fetched. Sizes (a batch's
    ``most``, the ``limit``) count records, a pack as the records it holds (:mod:`streams.packs`)."""

    def __init__(self, app: faust.App, topics: Iterable[str], limit: int) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.limit = max(1, limit)
        self._records: deque[tuple[Message, int]] = deque()
        self._weight = 0
        self._more: asyncio.Event | None = None
        self._room: asyncio.Event | None = None

    def __len__(self) -> int:
        return self._weight

    def _events(self) -> tuple[asyncio.Event, asyncio.Event]:
        if self._more is None or self._room is None:  # made in the worker's loop, on first use
            self._more, self._room = asyncio.Event(), asyncio.Event()
        return self._more, self._room

    def _current(self, message: Message) -> bool:
        return (self.app.flow_control.is_active()
                and message.generation_id == self.app.consumer_generation_id)

    async def deliver(self, messages: Sequence[Message]) -> None:
        """From the fetch loop: a fetch's records for this source, once there is room for them."""
        more, room = self._events()
        while self._weight >= self.limit:
            room.clear()
            await room.wait()
        weighed = [(m, packs.count(m.headers)) for m in messages]
        self._records.extend(weighed)
        self._weight += sum(w for _, w in weighed)
        more.set()

    async def take(self, most: int, window: float | Callable[[Sequence[Message]], float]) -> list[Message]:
        """The next batch: up to ``most`` records, waiting for the first as long as it takes and
        then at most ``window`` seconds for the batch to fill (a function: of the records queued
        once the first is there). Records fetched before a rebalance are dropped here (see the
        module); the others are tracked as Faust's stream tracks them."""
        more, room = self._events()
        records = self._records
        while True:
            while not records:
                more.clear()
                await more.wait()
            wait = window([records[-1][0]]) if callable(window) else window
            if self._weight < most and wait > 0:
                deadline = time.monotonic() + wait
                while self._weight < most:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    more.clear()
                    try:
                        await asyncio.wait_for(more.wait(), left)
                    except asyncio.TimeoutError:
                        break
            batch: list[Message] = []
            taken = 0
            while records and (not batch or taken + records[0][1] <= most):  # whole packs, at least one
                message, weight = records.popleft()
                batch.append(message)
                taken += weight
            self._weight -= taken
            room.set()
            kept = [m for m in batch if self._current(m)]
            if len(kept) < len(batch):
                self._drop([m for m in batch if not self._current(m)])
            if kept:
                return self._track(kept)

    def _track(self, messages: list[Message]) -> list[Message]:
        consumer = self.app.consumer
        acking = self.app.topics.acks_enabled_for
        for message in messages:
            if not message.tracked and acking(message.topic):
                message.tracked = True
                consumer.track_message(message)
        return messages

    def _drop(self, messages: list[Message]) -> None:
        """Records from before a rebalance: never acked (so never committed: the partition's
        owner reads them again) and no longer waited for by the revocation."""
        global stale
        stale += len(messages)
        unacked = self.app.consumer._unacked_messages
        for message in messages:
            unacked.discard(message)
        log.debug("%d records fetched before a rebalance not handed on; they will be read again", len(messages))

    def ack(self, messages: Iterable[Message]) -> None:
        """The batch is handled and its outputs sent: its offsets may be committed once every
        source the record went to has acked it (Faust's reference count, as for its channels)."""
        consumer = self.app.consumer
        for message in messages:
            message.ack(consumer)


def source(app: faust.App, channel: faust.TopicT, limit: int) -> BatchSource:
    """Register a :class:`BatchSource` for ``channel``'s topics. A topic two agents read (the
    timeline: the journey stage and the store, when one process has both roles) goes to both,
    and a record is committable once both have acked it."""
    sources: dict[str, tuple[BatchSource, ...]] = app.__dict__.setdefault(SOURCES, {})
    src = BatchSource(app, channel.topics, limit)
    for name in src.topics:
        sources[name] = (*sources.get(name, ()), src)
    return src


def subscribe(stream: faust.StreamT) -> None:
    """Subscribe the agent's topics (what iterating its stream would do): the consumer is assigned
    their partitions, and their tables follow. Its records come through the source, not the stream."""
    stream.channel.__aiter__()


async def batches(src: BatchSource, most: int,
                  window: float | Callable[[Sequence[Message]], float]) -> AsyncIterator[list[Message]]:
    """The source's batches, each waiting ``window`` to fill (a function: of the records queued
    when the batch's first record is there, :meth:`BatchSource.take`)."""
    while True:
        yield await src.take(most, window)


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust's loop, run by every worker
    """Faust's ``Consumer._drain_messages`` (faust-streaming 0.15.3), with the records of batch
    sources' topics collected per source and handed on once per fetch (see the module)."""
    sources: dict[str, tuple[BatchSource, ...]] = self.app.__dict__.get(SOURCES) or {}
    if not sources:
        return await _original_drain(self, fetcher)
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    source_of = sources.get

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    pending: dict[BatchSource, list[Message]] = {}

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = cast(AsyncIterator, getmany(timeout=1.0))
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset:
                            if acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None:
                            if self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                        srcs = source_of(tp.topic)
                        if srcs is not None:
                            message.incref(len(srcs))  # acked once every source has acked it
                            for src in srcs:
                                pending.setdefault(src, []).append(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                for src, messages in pending.items():
                    await src.deliver(messages)
                pending.clear()
                unset_flag(flag_consumer_fetching)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        pending.clear()
        unset_flag(flag_consumer_fetching)


def install() -> None:
    """Patch Faust's consumer once per process (idempotent). Without a registered source the
    fetch loop is Faust's own."""
    if Consumer._drain_messages is not _drain_messages:
        Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
