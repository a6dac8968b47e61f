"""Batched inserts that are retried until they succeed — never acknowledged as done on failure.

The caller (a Faust agent) awaits :func:`insert_until_done` before its batch is acked, so
while ClickHouse is down consumption pauses (backpressure) and nothing is committed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Sequence

from schemas.errors import TerminalSinkError, TransientSinkError
from sinks.clickhouse.client import Store

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
    attempt, backoff = 0, initial_backoff
    while True:
        attempt += 1
        try:
            await asyncio.to_thread(store.insert, table, rows, columns, dedup_token=dedup_token)
            return attempt
        except TransientSinkError as exc:
            log.warning("insert into %s failed (attempt %d, transient), retrying in %.1fs: %s",
                        table, attempt, backoff, exc)
            error: BaseException = exc
        except TerminalSinkError as exc:
            log.error("insert into %s failed (attempt %d, needs an operator: check schema and "
                      "credentials; run `journeys doctor`), retrying in %.1fs: %s",
                      table, attempt, backoff, exc)
            error = exc
        if on_retry is not None:
            on_retry(error)
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)
