"""Agents (store role): every output topic → its ClickHouse table(s), through one mechanism.

Each sink agent takes a batch (a fetch at a time, :mod:`streams.agents.delivery`), maps it to rows with a pure mapper, and
awaits :func:`insert_until_done` per table with a dedup token naming the batch's offsets. The
batch is acked only after every insert succeeded; a failing insert is retried forever, so
consumption pauses (backpressure) and offsets are never committed for unwritten rows.

After a timeline, identity-link or override batch is stored, the store re-resolves the events
it can move (``event_resolution``, what every report reads; sinks/clickhouse/resolution.py),
retried the same way and before the batch is acked; the sink stores its next batch meanwhile
(:class:`InOrderAcks`). A record a sink cannot read is dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import faust
import orjson
from pydantic import ValidationError

from schemas.alerts import AlertDelivery, AlertRecord
from schemas.errors import InvalidEvent, Reason, loggable
from schemas.identity import IdentityLink, IdentityOverride
from schemas.journey import JourneyUpdate
from schemas.timeline import TimelineEvent
from sinks.clickhouse import resolution
from sinks.clickhouse import rows as r
from sinks.clickhouse.writer import insert_until_done, until_done
from streams import metrics, packs
from streams.agents import crash_on_error, delivery, dlq
from streams.agents.batching import offsets_token
from streams.agents.dlq import row_of
from streams.storehandle import StoreHandle

log = logging.getLogger(__name__)

RowsOf = Callable[[faust.types.Message], Iterable[tuple[Any, ...]]]


@dataclass(frozen=True)
class Target:
    """One table a sink agent writes: its columns and the pure mapper message → rows."""

    table: str
    columns: Sequence[str]
    rows_of: RowsOf


def _timeline(message: faust.types.Message) -> list[tuple]:
    entry = TimelineEvent.from_bytes(message.value)
    return [] if entry.replay else [r.timeline_row(entry)]  # a replay is stored already


def _scores(message: faust.types.Message) -> list[tuple]:
    return [r.journey_rows(JourneyUpdate.model_validate_json(message.value))[0]]


def _stage_changes(message: faust.types.Message) -> list[tuple]:
    return r.journey_rows(JourneyUpdate.model_validate_json(message.value))[1]


def _contact_scores(message: faust.types.Message) -> list[tuple]:
    return r.contact_rows(JourneyUpdate.model_validate_json(message.value))


Resolve = Callable[[Any, list[tuple]], list[tuple[str, str]]]
"""The events a batch's rows make the store re-resolve, in the same batch: ``(store, rows) ->
[(direct account id, event id)]``, blocking and read-only."""


class Resolver:
    """Keeps ``event_resolution`` current for every sink, one refresh at a time.

    A refresh costs a few statements whatever its size, so the sinks' requests are coalesced:
    a request made while a refresh runs joins the next one, which covers every request made in
    the meantime (under load the refreshes grow instead of queueing up). Each sink acks a batch
    only once the refresh that covers its rows ran (:class:`InOrderAcks`); a failing refresh is retried like
    an insert (``until_done``), so the sinks wait (backpressure). Refreshes start at most once
    per ``min_interval_s`` (``JOURNEYS_SINK_FLUSH_SECONDS``): a refresh has a fixed cost of a
    few hundred ms of CPU (measured on a 3,000-event store), which must not grow with the rate
    at which batches arrive."""

    MARGIN_S = 0.05
    """How long before a refresh may start a resolving sink's batch window ends (its insert begins)."""
    WAIT_INSERTS_S = 0.5
    """How long a refresh waits for the resolving sinks' inserts under way when it may start."""

    def __init__(self, handle: StoreHandle, min_interval_s: float = 0.0) -> None:
        self.handle = handle
        self.min_interval_s = min_interval_s
        self.waiting: list[tuple[Resolve, list[tuple], asyncio.Future]] = []
        self.running = False
        self.runs = 0
        self.began = 0.0  # monotonic start of the latest refresh
        self.took = 0.0  # how long the latest refresh took
        self.inserting = 0  # resolving sinks' inserts under way
        self._inserted: asyncio.Event | None = None

    def window(self, longest: float) -> Callable[[Sequence[Any]], float]:
        """A resolving sink's batch window (:func:`delivery.batches`): its batch ends just before the
        next refresh may start — at once when none runs or waits (an idle store refreshes at once),
        else when the latest refresh has both ended (by its last duration) and its interval passed
        — and at most ``longest`` after its first record. Its rows are then stored as a refresh
        starts, instead of waiting up to another interval for the one after it; the refresh waits
        for inserts under way (:meth:`inserts`), at most ``WAIT_INSERTS_S``. Measured at 800
        events/s, 1 s interval, alternated with the fixed window (``bench.pipeline.latency`` after a
        5,000-event warm-up): event → queryable p50 1.94–2.09 → 1.63–1.69 s, p99 3.06–3.17 →
        2.54–2.58 s, with as many refreshes."""

        def wait(_records: Sequence[Any]) -> float:
            if not self.running:
                return 0.0
            start = self.began + max(self.min_interval_s, self.took)
            return min(longest, max(0.0, start - self.MARGIN_S - time.monotonic()))

        return wait

    @contextlib.contextmanager
    def inserts(self) -> Iterator[None]:
        """Around a resolving sink's insert: a refresh about to start waits for it."""
        self.inserting += 1
        try:
            yield
        finally:
            self.inserting -= 1
            if self._inserted is not None:
                self._inserted.set()

    async def _inserts_done(self) -> None:
        deadline = time.monotonic() + self.WAIT_INSERTS_S
        while self.inserting and time.monotonic() < deadline:
            self._inserted = self._inserted or asyncio.Event()
            self._inserted.clear()
            try:
                await asyncio.wait_for(self._inserted.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return

    def request(self, pairs_of: Resolve, rows: list[tuple]) -> asyncio.Future:
        """A refresh covering ``rows`` asked for: the future is done once one ran."""
        done = asyncio.get_running_loop().create_future()
        self.waiting.append((pairs_of, rows, done))
        if not self.running:
            self.running = True
            asyncio.ensure_future(self._run())
        return done

    async def _run(self) -> None:
        try:
            while True:
                await self._inserts_done()
                if not self.waiting:
                    break
                began = self.began = time.monotonic()
                batch, self.waiting = self.waiting, []

                covered: list[int] = []

                def work(batch: list = batch, covered: list = covered) -> None:
                    store = self.handle.get()
                    pairs = resolution.merged(pairs_of(store, rows) for pairs_of, rows, _ in batch)
                    covered[:] = [resolution.refresh(store, pairs)]

                try:
                    await until_done(work, "store: resolve events", on_retry=metrics.on_retry("event_resolution"))
                    metrics.REFRESH_SECONDS.observe(time.monotonic() - began)
                    metrics.REFRESH_EVENTS.observe(covered[0])
                except BaseException as exc:  # cancelled (shutdown): the waiting sinks stop too
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    raise
                self.runs += 1
                self.took = time.monotonic() - began
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)
                # at most one refresh per interval: what arrives meanwhile waits and joins the next
                await asyncio.sleep(max(0.0, began + self.min_interval_s - time.monotonic()))
        finally:
            self.running = False


