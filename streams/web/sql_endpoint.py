"""The analysts' SQL endpoint: enough of the ClickHouse HTTP interface for standard clients.

Served by the store process on its own port (``JOURNEYS_SQL__PORT``, loopback by default) when
the store is embedded (chDB): with a ClickHouse server, analysts connect to the server itself.
What it speaks (ClickHouse's HTTP interface, https://clickhouse.com/docs/interfaces/http):

- ``GET /ping`` and ``GET /`` without a query: ``Ok.``;
- ``GET|POST /`` with the SQL in the ``query`` parameter and/or the body (joined with a newline,
  as ClickHouse does), or in a ``multipart/form-data`` field ``query``; ``param_<name>`` values
  for ``{name:Type}`` placeholders; ``database``; ``default_format`` (else the statement's own
  FORMAT clause, else TabSeparated): any output format the engine has (Native, RowBinary,
  JSON*, CSV*, TSV*, Parquet, Arrow …), as the engine's own bytes;
- the response headers clients read: ``X-ClickHouse-Format``, ``-Timezone``, ``-Query-Id``,
  ``-Summary``; errors as ClickHouse sends them (``Code: N. DB::Exception: …`` with
  ``X-ClickHouse-Exception-Code``).

Every statement runs in the locked-down analyst session (sinks/clickhouse/embedded_sql.py:
readonly, the caps of ``JOURNEYS_SQL__*``, no dead-letter payloads). Other URL parameters
(settings such as ``max_execution_time``, ``session_id``, ``wait_end_of_query``, compression)
are accepted and ignored: the session's limits are the endpoint's, not the client's.

Authentication, when ``JOURNEYS_API_TOKEN`` is set: the token as the password (Basic auth, any
user name; ``X-ClickHouse-Key``; the ``password`` parameter) or as a bearer token.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import uuid
from typing import Any

import faust
from aiohttp import web
from mode import Service

from schemas.errors import ConfigurationError
from sinks.clickhouse.embedded_sql import AnalystSession, EngineError, Limits, Refused
from streams.exposure import loopback, weak_secret
from streams.settings import Settings
from streams.storehandle import StoreHandle

log = logging.getLogger(__name__)

MAX_QUERY_BYTES = 1024 * 1024
STATUS = {164: 403, 497: 403, 516: 401, 62: 400, 60: 404, 81: 404, 47: 400, 159: 504, 396: 413, 241: 507}
NAMES = {164: "READONLY", 497: "ACCESS_DENIED", 516: "AUTHENTICATION_FAILED", 62: "SYNTAX_ERROR"}
TEXT = {"TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "TabSeparatedWithNames", "TSVWithNames",
        "TabSeparatedWithNamesAndTypes", "TSVWithNamesAndTypes", "Pretty", "PrettyCompact", "Vertical", "Markdown"}


def content_type(fmt: str) -> str:
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt.startswith("CSV"):
        return "text/csv; charset=UTF-8"
    if fmt in TEXT or fmt.startswith(("Pretty", "Template", "Values", "XML", "Markdown")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


def authorized(request: web.Request, token: str | None) -> bool:
    """The token as Basic password, X-ClickHouse-Key, ``password`` parameter or bearer token."""
    if token is None:
        return True
    offered = [request.headers.get("X-ClickHouse-Key"), request.query.get("password")]
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        offered.append(value.strip())
    elif scheme.lower() == "basic":
        try:
            offered.append(base64.b64decode(value.strip()).decode().partition(":")[2])
        except (ValueError, UnicodeDecodeError):
            pass
    return any(o is not None and hmac.compare_digest(o.encode(), token.encode()) for o in offered)


def error(code: int, message: str) -> web.Response:
    text = message if message.startswith("Code: ") else f"Code: {code}. DB::Exception: {message}. ({NAMES.get(code, 'ERROR')})"
    return web.Response(status=STATUS.get(code, 500), text=text.rstrip("\n") + "\n",
                        headers={"X-ClickHouse-Exception-Code": str(code)})


async def read_query(request: web.Request) -> tuple[str, dict[str, str]]:
    """The SQL (``query`` parameter, then body or form field) and the ``param_*`` values."""
    params = {k[6:]: v for k, v in request.query.items() if k.startswith("param_")}
    parts = [request.query.get("query", "")]
    if request.method == "POST":
        if request.content_type.startswith("multipart/form-data"):
            form = await request.post()
            parts.append(str(form.get("query", "")))
            params.update({k[6:]: str(v) for k, v in form.items() if k.startswith("param_")})
        else:
            body = await request.content.read(MAX_QUERY_BYTES + 1)
            if len(body) > MAX_QUERY_BYTES:
                raise Refused(f"query longer than {MAX_QUERY_BYTES} bytes", code=62)
            parts.append(body.decode("utf-8"))
    return "\n".join(p for p in parts if p), params


def build(session: AnalystSession, token: str | None, timezone: str = "UTC") -> web.Application:
    """The aiohttp application answering ClickHouse HTTP requests with ``session``."""

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def query(request: web.Request) -> web.Response:
        if request.method in ("GET", "HEAD") and "query" not in request.query:
            return web.Response(text="Ok.\n")
        if not authorized(request, token):
            return error(516, "default: Authentication failed: password is incorrect, or there is no user with "
                         "such name (use JOURNEYS_API_TOKEN as the password)")
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        try:
            sql, params = await read_query(request)
            fmt = request.query.get("default_format") or request.headers.get("X-ClickHouse-Format") or "TabSeparated"
            database = request.query.get("database") or request.headers.get("X-ClickHouse-Database") or None
            answer = await asyncio.to_thread(session.run, sql, fmt, database, params)
        except Refused as exc:
            return error(exc.code, str(exc))
        except EngineError as exc:
            return error(exc.code or 1000, str(exc))
        except UnicodeDecodeError:
            return error(62, "the query is not UTF-8")
        summary = {"read_rows": str(answer.rows_read), "read_bytes": str(answer.bytes_read), "written_rows": "0",
                   "written_bytes": "0", "total_rows_to_read": str(answer.rows_read), "result_rows": "0",
                   "result_bytes": str(len(answer.body)), "elapsed_ns": str(int(answer.elapsed_s * 1e9))}
        headers = {"X-ClickHouse-Format": answer.fmt, "X-ClickHouse-Timezone": timezone,
                   "X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Summary": json.dumps(summary),
                   "X-ClickHouse-Server-Display-Name": "journeys", "Content-Type": content_type(answer.fmt)}
        return web.Response(body=answer.body, headers=headers)

    app = web.Application(client_max_size=MAX_QUERY_BYTES)
    app.router.add_get("/ping", ping)
    app.router.add_route("GET", "/", query)
    app.router.add_route("POST", "/", query)
    return app


def limits_of(settings: Settings) -> Limits:
    sql = settings.sql
    return Limits(sql.max_execution_seconds, sql.max_result_rows, sql.max_result_mb * 1024**2,
                  sql.max_memory_mb * 1024**2)


class SqlEndpoint(Service):
    """Runs the endpoint inside the store process (after the store is open and migrated)."""

    def __init__(self, settings: Settings, handle: StoreHandle, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.handle = handle
        self.session: AnalystSession | None = None
        self.runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        await asyncio.to_thread(self.handle.get)  # the schema exists before analysts look at it
        path = self.handle.url[len("chdb://"):]
        self.session = await asyncio.to_thread(AnalystSession, path, limits_of(self.settings))
        zone = (await asyncio.to_thread(self.session.run, "SELECT timezone()", "TabSeparatedRaw")).body.decode().strip()
        token = self.settings.api_token.get_secret_value() if self.settings.api_token else None
        self.runner = web.AppRunner(build(self.session, token, zone or "UTC"), access_log=None)
        await self.runner.setup()
        sql = self.settings.sql
        try:
            await web.TCPSite(self.runner, sql.host, sql.port).start()
        except OSError as exc:  # the sinks matter more than the analysts' port: say so, keep storing
            log.error("SQL endpoint not started: cannot listen on %s:%d (%s); set JOURNEYS_SQL__PORT",
                      sql.host, sql.port, exc)
            return
        log.info("SQL endpoint (ClickHouse HTTP, read-only) on http://%s:%d", sql.host, sql.port)

    async def on_stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            self.session.close()


def register(app: faust.App, settings: Settings, handle: StoreHandle) -> None:
    """Serve the endpoint from this (store) process; refuse a non-loopback bind without a token."""
    if not loopback(settings.sql.host):
        if settings.api_token is None:
            raise ConfigurationError(f"JOURNEYS_SQL__HOST={settings.sql.host} exposes the store beyond this machine: "
                                     "set JOURNEYS_API_TOKEN (clients send it as their password)")
        why = weak_secret(settings.api_token.get_secret_value())
        if why:
            raise ConfigurationError(f"JOURNEYS_SQL__HOST={settings.sql.host}: JOURNEYS_API_TOKEN {why}: use a random "
                                     "one (e.g. `openssl rand -hex 32`)")
    app.service(SqlEndpoint(settings, handle))  # type: ignore[arg-type]  # an instance is accepted too
