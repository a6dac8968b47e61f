"""Hand each fetched record to its stream without four asyncio tasks per record (issue #17).

Faust's fetch loop (``Consumer._drain_messages``, faust-streaming 0.15) delivers every record
with ``await self.wait_first(callback(message), self.suspend_flow.wait())``: ``wait_first``
wraps the callback, the flow's suspension and the consumer's stopped and crashed events in four
tasks and an ``asyncio.wait`` — per record, although the callback (decode the record, put it in
its stream's buffer) almost never has to wait. In a live drain that was 10% of the event loop's
samples (py-spy, ``python -m bench.drain --profile``), more than the journey rules' replays.

:func:`wait_first` (installed on Faust's ``Consumer`` by :func:`install`) runs the callback's
first step inline. If it finishes there — its buffer had room — it is done, as if its task had
won the race. If it has to wait (a full buffer, the producer's buffer over its mark), the rest of
it goes to Faust's own ``wait_first`` with the flow's suspension, exactly as before. While the
flow is suspended (a rebalance), or the consumer stops, every record takes Faust's own path.
Only the two-argument form the fetch loop uses takes the fast path: other callers (one awaitable)
are Faust's as they were.

**Not installed** (``streams/app.py``): with it, ``tests/integration/test_pipeline.py -k
restart_mid_stream`` (kill -9, restart with a backlog) stalls now and then — the restarted worker
is ready, then delivers nothing more and does not exit. What the investigation of 2026-12-06 saw
(worktree ``fdstall``, the test run one at a time; asyncio task dumps of the stalled worker —
in runs 30 and 42 its consumer thread's loop too — and py-spy):

* Install on: 4 stalls in 42 runs (runs 4, 14 and 30 at load 6-15 from other jobs, run 42 at
  load 2). Install off (the same tree otherwise): 12 of 12 passed (load 10 falling to 1.4).
* In every stall the fetcher task is **not** in ``wait_first`` and no task of this module's slow
  path (``_rest``) exists: it waits inside ``_drain_messages`` → ack_guard's ``_guarded_getmany``
  → Faust's ``Consumer.getmany`` for minutes (same record, same ``num_since_yield``, the inline
  counter frozen, in dumps 30 s apart). Runs 30 and 42 reached further: ``_wait_next_records`` →
  ``AIOKafkaConsumerThread.getmany`` → mode's ``QueueServiceThread.call_thread``, awaiting the
  promise of the ``_fetch_records`` call handed to the consumer thread (in run 42 the same two
  ``async_generator_asend`` objects in three dumps over 60 s: one call, not a polling loop). In
  the consumer thread's loop the method queue is empty; in run 30 both ``MethodQueueWorker`` tasks
  wait in ``Queue.get()``; in run 42 one of them is in ``_fetch_records`` → aiokafka's
  ``Fetcher.fetched_records`` → ``asyncio.wait`` on a fetch waiter (1 s timeout; a different
  waiter in each dump), the other in ``Queue.get()``. Why the fetcher's promise is not resolved
  was not found by the deadline. Everything else is idle and healthy: consumer ``flow_active`` true,
  ``suspend_flow`` unset, ``app.flow_control`` active, no partition buffered or paused besides
  the changelogs, every stream buffer empty with its agent in ``get()``; no rebalance logged.
* Stalled runs 4 and 14 had logged ack_guard's fetch-continuity re-read (``fetch of <topic>[p]
  jumped from X to Y: reading from X again``, B10) in the second before "Worker ready", while
  recovery's ``perform_seek`` was seeking the uncommitted partitions to their start (B11) through
  the same consumer thread; stalled runs 30 and 42 had not, and run 26, which passed, had: not the
  cause on its own.
* So the suspected mechanism — a wake-up lost by the half-run callback (``_resume``) racing the
  flow's suspension — is not what was seen. The wait that never ends is a main-loop ↔
  consumer-thread call of the fetch path, which this module reaches only by changing the fetch
  loop's timing (records delivered inline; the loop yields once per 100 records instead of once
  per record). Next step: log each ``call_thread`` promise's life (queued, run, resolved, by
  which call) and what ``fetched_records`` returns in a stalled worker.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Coroutine, Generator
from typing import Any

from faust.transport.consumer import Consumer
from mode.services import Service, WaitResults

_original_wait_first = Service.wait_first
inline = 0  # records delivered inline in this process (for tests)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], pending: Any) -> Generator[Any, Any, Any]:
    """Go on running ``coro``, which stopped at its first suspension yielding ``pending``, in the
    task that awaits this (results, exceptions and cancellation are passed through to it)."""
    while True:
        try:
            value = yield pending
        except BaseException as exc:  # noqa: BLE001 - thrown into the callback, as its own task would
            try:
                pending = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                pending = coro.send(value)
            except StopIteration as stop:
                return stop.value


async def _rest(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    return await _resume(coro, pending)


async def wait_first(self: Any, *coros: Any, timeout: Any = None) -> WaitResults:
    """``Service.wait_first``, with the callback's first step run inline (see the module)."""
    if (len(coros) != 2 or timeout is not None or not inspect.iscoroutine(coros[0])
            or self.suspend_flow.is_set() or self._stopped.is_set() or self._crashed.is_set()):
        return await _original_wait_first(self, *coros, timeout=timeout)
    callback, other = coros
    try:
        pending = callback.send(None)
    except StopIteration as stop:  # delivered without waiting: the callback won
        if inspect.iscoroutine(other):
            other.close()  # never started: nothing to wait for
        global inline
        inline += 1
        return WaitResults([callback], [stop.value], False)
    except BaseException:  # the callback failed at once: raised here, as Faust's wait would
        if inspect.iscoroutine(other):
            other.close()
        raise
    # it has to wait: the rest of it races the flow's suspension, as in Faust
    return await _original_wait_first(self, _rest(callback, pending), other)


def install() -> None:
    """Patch Faust's consumer once per process (idempotent)."""
    if Consumer.wait_first is not wait_first:
        Consumer.wait_first = wait_first  # type: ignore[method-assign]

