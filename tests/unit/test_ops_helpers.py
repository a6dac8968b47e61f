"""Metric helpers (bounded labels, retry/insert accounting) and the JSON log formatter."""

from __future__ import annotations

import logging
import sys

import orjson

from schemas.errors import TerminalSinkError, TransientSinkError
from streams import logs, metrics


def sample(counter, *labels: str) -> float:
    return counter.labels(*labels)._value.get()


def test_reason_path_is_the_json_path_normalised_and_bounded(monkeypatch) -> None:
    assert metrics.reason_path("$.timestamp: Input should have timezone info") == "$.timestamp"
    assert metrics.reason_path("$.batch[12].context.traits.email: bad") == "$.batch[*].context.traits.*"
    assert metrics.reason_path("$: malformed JSON: x") == "$"
    assert metrics.reason_path("no path at all") == "$"
    monkeypatch.setattr(metrics, "_reasons_seen", set())
    monkeypatch.setattr(metrics, "MAX_REASON_LABELS", 2)
    assert [metrics.reason_path(f"$.f{i}: x") for i in range(4)] == ["$.f0", "$.f1", "other", "other"]
    assert metrics.reason_path("$.f0: again") == "$.f0"


def test_retry_callback_counts_transient_and_terminal_failures() -> None:
    before = sample(metrics.SINK_RETRIES, "t_unit", "transient"), sample(metrics.SINK_RETRIES, "t_unit", "terminal")
    count = metrics.on_retry("t_unit")
    count(TransientSinkError("down"))
    count(TransientSinkError("down"))
    count(TerminalSinkError("bad schema"))
    after = sample(metrics.SINK_RETRIES, "t_unit", "transient"), sample(metrics.SINK_RETRIES, "t_unit", "terminal")
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)


def test_sink_insert_observes_batch_size_latency_and_rows_out() -> None:
    hist = metrics.SINK_INSERT_SECONDS.labels("t_unit2")
    with metrics.sink_insert("t_unit2", events=7, rows=5):
        pass
    with metrics.sink_insert("t_unit2", events=3, rows=0):  # nothing to write: no block observed
        pass
    assert sum(b.get() for b in hist._buckets) == 1
    assert metrics.SINK_BATCH_ROWS.labels("t_unit2")._sum.get() == 5
    assert sample(metrics.EVENTS_OUT, "store", "t_unit2") == 5


def test_dead_letters_are_counted_by_first_reason_path() -> None:
    row = ("id", None, "collector", "src", "validate", ["$.userId: required", "$.x: y"], "{}")
    before = sample(metrics.DEAD_LETTERS, "collector", "validate", "$.userId")
    metrics.dead_letters([row, row])
    assert sample(metrics.DEAD_LETTERS, "collector", "validate", "$.userId") - before == 2


def test_scrub_hides_url_passwords_and_emails() -> None:
    assert logs.scrub("cannot open http://ops:s3cr3t@ch:8123/db") == "cannot open http://ops:***@ch:8123/db"
    assert logs.scrub("user jane.doe+x@acme.com joined") == "user ***@acme.com joined"
    assert logs.scrub("chdb:///var/lib/journeys/store") == "chdb:///var/lib/journeys/store"


def test_json_formatter_emits_one_object_with_extras_and_scrubbed_text() -> None:
    record = logging.LogRecord("streams.x", logging.WARNING, __file__, 1, "bad event from %s", ("bob@corp.io",), None)
    record.event_id, record.account_id = "m-1", "acme"
    doc = orjson.loads(logs.JsonFormatter().format(record))
    assert doc["level"] == "WARNING" and doc["logger"] == "streams.x"
    assert doc["message"] == "bad event from ***@corp.io"
    assert doc["event_id"] == "m-1" and doc["account_id"] == "acme"
    assert doc["ts"].endswith("+00:00")
    try:
        raise ValueError("at http://u:pw@h/")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    doc = orjson.loads(logs.JsonFormatter().format(record))
    assert "ValueError" in doc["exc"] and "pw@" not in doc["exc"]


def test_install_is_opt_in() -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    logs.install(None, "text")
    assert root.handlers == handlers
    try:
        logs.install(None, "json")
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    finally:
        root.handlers[:] = handlers


def test_grafana_dashboard_only_uses_declared_series() -> None:
    import json
    import re
    from pathlib import Path

    from prometheus_client import REGISTRY

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    declared = {s.name for metric in REGISTRY.collect() for s in metric.samples} | {
        m.name for m in REGISTRY.collect()}
    for name in {n for e in exprs for n in re.findall(r"journeys_\w+", e)}:
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert base in declared or name in declared, name
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for wanted in ("per stage", "lag", "dead letters", "p99", "retries", "table sizes"):
        assert wanted in titles


def test_child_is_the_registry_series_looked_up_once() -> None:
    counter = metrics.child(metrics.EVENTS_OUT, "unit-child", "first")
    assert counter is metrics.child(metrics.EVENTS_OUT, "unit-child", "first")  # cached
    assert counter is metrics.EVENTS_OUT.labels("unit-child", "first")  # the series /metrics shows
    before = sample(metrics.EVENTS_OUT, "unit-child", "first")
    counter.inc(3)
    assert sample(metrics.EVENTS_OUT, "unit-child", "first") == before + 3


JEMALLOC_STATS = """___ Begin jemalloc statistics ___
Page size: 4096
Allocated: 32430096, active: 33128448, metadata: 3354464 (n_thp 0, edata 168320, rtree 2097152), resident: 45490176, mapped: 52998144, retained: 5197824
Merged arenas stats:
decaying:  time       npages       sweeps     madvises       purged
   dirty:   N/A         2291            1            1            3
   muzzy:   N/A            0            0            0            0
tcache_bytes:                 1803816
arenas[0]:
   dirty:   N/A           17            1            1            3
tcache_bytes:                   1000
"""


def test_jemalloc_totals_reads_the_totals_and_the_merged_arenas() -> None:
    from streams.web.ops import jemalloc_totals

    assert jemalloc_totals(JEMALLOC_STATS) == {
        "in_use": 32430096, "active": 33128448, "metadata": 3354464, "resident": 45490176,
        "mapped": 52998144, "retained": 5197824, "dirty": 2291 * 4096, "tcache": 1803816}
    without_arenas = JEMALLOC_STATS.split("Merged")[0]
    assert set(jemalloc_totals(without_arenas)) == {"in_use", "active", "metadata", "resident", "mapped", "retained"}
    assert jemalloc_totals("a build without jemalloc") == {}
