"""Opens the ClickHouse store lazily (once) in the process that holds the 'store' role."""

from __future__ import annotations

import logging
import threading

from sinks.clickhouse import ddl
from sinks.clickhouse.client import FaultHooks, Store, redact

log = logging.getLogger(__name__)


class StoreHandle:
    def __init__(self, url: str, faults: FaultHooks | None = None) -> None:
        self.url = url
        self.faults = faults  # fault injection (tests/faults only)
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        """The open store, migrated to the latest schema (opened on first use)."""
        with self._lock:
            if self._store is None:
                store = Store(self.url, faults=self.faults)
                applied = ddl.migrate(store)
                if applied:
                    log.info("store %s migrated: %s", redact(self.url), [m.version for m in applied])
                self._store = store
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
