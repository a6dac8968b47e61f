"""Two fixed waits of Faust's start-up, made as short as the tracker needs (issue #17: restart to
caught up ≤ 10 s).

Measured on a restart with a 5,000-event backlog (``make bench``'s restart, worker log at
``--loglevel debug``), faust-streaming 0.15.3:

* **The table manager sleeps 1.0 s before it starts** (``TableManager.on_start``), so that
  agents started with the app can still declare tables. Every table of the tracker is declared
  when the app is built (``streams.agents.*.register`` → :func:`streams.tables.table`), before
  the worker starts, so the second is pure delay — and it is on the critical path of both
  processes: "Waiting for tables to be registered" came exactly 1.0 s before the tables opened.
  :class:`PromptTableManager` starts at once; a table declared later still fails as before
  (``Too late to add tables at this point``, once the first rebalance began).
* **The fetcher polls for an assignment once a second** (``Consumer._wait_next_records``
  sleeps 1 s while the consumer has no active partition). After the first assignment and the
  table recovery, the first fetch waited for the end of that second. :func:`install` makes
  the poll 0.05 s; it only runs while the consumer has no active partition (start-up, between
  a revocation and the next assignment), so it costs nothing in steady state.
* **Every table's store runs a full garbage collection on every rebalance**
  (``rocksdb.Store.revoke_partitions`` ends in ``gc.collect()``, to let go of the databases it
  closed), even when it revoked nothing — as at the first assignment. With seven tables that was
  eight full collections of ≈ 70 ms in a 20,000-event drain (:mod:`streams.gc_tuning`).
  :func:`install` keeps the collection only when a database was closed.
"""

from __future__ import annotations

import gc
from typing import Any, Optional, Set, Tuple

import faust
from faust.stores import rocksdb
from faust.tables import TableManager
from faust.transport.consumer import Consumer, RecordMap
from faust.types import TP

ASSIGNMENT_POLL_S = 0.05
"""How often the fetcher looks for an active partition while it has none (Faust: 1 s)."""


class PromptTableManager(TableManager):
    """Faust's table manager without the 1 s sleep at start (see the module)."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


async def _wait_next_records(self: Any, timeout: float) -> Tuple[Optional[RecordMap], Optional[Set[TP]]]:
    """Faust's ``Consumer._wait_next_records`` (faust-streaming 0.15.3) with the poll for an
    assignment at :data:`ASSIGNMENT_POLL_S`."""
    if not self.flow_active:
        await self.wait(self.can_resume_flow)
    try:
        self.not_waiting_next_records.set()
        active_partitions: Optional[Set[TP]]
        if self.app.client_only:
            active_partitions = None
        else:
            active_partitions = self._get_active_partitions()
        records: RecordMap = {}
        if self.app.client_only or active_partitions:
            records = await self._getmany(active_partitions=active_partitions, timeout=timeout)
        else:
            await self.sleep(ASSIGNMENT_POLL_S)
        return records, active_partitions
    finally:
        self.not_waiting_next_records.set()


def _revoke_partitions(self: Any, table: Any, tps: Set[TP]) -> None:
    """Faust's ``rocksdb.Store.revoke_partitions`` (faust-streaming 0.15.3), collecting garbage
    only when it closed a database."""
    closed = False
    for tp in tps:
        if tp.topic in table.changelog_topic.topics:
            db = self._dbs.pop(tp.partition, None)
            if db is not None:
                self.logger.info(f"closing db {tp.topic} partition {tp.partition}")
                closed = True
    if closed:
        gc.collect()


def install() -> None:
    """Patch the fetcher's poll and the stores' revocation once per process (idempotent); the
    table manager is passed to the app (``faust.App(..., TableManager=PromptTableManager)``)."""
    if faust.__version__ != "0.15.3":  # written against this version's loop; another keeps Faust's own
        return
    if Consumer._wait_next_records is not _wait_next_records:
        Consumer._wait_next_records = _wait_next_records  # type: ignore[method-assign]
    if rocksdb.Store.revoke_partitions is not _revoke_partitions:
        rocksdb.Store.revoke_partitions = _revoke_partitions  # type: ignore[method-assign]
