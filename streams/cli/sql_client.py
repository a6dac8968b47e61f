"""Where `journeys sql` and `journeys export` send a statement, and how the bytes come back.

- Embedded store (chDB) with a store process running: its SQL endpoint
  (``JOURNEYS_SQL__URL``, default ``http://127.0.0.1:<JOURNEYS_SQL__PORT>``), with the API token.
- Embedded store, no store process: the store opened in this process, the same locked-down
  analyst session (sinks/clickhouse/embedded_sql.py).
- ClickHouse server: straight to the server through the reader user if one is set
  (``JOURNEYS_READER_CLICKHOUSE_URL``), with ``readonly=2`` and the ``JOURNEYS_SQL__*`` caps on
  the query, after the same checks (sinks/clickhouse/sql_guard.py) run by the server.

Every path yields the engine's own bytes in the format asked for, in chunks.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterator

import click

from schemas.errors import ConfigurationError
from sinks.clickhouse import sql_guard
from sinks.clickhouse.client import Store, is_embedded
from sinks.clickhouse.embedded_sql import AnalystSession, EngineError, Refused
from streams.settings import Settings
from streams.storehandle import StoreHandle
from streams.web.sql_endpoint import limits_of

CHUNK = 1024 * 1024


@dataclass
class Result:
    """A statement's output: its format, its size when known, and its bytes in chunks."""

    fmt: str
    length: int | None
    chunks: Iterator[bytes]


def run(settings: Settings, sql: str, fmt: str) -> Result:
    """``sql`` through the right path (module doc); raises :class:`click.ClickException` on refusal."""
    try:
        if is_embedded(settings.store_url):
            result = _endpoint(settings, sql, fmt)
            if result is not None:
                return result
            try:
                return _in_process(settings, sql, fmt)
            except ConfigurationError as exc:
                raise click.ClickException(
                    f"{exc}\nIf a store process holds the store, its SQL endpoint did not answer at "
                    f"{settings.sql.endpoint()} (JOURNEYS_SQL__PORT / JOURNEYS_SQL__URL)") from exc
        return _server(settings, sql, fmt)
    except (Refused, EngineError) as exc:
        raise click.ClickException(str(exc)) from exc


def _endpoint(settings: Settings, sql: str, fmt: str) -> Result | None:
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if settings.api_token is not None:
        headers["X-ClickHouse-Key"] = settings.api_token.get_secret_value()
    url = f"{settings.sql.endpoint()}/?default_format={fmt}"
    request = urllib.request.Request(url, data=sql.encode(), headers=headers, method="POST")
    try:
        response = urllib.request.urlopen(request, timeout=settings.sql.max_execution_seconds + 30)
    except urllib.error.HTTPError as exc:
        raise click.ClickException(exc.read().decode(errors="replace").strip()) from exc
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None  # no store process: open the store here
    length = response.headers.get("Content-Length")

    def chunks() -> Iterator[bytes]:
        with response:
            while block := response.read(CHUNK):
                yield block

    return Result(response.headers.get("X-ClickHouse-Format", fmt), int(length) if length else None, chunks())


def _in_process(settings: Settings, sql: str, fmt: str) -> Result:
    handle = StoreHandle(settings.store_url)
    try:
        handle.get()  # migrated (an embedded store opened for the first time gets its schema)
        session = AnalystSession(settings.store_url[len("chdb://"):], limits_of(settings))
        try:
            answer = session.run(sql, fmt)
        finally:
            session.close()
    finally:
        handle.close()
    return Result(answer.fmt, len(answer.body), _split(answer.body))


def _server(settings: Settings, sql: str, fmt: str) -> Result:
    store = Store(settings.reader_url or settings.store_url)
    limits = limits_of(settings).settings()
    caps = {"readonly": 2, **limits}
    try:
        def text(statement: str) -> str:
            if not statement.rstrip().upper().endswith("FORMAT TABSEPARATEDRAW"):
                statement += "\nFORMAT TabSeparatedRaw"
            return store.raw(statement, settings={"readonly": 2}).decode()

        statement = sql_guard.parse(_engine_errors(text), sql)
        out = sql_guard.identifier(statement.fmt or fmt, "format")
        body = _engine_errors(lambda s: store.raw(s, settings=caps))(f"{statement.text}\nFORMAT {out}")
    finally:
        store.close()
    return Result(out, len(body), _split(body))


def _engine_errors(fn: Callable) -> Callable:
    def wrapped(statement: str):  # type: ignore[no-untyped-def]
        try:
            return fn(statement)
        except (Refused, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the driver's error, shown as ClickHouse gave it
            raise EngineError(str(exc)) from exc

    return wrapped


def _split(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start:start + CHUNK]
