"""Every Prometheus series the tracker exports, declared in one place (scraped at ``/metrics``).

Agents call the small helpers below with one line each; ``streams.web.ops`` refreshes the
gauges computed on scrape (consumer lag, table sizes). Label values are bounded: stages, tables,
topics/partitions and dead-letter reason *paths* (normalised, capped), never ids or payloads.
With a tenant (``JOURNEYS_TOPIC_PREFIX``), :func:`render` adds ``tenant="<name>"`` to every series.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.metrics_core import Metric

from schemas.errors import TransientSinkError
from sinks.clickhouse.rows import DEAD_LETTER_COLUMNS

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double the output and dashboards ignore them

EVENTS_IN = Counter(
    "journeys_events_in_total", "Events consumed by a stage.", ["stage"])
EVENTS_OUT = Counter(
    "journeys_events_out_total",
    "Events a stage emitted, by outcome (ingest: accepted/rejected; identity stages: the next hop; "
    "store: the table written).", ["stage", "outcome"])
_CHILDREN: dict[tuple[Any, tuple[str, ...]], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once per label set: the steps count every record,
    and prometheus_client's ``labels()`` (validation, a lock, a dict) cost ~1.6% of a live drain's
    event loop. The children are never removed, so the one kept here is the registry's."""
    key = (metric, labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


DEAD_LETTERS = Counter(
    "journeys_dead_letters_total",
    "Dead letters stored, by source kind, stage and the JSON path of their first reason.",
    ["source_kind", "stage", "reason"])
SINK_BATCH_ROWS = Histogram(
    "journeys_sink_batch_rows", "Rows per ClickHouse insert block.", ["table"],
    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 50000))
STREAM_BATCH_RECORDS = Histogram(
    "journeys_stream_batch_records", "Records per batch a stream stage handled (bigger while it is behind: "
    "JOURNEYS_STREAM_BATCH_SECONDS_BEHIND).", ["stage"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000))
