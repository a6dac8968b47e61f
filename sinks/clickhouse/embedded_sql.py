"""Analysts' SQL on the embedded store: a chDB session of its own, locked down by ClickHouse.

The one module besides :mod:`sinks.clickhouse.client` that talks to the engine directly
(``chdb``, not ``clickhouse_connect``): the SQL endpoint needs the engine's bytes in any
ClickHouse output format, query parameters passed through as the HTTP interface takes them, and
a session whose settings no query can change — none of which the driver's client offers.

chDB lets one process hold several connections to the engine it hosts, each a session of its
own. :class:`AnalystSession` opens one next to the store's writer connection (so an analyst's
query never waits for, nor holds, the writer's lock), sets the caps, then ``readonly = 1``:
from then on ClickHouse itself refuses writes, DDL, ``SET`` and ``SETTINGS`` clauses, and most
table functions in that session, whatever the SQL says. :mod:`sinks.clickhouse.sql_guard`
covers the rest (one statement of a reading kind, no dead-letter payloads).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from sinks.clickhouse import engine_malloc

engine_malloc.configure()  # before chDB is loaded: its allocator reads its options once

import chdb  # noqa: E402

from sinks.clickhouse import sql_guard  # noqa: E402
from sinks.clickhouse.sql_guard import Refused  # noqa: E402


@dataclass(frozen=True)
class Limits:
    """Caps on every analyst query (ClickHouse settings, fixed for the session)."""

    max_execution_seconds: float = 60.0
    max_result_rows: int = 10_000_000
    max_result_bytes: int = 2 * 1024**3
    max_memory_bytes: int = 2 * 1024**3

    def settings(self) -> dict[str, Any]:
        return {
            "max_execution_time": self.max_execution_seconds,
            "max_result_rows": self.max_result_rows,
            "max_result_bytes": self.max_result_bytes,
            "result_overflow_mode": "throw",  # a capped result is an error, never a silent truncation
            "max_memory_usage": self.max_memory_bytes,
            # FINAL merges within a partition only: event_resolution's versions share their month's
            # partition (migration 13), and settled months are read as they are
            "do_not_merge_across_partitions_select_final": 1,
        }


@dataclass(frozen=True)
class Answer:
    """The engine's output of one statement, in ``fmt``."""

    body: bytes
    fmt: str
    rows_read: int = 0
    bytes_read: int = 0
    elapsed_s: float = 0.0


class EngineError(RuntimeError):
    """ClickHouse refused or failed the statement; ``code`` is its error code (0 if unknown)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


def error_of(exc: Exception) -> EngineError:
    text = str(exc)
    start = text.find("Code: ")
    text = text[start:] if start > 0 else text
    code = int(text[6:text.find(".", 6)]) if text.startswith("Code: ") and text[6:text.find(".", 6)].isdigit() else 0
    return EngineError(text.strip(), code)


class AnalystSession:
    """A locked-down session on the embedded store at ``path`` (the store must be open in
    this process, or openable: chDB admits one data path per process). Thread-safe; one
    statement at a time."""

    def __init__(self, path: str, limits: Limits = Limits(), database: str = "default") -> None:
        self.limits = limits
        self.database = sql_guard.identifier(database, "database")
        self._lock = threading.Lock()
        self._conn = chdb.connect(path)
        for name, value in limits.settings().items():
            self._conn.query(f"SET {name} = {sql_guard.literal(str(value))}")
        self._conn.query("SET readonly = 1")  # last: from here on no statement can change a setting
        self._current_db = "default"

    def _text(self, sql: str, params: dict[str, str]) -> str:
        try:
            return bytes(self._conn.query(sql, "TabSeparatedRaw", params=params).bytes()).decode()
        except Exception as exc:  # noqa: BLE001 - chdb raises RuntimeError with ClickHouse's message
            self._drain()
            raise error_of(exc) from exc

    def run(self, sql: str, default_format: str = "TabSeparated", database: str | None = None,
            params: dict[str, str] | None = None) -> Answer:
        """Check ``sql`` (:func:`sql_guard.parse`) and run it; its own FORMAT clause wins over
        ``default_format``. Raises :class:`Refused` or :class:`EngineError`."""
        params = params or {}
        with self._lock:
            self._use(database or self.database)
            statement = sql_guard.parse(lambda text: self._text(text, params), sql)
            fmt = sql_guard.identifier(statement.fmt or default_format, "format")
            began = time.monotonic()
            try:
                result = self._conn.query(f"{statement.text}\nFORMAT {fmt}", fmt, params=params)
            except Exception as exc:  # noqa: BLE001 - as above
                self._drain()
                raise error_of(exc) from exc
            return Answer(bytes(result.bytes()), fmt, _int(result, "rows_read"), _int(result, "bytes_read"),
                          time.monotonic() - began)

    def _drain(self) -> None:
        """After a query the engine stopped (a result cap, a timeout), chDB hands the rest of its
        result to the *next* query on the connection (seen with chdb 3: a TabSeparated answer
        came back as the failed query's Native bytes). One throwaway query takes it."""
        try:
            self._conn.query("SELECT 1", "TabSeparatedRaw")
        except Exception:  # noqa: BLE001 - only the stale result matters here
            pass

    def _use(self, database: str) -> None:
        database = sql_guard.identifier(database, "database")
        if database != self._current_db:
            self._text(f"USE {database}", {})
            self._current_db = database

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _int(result: Any, name: str) -> int:
    try:
        return int(getattr(result, name)())
    except Exception:  # noqa: BLE001 - statistics are optional
        return 0


__all__ = ["AnalystSession", "Answer", "EngineError", "Limits", "Refused"]
