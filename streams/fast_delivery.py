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