SINK_INSERT_SECONDS = Histogram(
    "journeys_sink_insert_seconds", "Time to write one block to ClickHouse, retries included.", ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
REFRESH_SECONDS = Histogram(
    "journeys_store_refresh_seconds", "Time of one re-resolution of stored events (event_resolution, tombstones, "
    "account summaries), retries included; at most one starts per JOURNEYS_SINK_FLUSH_SECONDS.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30, 60, 300))
REFRESH_EVENTS = Histogram(
    "journeys_store_refresh_events", "Events one re-resolution covered (a timeline batch's, and those that "
    "changed identity links can move).", buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 50000, 100000))
SINK_RETRIES = Counter(
    "journeys_sink_insert_retries_total", "Failed insert attempts that will be retried.", ["table", "kind"])
CONSUMER_LAG = Gauge(
    "journeys_consumer_lag",
    "Messages not yet committed by this worker: highwater minus committed (or last read) offset.",
    ["topic", "partition"])
TABLE_ROWS = Gauge(
    "journeys_table_rows", "Rows in active parts of a ClickHouse table (system.parts; store role).", ["table"])
TABLE_MEMORY = Gauge(
    "journeys_table_memory_bytes",
    "RocksDB memory of this process's Faust tables (stream role): 'cache' is the shared block cache, "
    "memtables included, capped by JOURNEYS_TABLE_MEMORY_MB; 'memtables' and 'pinned' are parts of it.",
    ["kind"])
MALLOC = Gauge(
    "journeys_malloc_bytes",
    "This process's allocators: glibc (Python, RocksDB, the Kafka client; from mallinfo2) and, with "
    "the embedded store, chDB's jemalloc (system.jemalloc_stats, read with the table sizes). "
    "'in_use' is allocated; glibc 'free_held' is freed but kept; jemalloc 'active' the pages of live "
    "extents (active - in_use: fragmentation), 'metadata' its own, 'dirty' freed pages not yet purged, "
    "'tcache' held by thread caches, 'resident' the pages it holds, 'mapped' and 'retained' address space.",
    ["allocator", "kind"])
STORE_MEMORY = Gauge(
    "journeys_store_memory_bytes",
    "ClickHouse's memory accounting (system.metrics; store role, read with the table sizes): "
    "MemoryTracking (all of it) and its caches (MarkCacheBytes, PrimaryIndexCacheBytes, ...).",
    ["kind"])
AGENT_CRASHES = Counter(
    "journeys_agent_crashes_total", "Agents that raised: /health/live turns 503.", ["agent"])
API_REQUESTS = Counter(
    "journeys_api_requests_total",
    "Requests the JSON API and the UI pages answered (a worker's or journeys serve's), by route name and "
    "HTTP status (a request refused by the token check reaches no route and is not counted).",
    ["route", "status"])
API_REQUEST_SECONDS = Histogram(
    "journeys_api_request_seconds", "Time to answer one API or UI request, store reads included, by route name.",
    ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
# Alerting: declared here, incremented by the alert agent and delivery.
DEFINITIONS_RELOADS = Counter(
    "journeys_definitions_reloads_total",
    "Changes of the definitions file seen, by outcome (applied, scheduled, invalid, same_version, unreadable).",
    ["outcome"],
)
JOURNEY_REBUILDS = Counter(
    "journeys_journey_rebuilds_total",
    "Journeys rebuilt from their stored events (an event older than every fact the journey kept): "
    "requests asked by the journey stage, answered by the store process, done.", ["step"])
ALERTS_FIRED = Counter("journeys_alerts_fired_total", "Alerts raised by a rule.", ["rule"])
ALERTS_DELIVERED = Counter("journeys_alerts_delivered_total", "Alerts delivered, by channel.", ["channel"])
ALERTS_FAILED = Counter("journeys_alerts_failed_total",
                        "Alert deliveries given up (retries used up or refused for good) and recorded failed, "
                        "by channel.", ["channel"])
ALERT_DELIVERY_RETRIES = Counter("journeys_alert_delivery_retries_total",
                                 "Failed delivery attempts that were retried, by channel.", ["channel"])

MAX_REASON_LABELS = 100
"""Distinct dead-letter reason paths kept as label values; later ones count as ``other``."""

_INDEX = re.compile(r"\[\d+\]")
_reasons_seen: set[str] = set()
_reasons_lock = threading.Lock()


def reason_path(reason: str) -> str:
    """The bounded label for a reason like ``$.context.traits[3].email: ...``.

    The JSON path before ``: ``, array indices as ``[*]``, at most three segments deep;
    after :data:`MAX_REASON_LABELS` distinct paths, ``other``.
    """
    path = reason.split(": ", 1)[0].strip() if reason.startswith("$") else "$"
    path = _INDEX.sub("[*]", path)
    parts = path.split(".")
    if len(parts) > 4:  # "$" + three segments
        path = ".".join(parts[:4]) + ".*"
    with _reasons_lock:
        if path not in _reasons_seen:
            if len(_reasons_seen) >= MAX_REASON_LABELS:
                return "other"
            _reasons_seen.add(path)
    return path


def dead_letters(rows: Sequence[Sequence[Any]]) -> None:
    """Count dead-letter rows (``sinks.clickhouse.rows.dead_letter_row``) by first reason path."""
    kind, stage, reasons = (DEAD_LETTER_COLUMNS.index(c) for c in ("source_kind", "stage", "reasons"))
    for row in rows:
        first = row[reasons][0] if row[reasons] else "$"
        DEAD_LETTERS.labels(row[kind], row[stage], reason_path(str(first))).inc()


def on_retry(table: str) -> Callable[[BaseException], None]:
    """An ``on_retry`` callback for ``insert_until_done``: counts transient/terminal failures."""

    def count(error: BaseException) -> None:
        SINK_RETRIES.labels(table, "transient" if isinstance(error, TransientSinkError) else "terminal").inc()

    return count


@contextmanager
def sink_insert(table: str, events: int, rows: int) -> Iterator[None]:
    """Around an awaited insert: events in/rows out of the store stage, block size, latency."""
    EVENTS_IN.labels("store").inc(events)
    if not rows:
        yield
        return
    SINK_BATCH_ROWS.labels(table).observe(rows)
    started = time.perf_counter()
    yield
    SINK_INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
    EVENTS_OUT.labels("store", table).inc(rows)


class _Tenanted:
    """A view of a registry whose every sample carries ``tenant``: one label for the whole
    process, added when the series are written out (the series themselves stay unlabelled)."""

    def __init__(self, registry: Any, tenant: str) -> None:
        self.registry, self.tenant = registry, tenant

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            tenanted = Metric(family.name, family.documentation, family.type, family.unit)
            tenanted.samples = [s._replace(labels={**s.labels, "tenant": self.tenant}) for s in family.samples]
            yield tenanted


def render(tenant: str = "", registry: Any = REGISTRY) -> bytes:
    """This process's series in the Prometheus text format, each labelled ``tenant`` when there
    is one (``Settings.tenant``); without a tenant exactly as before."""
    source: Any = _Tenanted(registry, tenant) if tenant else registry  # a collector as good as a registry
    return generate_latest(source)


def api_request(route: str, status: int, seconds: float) -> None:
    """One answered request of the API or the UI (``route``: the route table's name, bounded)."""
    API_REQUESTS.labels(route, str(status)).inc()
    API_REQUEST_SECONDS.labels(route).observe(seconds)