class InOrderAcks:
    """A sink's batches, acked in the order they were stored, each once the refresh covering its
    rows ran (``refreshed``; ``None``: nothing to wait for). :meth:`add` returns while the batch
    waits, so the sink stores its next batch meanwhile — at most ``in_flight`` batches wait: past
    that, :meth:`add` waits for the oldest.

    Measured (``make bench``'s latency phase at 500 events/s, docs/benchmarks.md): a sink that
    waited for its refresh before taking its next batch let the timeline's and the identity links'
    sinks take the refreshes in turn (at most one per ``JOURNEYS_SINK_FLUSH_SECONDS``), so a
    timeline batch waited for every other one; stored while the refresh waits, each refresh
    covers both sinks' newest batches: event → queryable p50 2.26 → 1.69 s, p99 3.37 → 2.73 s.
    What a crash loses is unchanged: a batch stored but not acked is read again and stored again
    (the same rows; deduplicated), and its events refreshed again."""

    def __init__(self, ack: Callable[[list[Any]], None], in_flight: int = 1) -> None:
        self.ack = ack
        self.in_flight = in_flight
        self.waiting: deque[asyncio.Future] = deque()

    async def add(self, messages: list[Any], refreshed: asyncio.Future | None) -> None:
        if refreshed is None and not self.waiting:
            self.ack(messages)
            return
        before = self.waiting[-1] if self.waiting else None
        self.waiting.append(asyncio.ensure_future(self._ack_after(before, refreshed, messages)))
        while self.waiting and (self.waiting[0].done() or len(self.waiting) > self.in_flight):
            await self.waiting.popleft()  # its error (cancelled: shutting down) ends the sink here

    async def _ack_after(self, before: asyncio.Future | None, refreshed: asyncio.Future | None,
                         messages: list[Any]) -> None:
        if before is not None:
            await before
        if refreshed is not None:
            await asyncio.shield(refreshed)
        self.ack(messages)


