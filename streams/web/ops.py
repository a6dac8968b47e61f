"""Operations endpoints on every worker's web server: ``/metrics``, ``/health/live``,
``/health/ready`` and (store role) ``/api/v1/schema``; also installs JSON logs when asked.

- live: 200 while the loop answers and no agent has raised (a Faust agent that raises acks
  the event and may stop consuming silently); 503 naming the agent otherwise — restart it.
- ready: 200 once partitions are assigned, no rebalance is running and table recovery has
  completed, and (store role) ClickHouse answers ``SELECT 1``; 503 saying what is missing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from sinks.clickhouse import ddl
from sinks.clickhouse.client import is_embedded
from streams import logs, malloc, metrics, processes, tables
from streams.settings import Settings
from streams.storehandle import StoreHandle

log = logging.getLogger(__name__)

TABLE_SIZES_EVERY = 30.0
"""Seconds between ``system.parts`` reads for ``journeys_table_rows`` (at most)."""
READY_QUERY_TIMEOUT = 5.0

TABLE_ROWS_SQL = """
SELECT table, sum(rows) FROM system.parts
WHERE active AND database = currentDatabase() GROUP BY table ORDER BY table
"""
STORE_MEMORY_METRICS = (
    "MemoryTracking", "MergesMutationsMemoryTracking", "MarkCacheBytes", "IndexMarkCacheBytes",
    "PrimaryIndexCacheBytes", "UncompressedCacheBytes", "QueryConditionCacheBytes", "QueryCacheBytes",
    "CompiledExpressionCacheBytes",
)
JEMALLOC_SQL = "SELECT stats FROM system.jemalloc_stats"
JEMALLOC_TOTALS = re.compile(r"^Allocated: (\d+), active: (\d+), metadata: (\d+).*?, resident: (\d+), "
                             r"mapped: (\d+), retained: (\d+)", re.MULTILINE)
JEMALLOC_MERGED = re.compile(r"^Merged arenas stats:$.*?^ +dirty: +\S+ +(\d+).*?^tcache_bytes: +(\d+)$",
                             re.MULTILINE | re.DOTALL)
JEMALLOC_PAGE = re.compile(r"^Page size: (\d+)$", re.MULTILINE)
STORE_MEMORY_SQL = "SELECT metric, value FROM system.metrics WHERE metric IN ({})".format(
    ", ".join(f"'{m}'" for m in STORE_MEMORY_METRICS))


class _Crashes:
    """Agents that raised, by name (wraps each agent's ``on_error``; idempotent)."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}

    def watch(self, app: faust.App) -> None:
        for agent in app.agents.values():
            if getattr(agent, "_journeys_watched", False):
                continue
            previous = agent._on_error

            async def on_error(agent: Any, exc: BaseException, previous: Any = previous) -> None:
                self.reasons[agent.name] = f"{type(exc).__name__}: {exc}"[:500]
                metrics.AGENT_CRASHES.labels(agent.name).inc()
                log.error("agent %s raised and may have stopped consuming; /health/live reports 503",
                          agent.name, exc_info=exc)
                if previous is not None:
                    await previous(agent, exc)

            agent._on_error = on_error
            agent._journeys_watched = True

    def current(self, app: faust.App) -> dict[str, str]:
        found = dict(self.reasons)
        for agent in app.agents.values():
            if agent.crashed:
                found.setdefault(agent.name, repr(agent.crash_reason))
        return found


def refresh_lag(app: faust.App) -> None:
    """``journeys_consumer_lag`` for this worker's assigned (non-changelog) partitions."""
    consumer = app._consumer
    metrics.CONSUMER_LAG.clear()
    if consumer is None:
        return
    try:
        assignment = consumer.assignment()
    except Exception:  # noqa: BLE001 - not started yet / closing: no lag to report
        return
    changelogs = app.tables.changelog_topics
    for tp in assignment:
        if tp.topic in changelogs or "__assignor" in tp.topic:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - partition not fetched yet
            continue
        position = consumer._committed_offset.get(tp)
        if position is None and consumer._read_offset.get(tp) is not None:
            position = consumer._read_offset[tp] + 1
        if highwater is None or position is None:
            continue
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))


def refresh_table_memory() -> None:
    """``journeys_table_memory_bytes``: the RocksDB budget shared by this process's tables;
    ``journeys_malloc_bytes{allocator="glibc"}``: glibc's heap."""
    for kind, used in tables.SharedMemory.usage().items():
        metrics.TABLE_MEMORY.labels(kind).set(used)
    for kind, used in malloc.glibc_usage().items():
        metrics.MALLOC.labels("glibc", kind).set(used)


def jemalloc_totals(stats: str) -> dict[str, int]:
    """Bytes by kind from jemalloc's ``malloc_stats_print`` text: ``in_use`` (allocated), ``active``
    (pages of live extents: ``active - in_use`` is fragmentation), ``metadata``, ``resident``,
    ``mapped`` and ``retained`` (address space kept, not memory), and from the merged arenas
    ``dirty`` (freed pages not yet purged) and ``tcache`` (held by threads' caches)."""
    found = JEMALLOC_TOTALS.search(stats)
    if found is None:
        return {}
    totals = dict(zip(("in_use", "active", "metadata", "resident", "mapped", "retained"), map(int, found.groups())))
    merged, page = JEMALLOC_MERGED.search(stats), JEMALLOC_PAGE.search(stats)
    if merged is not None and page is not None:
        totals["dirty"] = int(merged.group(1)) * int(page.group(1))
        totals["tcache"] = int(merged.group(2))
    return totals


