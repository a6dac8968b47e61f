"""The one module that imports clickhouse_connect.

``chdb:///abs/path`` opens the embedded engine (chDB) in this process — only one process may
open a data path, so the store process owns it. ``http(s)://user:pass@host:8123/db`` talks to
a ClickHouse server or cluster. Same DDL and queries for both.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from schemas.errors import ConfigurationError, TerminalSinkError, TransientSinkError
from sinks.clickhouse import engine_malloc

# ClickHouse error codes worth retrying: timeouts, too many parts/queries, network, readonly
# replica, memory limit. Everything else from the server is terminal (bad SQL, auth, schema).
_TRANSIENT_CODES = {159, 164, 202, 209, 210, 241, 242, 252, 285, 319, 425, 999, 1000}

log = logging.getLogger(__name__)


@dataclass
class FaultHooks:
    """Fault injection for the fault-test suite (tests/faults); off unless a field is set.

    Filled from the settings ``fault_kill_after_inserts`` / ``fault_fail_inserts_seconds``:
    ``kill_after_inserts=n`` SIGKILLs this process right after its n-th successful insert
    (before the caller can ack the batch); ``fail_inserts_seconds=s`` makes every insert raise
    :class:`TransientSinkError` for ``s`` seconds after the first successful one.
    """

    kill_after_inserts: int = 0
    fail_inserts_seconds: float = 0.0
    inserts: int = field(default=0, init=False)
    first_insert_at: float | None = field(default=None, init=False)

    def before_insert(self) -> None:
        if self.fail_inserts_seconds and self.first_insert_at is not None:
            left = self.first_insert_at + self.fail_inserts_seconds - time.monotonic()
            if left > 0:
                raise TransientSinkError(f"fault injection: ClickHouse unavailable for another {left:.1f}s")

    def after_insert(self) -> None:
        if self.first_insert_at is None:
            self.first_insert_at = time.monotonic()
            if self.fail_inserts_seconds:
                log.warning("fault injection: ClickHouse unavailable for inserts for the next %.0fs",
                            self.fail_inserts_seconds)
        self.inserts += 1
        if self.kill_after_inserts and self.inserts == self.kill_after_inserts:
            log.warning("fault injection: SIGKILL after insert %d, before the ack", self.inserts)
            os.kill(os.getpid(), signal.SIGKILL)
            os._exit(137)  # not reached


def redact(url: str) -> str:
    """The URL with its password hidden, for logs and errors."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def is_embedded(url: str) -> bool:
    return url.startswith("chdb:")


def classify(exc: BaseException) -> TransientSinkError | TerminalSinkError:
    """Map a client exception to a transient (retry) or terminal (operator) error."""
    if isinstance(exc, OperationalError):
        return TransientSinkError(str(exc))
    if isinstance(exc, DatabaseError):
        text = str(exc)
        for code in _TRANSIENT_CODES:
            if f"Code: {code}." in text or f"code: {code}" in text.lower():
                return TransientSinkError(text)
        return TerminalSinkError(text)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return TransientSinkError(str(exc))
    return TerminalSinkError(f"{type(exc).__name__}: {exc}")


