"""Batched inserts that are retried until they succeed — never acknowledged as done on failure.

The caller (a Faust agent) awaits :func:`insert_until_done` before its batch is acked, so
while ClickHouse is down consumption pauses (backpressure) and nothing is committed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Sequence

from schemas.errors import TerminalSinkError, TransientSinkError
from sinks.clickhouse.client import Store, classify

log = logging.getLogger(__name__)


async def insert_until_done(
    store: Store,
    table: str,
    rows: Sequence[Sequence[Any]],
    columns: Sequence[str],
    *,
    dedup_token: str,
    initial_backoff: float = 0.2,
    max_backoff: float = 10.0,
    on_retry: Callable[[BaseException], None] | None = None,
) -> int:
    """Insert ``rows`` as one block; on failure retry with exponential backoff, forever.

    Returns the number of attempts. The dedup token makes a retried block a no-op if the
    failed attempt did land.
    """
    if not rows:
        return 0
    return await until_done(lambda: store.insert(table, rows, columns, dedup_token=dedup_token),
                            f"insert into {table}", initial_backoff=initial_backoff, max_backoff=max_backoff,
                            on_retry=on_retry)


async def until_done(
    call: Callable[[], Any],
    what: str,
    *,
    initial_backoff: float = 0.2,
    max_backoff: float = 10.0,
    on_retry: Callable[[BaseException], None] | None = None,
) -> int:
    """Run ``call`` (a blocking store operation) off the event loop until it succeeds; on
    failure retry with exponential backoff, forever. Returns the number of attempts. ``call``
    must be idempotent (a dedup token, or a statement whose re-run writes the same answer)."""
    attempt, backoff = 0, initial_backoff
    while True:
        attempt += 1
        try:
            await asyncio.to_thread(call)
            return attempt
        except TransientSinkError as exc:
            log.warning("%s failed (attempt %d, transient), retrying in %.1fs: %s", what, attempt, backoff, exc)
            error: BaseException = exc
        except TerminalSinkError as exc:
            log.error("%s failed (attempt %d, needs an operator: check schema and "
                      "credentials; run `journeys doctor`), retrying in %.1fs: %s", what, attempt, backoff, exc)
            error = exc
        except Exception as exc:  # noqa: BLE001 - a statement's error: mapped to our tree, retried the same
            error = classify(exc)
            log.warning("%s failed (attempt %d: %s), retrying in %.1fs: %s", what, attempt,
                        type(error).__name__, backoff, exc)
        if on_retry is not None:
            on_retry(error)
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)
