"""Helpers for agents that take batches: an adaptive batch window, and a dedup token naming
exactly the offsets in a batch."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Callable, Sequence

import faust
from mode.utils.futures import notify


def next_window(newest_age_s: float, light_s: float, behind_s: float) -> float:
    """How long the next batch may wait to fill: ``light_s`` while the stage keeps up, and
    ``behind_s`` once it is behind — the newest record of the last batch had already waited
    longer than ``behind_s`` in Kafka when the batch was taken.

    Every batch costs the stage a fixed amount on top of its records (each key's state read
    and written once, its changelog record, the sends), so a stage that is behind gains most
    from big batches, while one that keeps up gains nothing and each stage's wait adds to the
    latency of every event. Measured with ``python -m bench.drain --events 6000 --split`` on
    2 cores: 0.02 s windows drained 102–146 events/s (journey batches of 5 records), 0.25 s
    windows 284–313 events/s (batches of ~200), at 8.9 vs 4.8 ms of CPU per event.
    """
    return behind_s if newest_age_s > behind_s else light_s


def newest_age(messages: Sequence[Any], now: float | None = None) -> float:
    """Seconds the newest of ``messages`` (Faust messages) has waited since it was written (its
    Kafka timestamp); 0 for an empty batch or records without a timestamp."""
    stamps = [m.timestamp for m in messages if m.timestamp]
    if not stamps:
        return 0.0
    return max(0.0, (time.time() if now is None else now) - max(stamps))


def take_events(stream: Any, max_: int, window: Callable[[], float]) -> AsyncIterator[list[faust.EventT]]:
    """Faust's ``Stream.take_events`` (faust-streaming 0.15.3), with the wait for a batch read
    from ``window()`` before each batch instead of fixed when the stream starts. As there, a
    batch is acked when the next one is asked for — and also when the consumer of this
    generator raises (the acks are in a ``finally``): run the loop body under
    :func:`streams.agents.crash_on_error`. Registered with the stream like Faust's own, so
    the stream closes it when it stops."""
    agen = _take_events(stream, max_, window)
    active = getattr(stream, "_active_agens", None)
    if active is not None:
        active.add(agen)
    return agen


async def _take_events(stream: Any, max_: int, window: Callable[[], float]) -> AsyncIterator[list[faust.EventT]]:
    buffer: list[Any] = []
    events: list[faust.EventT] = []
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    buffer_consuming: asyncio.Future | None = None
    stream_enable_acks: bool = stream.enable_acks
    channel_it = stream.channel.__aiter__()

    async def add_to_buffer(value: Any) -> Any:
        try:
            nonlocal buffer_consuming
            if buffer_consuming is not None:  # the batch is being handled: wait for it
                try:
                    await buffer_consuming
                finally:
                    buffer_consuming = None
            buffer.append(value)
            event = stream.current_event
            if event is None:
                raise RuntimeError("Take buffer found current_event is None")
            events.append(event)
            if len(buffer) >= max_:  # full: never more than max_ in a batch
                buffer_full.set()
                buffer_consumed.clear()
                await stream.wait(buffer_consumed)
        except asyncio.CancelledError:  # pragma: no cover
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # this generator acks, once a batch is handled
    stream.add_processor(add_to_buffer)
    stream._enable_passive(channel_it)
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(buffer_full, timeout=window())
            if buffer:
                buffer_consuming = stream.loop.create_future()
                try:
                    yield list(events)
                finally:
                    buffer.clear()
                    for event in events:
                        await stream.ack(event)
                    events.clear()
                    notify(buffer_consuming)
                    buffer_full.clear()
                    buffer_consumed.set()
    finally:
        stream.enable_acks = stream_enable_acks
        stream._processors.remove(add_to_buffer)


def offsets_token(table: str, messages: Sequence[Any]) -> str:
    """``table:topic/p:first-last,...`` of a batch of Faust messages — a retried identical batch
    carries the same token."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for msg in messages:
        span = ranges.setdefault((msg.topic, msg.partition), [msg.offset, msg.offset])
        span[0] = min(span[0], msg.offset)
        span[1] = max(span[1], msg.offset)
    parts = ",".join(f"{tp[0]}/{tp[1]}:{a}-{b}" for tp, (a, b) in sorted(ranges.items()))
    return f"{table}:{parts}"