class Store:
    """A thread-safe handle on one ClickHouse database (embedded or server)."""

    def __init__(self, url: str, faults: FaultHooks | None = None) -> None:
        self.url = url
        self.faults = faults
        self._lock = threading.Lock()
        try:
            self._client = _connect(url)
        except (DatabaseError, OperationalError, OSError) as exc:
            raise ConfigurationError(f"cannot open ClickHouse at {redact(url)}: {exc}") from exc

    @property
    def embedded(self) -> bool:
        return is_embedded(self.url)

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        with self._lock:
            return self._client.command(sql, parameters=parameters)

    def query(self, sql: str, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        with self._lock:
            result = self._client.query(sql, parameters=parameters, settings=settings)
        return list(result.column_names), [tuple(r) for r in result.result_rows]

    def raw(self, sql: str, settings: dict[str, Any] | None = None) -> bytes:
        """The engine's bytes for ``sql`` (which names its own FORMAT); for analyst SQL on a server."""
        with self._lock:
            return self._client.raw_query(sql, settings=settings)

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """Insert one block; raise Transient/TerminalSinkError on failure."""
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        if self.faults is not None:
            self.faults.before_insert()
        try:
            with self._lock:
                self._client.insert(table, rows, column_names=list(columns), settings=settings)
        except Exception as exc:  # noqa: BLE001 - mapped to our error tree right here
            raise classify(exc) from exc
        if self.faults is not None:
            self.faults.after_insert()

    def close(self) -> None:
        with self._lock:
            self._client.close()


# ClickHouse's own guard: reads (and settings) only, whatever the SQL says.
READ_ONLY_SETTINGS = {"readonly": 2, "do_not_merge_across_partitions_select_final": 1}
"""``readonly=2``: ClickHouse refuses writes and DDL. ``do_not_merge_across_partitions_select_final``:
``FINAL`` merges rows within a partition only (every version of an event's resolution is in its
event month's partition, migration 13), and reads a partition that settled into one part as it is."""

# ClickHouse error codes of a query stopped by a limit (not a fault of the store): timeout,
# memory, result size.
_LIMIT_CODES = {159: "ran longer than its time limit", 241: "needed more memory than its limit",
                396: "returned more than its result limit"}


class QueryLimitExceeded(RuntimeError):
    """A read stopped by one of its limits (:func:`read_limits`); the message says which."""


def read_limits(seconds: float, memory_mb: int, rows: int = 1_000_000) -> dict[str, Any]:
    """The caps on every API and UI read (``JOURNEYS_API_QUERY_SECONDS`` / ``_MEMORY_MB`` /
    ``_ROWS``): time, memory, and rows in the answer (over it the query fails: an answer is
    never silently cut short)."""
    return {"max_execution_time": seconds, "timeout_overflow_mode": "throw",
            "max_memory_usage": memory_mb * 1024**2,
            "max_result_rows": rows, "result_overflow_mode": "throw"}


def limit_exceeded(exc: Exception) -> str | None:
    """What limit stopped a query, from the engine's error text (None: not a limit)."""
    text = str(exc)
    for code, what in _LIMIT_CODES.items():
        if f"Code: {code}." in text or f"code: {code}" in text.lower():
            return what
    return None


class ReadOnlyStore:
    """What the API, the web UI and the analyst CLI get: ``query`` only, every statement run with
    ``readonly=2`` so ClickHouse itself refuses writes and DDL. With a server, give it a read-only
    user too (``JOURNEYS_READER_CLICKHOUSE_URL``; ``journeys db grants`` prints its role), which
    also keeps dead-letter payloads (PII) out of reach."""

    def __init__(self, store: Store, limits: dict[str, Any] | None = None) -> None:
        self._store = store
        self._settings = {**READ_ONLY_SETTINGS, **(limits or {})}

    @property
    def url(self) -> str:
        return self._store.url

    @property
    def embedded(self) -> bool:
        return self._store.embedded

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        try:
            return self._store.query(sql, parameters, settings=self._settings)
        except Exception as exc:  # noqa: BLE001 - only a limit is re-raised as our own error
            what = limit_exceeded(exc)
            if what is None:
                raise
            raise QueryLimitExceeded(
                f"the query {what} (JOURNEYS_API_QUERY_SECONDS={self._settings.get('max_execution_time', '-')}, "
                f"JOURNEYS_API_QUERY_MEMORY_MB="
                f"{int(self._settings.get('max_memory_usage', 0)) // 1024**2 or '-'}, "
                f"JOURNEYS_API_QUERY_ROWS={self._settings.get('max_result_rows', '-')}): narrow it "
                "(an account, a shorter period, a smaller limit)") from exc


def _connect(url: str) -> Any:
    if is_embedded(url):
        engine_malloc.configure()  # before chDB is loaded
        path = url[len("chdb://") :]
        if path.startswith("/"):
            Path(path).mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=url)
    if url.startswith(("http://", "https://")):
        return clickhouse_connect.get_client(dsn=url)
    raise ConfigurationError(
        f"JOURNEYS_CLICKHOUSE_URL must start with chdb://, http:// or https://, got {redact(url)!r}"
    )