class _TableSizes:
    def __init__(self, handle: StoreHandle) -> None:
        self.handle = handle
        self.last = 0.0

    async def refresh(self) -> None:
        if time.monotonic() - self.last < TABLE_SIZES_EVERY:
            return
        self.last = time.monotonic()
        try:
            _, rows = await asyncio.to_thread(lambda: self.handle.get().query(TABLE_ROWS_SQL))
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the store is down
            log.warning("table sizes unavailable: %s", type(exc).__name__)
            return
        for table, count in rows:
            metrics.TABLE_ROWS.labels(table).set(int(count))
        try:  # ClickHouse's own memory accounting (the embedded engine shares this process)
            _, rows = await asyncio.to_thread(lambda: self.handle.get().query(STORE_MEMORY_SQL))
        except Exception as exc:  # noqa: BLE001 - as above
            log.warning("store memory unavailable: %s", type(exc).__name__)
            return
        for metric, value in rows:
            metrics.STORE_MEMORY.labels(metric).set(int(value))
        if not is_embedded(self.handle.url):  # a server's allocator is not this process's
            return
        try:
            _, rows = await asyncio.to_thread(lambda: self.handle.get().query(JEMALLOC_SQL))
        except Exception as exc:  # noqa: BLE001 - as above (and builds without jemalloc)
            log.warning("jemalloc stats unavailable: %s", type(exc).__name__)
            return
        for kind, value in jemalloc_totals(rows[0][0] if rows else "").items():
            metrics.MALLOC.labels("jemalloc", kind).set(value)


def readiness(app: faust.App) -> tuple[list[str], int]:
    """What keeps this worker from being ready (empty: ready) and how many partitions it has."""
    problems: list[str] = []
    consumer = app._consumer
    assigned = 0
    if consumer is None:
        problems.append("consumer not created")
    else:
        try:
            changelogs = app.tables.changelog_topics
            assigned = sum(1 for tp in consumer.assignment() if tp.topic not in changelogs
                           and "__assignor" not in tp.topic)
        except Exception:  # noqa: BLE001 - ConsumerNotStarted and friends
            problems.append("consumer not started")
    if app.rebalancing:
        problems.append("rebalancing")
    if not app.tables.recovery.completed.is_set() or app.in_recovery:
        problems.append("table recovery not completed")
    if not problems and assigned == 0:
        problems.append("no partitions assigned (more workers than partitions?)")
    return problems, assigned


def _json(body: bytes) -> dict[str, Any]:
    try:
        found = json.loads(body)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def register(app: faust.App, settings: Settings, handle: StoreHandle | None, child: Any = None) -> None:
    """Add the operations views (and JSON logs if ``settings.log_format == 'json'``); ``child``:
    the :class:`streams.processes.Child` holding this worker's stream role, whose series and
    health these views include."""
    logs.install(app, settings.log_format)
    crashes = _Crashes()
    crashes.watch(app)
    sizes = _TableSizes(handle) if handle is not None else None

    @app.task
    async def watch_agents() -> None:  # agents registered after create_app, if any
        crashes.watch(app)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            refresh_lag(app)
            refresh_table_memory()
            if sizes is not None:
                await sizes.refresh()
            body = metrics.render(settings.tenant)
            if child is not None:
                status, theirs = await processes.get(child, "/metrics")
                if status == 200:
                    body = processes.merge(body, theirs)
            return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    @app.page("/health/live")
    class LiveView(View):
        async def get(self, request: Request) -> Response:
            crashed = crashes.current(app)
            if child is not None:
                status, theirs = await processes.get(child, "/health/live")
                if status == 503:
                    crashed.update(_json(theirs).get("crashed_agents") or {"stream process": "not live"})
                elif status != 200:
                    crashed["stream process"] = f"not answering: {theirs.decode(errors='replace')[:200]}"
            if crashed:
                return self.json({"live": False, "crashed_agents": crashed}, status=503)
            return self.json({"live": True})

    @app.page("/health/ready")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            problems, assigned = readiness(app)
            if handle is not None:
                try:
                    await asyncio.wait_for(asyncio.to_thread(lambda: handle.get().query("SELECT 1")),
                                           READY_QUERY_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - any failure: not ready, say which
                    problems.append(logs.scrub(f"clickhouse: {type(exc).__name__}: {str(exc)[:200]}"))
            roles = settings.roles
            if child is not None:  # this worker is both processes: ready when both are
                roles = "stream,store"
                status, theirs = await processes.get(child, "/health/ready")
                answer = _json(theirs)
                if status != 200:
                    problems.extend(f"stream process: {p}" for p in answer.get("not_ready") or
                                    [f"not answering: {theirs.decode(errors='replace')[:200]}"])
                assigned += int(answer.get("assigned_partitions") or 0)
            body = {"ready": not problems, "not_ready": problems, "assigned_partitions": assigned,
                    "roles": roles}
            return self.json(body, status=200 if not problems else 503)

    if handle is None:
        return

    @app.page("/api/v1/schema")
    class SchemaView(View):
        async def get(self, request: Request) -> Response:
            done = await asyncio.to_thread(lambda: ddl.applied(handle.get()))
            pending = [m.version for m in ddl.MIGRATIONS if m.version not in set(done)]
            return self.json({"applied": done, "latest": ddl.LATEST, "pending": pending})