async def unreadable(message: Any, table: str, exc: Exception, dead_letters: faust.TopicT | None) -> None:
    """A record the store cannot map to rows (our own output, so a bug): dead-lettered with the
    reason, its original bytes and where it was read — awaited before the batch is acked — so it
    is never skipped silently. Only the dead-letter sink itself has nowhere to send it: it logs."""
    where = f"{message.topic}/{message.partition}@{message.offset}"
    reason = f"the store cannot read this record for {table}: {loggable(exc)}"[:500]  # no input values
    metrics.EVENTS_OUT.labels("store", "dead-lettered").inc()
    if dead_letters is None:
        log.error("%s (%s): not stored", reason, where)
        return
    error = InvalidEvent([Reason("$", reason)], stage="store")
    await dlq.send(dead_letters, message.key, message.value if message.value is not None else b"", "kafka",
                   where, error)


def sink_agent(app: faust.App, topic: faust.TopicT, name: str, targets: Sequence[Target], settings: Any,
               handle: StoreHandle, after: Callable[[list[tuple]], None] | None = None,
               then: Resolve | None = None, dead_letters: faust.TopicT | None = None,
               resolver: Resolver | None = None) -> None:
    """Register an agent that writes every message of ``topic`` to ``targets``; the events
    ``then`` finds in the rows of the first target, once they are stored, are re-resolved by
    ``resolver`` before the ack."""

    src = delivery.source(app, topic, limit=2 * settings.sink_batch_size)

    @app.agent(topic, name=name)
    async def sink(stream: faust.StreamT) -> None:
        delivery.subscribe(stream)
        acks = InOrderAcks(src.ack)
        resolving = then is not None and resolver is not None
        window = resolver.window(settings.sink_flush_seconds) if resolving else settings.sink_flush_seconds
        async for messages in delivery.batches(src, settings.sink_batch_size, window):
            async with crash_on_error(name):  # an error not handled below: exit before the ack, read again
                refreshed: asyncio.Future | None = None
                records = packs.unpacked(messages)  # a pack's records, each with its pack's place
                # a refresh about to start waits for this batch's rows (Resolver.window)
                with resolver.inserts() if resolver is not None and resolving else contextlib.nullcontext():
                    for target in targets:
                        rows: list[tuple] = []
                        for message in records:
                            try:
                                rows.extend(target.rows_of(message))
                            except (ValidationError, orjson.JSONDecodeError, ValueError) as exc:  # our own output: a bug
                                await unreadable(message, target.table, exc, dead_letters)
                        with metrics.sink_insert(target.table, len(records), len(rows)):
                            await insert_until_done(handle.get(), target.table, rows, target.columns,
                                                    dedup_token=offsets_token(target.table, messages),
                                                    on_retry=metrics.on_retry(target.table))
                        if after is not None:
                            after(rows)
                        if then is not None and resolver is not None and target is targets[0] and rows:
                            refreshed = resolver.request(then, rows)
                await acks.add(messages, refreshed)


def register(app: faust.App, topics: Any, settings: Any, handle: StoreHandle) -> None:
    resolver = Resolver(handle, settings.sink_flush_seconds)

    def sink(topic: faust.TopicT, name: str, *targets: Target, after: Callable | None = None,
             then: Resolve | None = None) -> None:
        # what a sink cannot read goes to the dead letters — except from the dead-letter sink itself
        dead_letters = None if topic is topics.inbound_dlq else topics.inbound_dlq
        sink_agent(app, topic, name, targets, settings, handle, after, then, dead_letters, resolver)

    sink(topics.timeline, "store-timeline", Target("timeline", r.TIMELINE_COLUMNS, _timeline),
         then=resolution.timeline_pairs)
    sink(topics.inbound_dlq, "store-dead-letters",
         Target("dead_letters", r.DEAD_LETTER_COLUMNS, lambda m: [row_of(m)]), after=metrics.dead_letters)
    sink(topics.identity_links, "store-identity-links",
         Target("identity_links", r.LINK_COLUMNS, lambda m: [r.link_row(IdentityLink.model_validate_json(m.value))]),
         then=resolution.link_pairs)
    sink(topics.identity_overrides, "store-identity-overrides",
         Target("identity_overrides", r.OVERRIDE_COLUMNS,
                lambda m: [r.override_row(IdentityOverride.model_validate_json(m.value))]),
         then=resolution.override_pairs)
    sink(topics.journey_updates, "store-journeys", Target("account_scores", r.SCORE_COLUMNS, _scores),
         Target("stage_changes", r.STAGE_CHANGE_COLUMNS, _stage_changes),
         Target("contact_scores", r.CONTACT_SCORE_COLUMNS, _contact_scores))
    sink(topics.alerts, "store-alerts",
         Target("alerts", r.ALERT_COLUMNS, lambda m: [r.alert_row(AlertRecord.model_validate_json(m.value))]))
    sink(topics.alert_deliveries, "store-alert-deliveries",
         Target("alert_deliveries", r.ALERT_DELIVERY_COLUMNS,
                lambda m: [r.alert_delivery_row(AlertDelivery.model_validate_json(m.value))]))
