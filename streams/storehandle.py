"""Opens the ClickHouse store lazily (once) in the process that holds the 'store' role."""

from __future__ import annotations

import logging
import threading

from sinks.clickhouse import ddl, retention
from sinks.clickhouse.client import FaultHooks, ReadOnlyStore, Store, redact

log = logging.getLogger(__name__)


class StoreHandle:
    def __init__(self, url: str, faults: FaultHooks | None = None, reader_url: str | None = None,
                 channels: list[tuple] | None = None, retention_days: tuple[int, int] | None = None,
                 read_limits: dict | None = None) -> None:
        self.url = url
        self.read_limits = read_limits  # caps on every read (client.read_limits)
        self.retention_days = retention_days  # (events, dead letters): the store process sets the TTLs
        self.channels = channels or []  # ddl.channel_rows of the definitions, written on open
        self.faults = faults  # fault injection (tests/faults only)
        self.reader_url = reader_url  # a read-only ClickHouse user for the API and CLI (server only)
        self._store: Store | None = None
        self._reader_store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        """The open store, migrated to the latest schema (opened on first use)."""
        with self._lock:
            if self._store is None:
                store = Store(self.url, faults=self.faults)
                applied = ddl.migrate(store)
                if applied:
                    log.info("store %s migrated: %s", redact(self.url), [m.version for m in applied])
                if self.retention_days is not None:
                    self._retain(store, *self.retention_days)
                if self.channels:  # the analyst views read each channel's team from the definitions
                    store.insert("channel_definitions", self.channels, ddl.CHANNEL_COLUMNS)
                self._store = store
            return self._store

    def set_channels(self, channels: list[tuple]) -> None:
        """New definitions: their channel map for the analyst views (written now if the store is
        open, else when it opens). Blocking: call it off the event loop."""
        with self._lock:
            self.channels = channels
            store = self._store
        if store is not None:
            store.insert("channel_definitions", channels, ddl.CHANNEL_COLUMNS)

    @staticmethod
    def _retain(store: Store, events_days: int, dead_letters_days: int) -> None:
        try:
            for statement in retention.apply(store, events_days, dead_letters_days):
                log.info("retention: %s", statement)
        except ValueError as exc:  # a cluster: the operator sets it (the store still works)
            log.error("%s", exc)

    def reader(self) -> ReadOnlyStore:
        """The store for analyst reads: read-only queries, through the reader user if one is set
        (never migrated from here: a reader cannot). On the embedded store, through a chDB
        connection of its own (a session of its own, opened after the writer's has migrated):
        a write the read-only guard refuses would otherwise leave the writer's session read-only
        for good (ClickHouse error 164 on every later insert), and reads would wait for the
        writer's lock."""
        if not self.reader_url and not self.get().embedded:
            return ReadOnlyStore(self.get(), self.read_limits)
        if not self.reader_url:
            self.get()  # the schema exists before the reader's session opens
        with self._lock:
            if self._reader_store is None:
                self._reader_store = Store(self.reader_url or self.url)
            return ReadOnlyStore(self._reader_store, self.read_limits)

    def close(self) -> None:
        with self._lock:
            if self._reader_store is not None:
                self._reader_store.close()
                self._reader_store = None
            if self._store is not None:
                self._store.close()
                self._store = None
