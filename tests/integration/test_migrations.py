"""Migrations on real chDB through the real CLI: idempotent, and every statement parses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sinks.clickhouse import ddl
from tests.support.tracker import ROOT

pytestmark = pytest.mark.integration

# chDB opens one data path per process (and other tests open theirs in-process): parse in a child.
PARSE_ALL = """
import json, sys
from sinks.clickhouse import cluster, ddl
from sinks.clickhouse.client import Store

store = Store(sys.argv[1])
single = [cluster.clean(ddl._LEDGER)] + [cluster.clean(s) for m in ddl.MIGRATIONS for s in m.statements]
clustered = [cluster.ledger("c1")] + [s for m in ddl.MIGRATIONS for s in cluster.migration_statements(m, "c1")]
failures = []
for sql in single + clustered:
    try:
        store.query("EXPLAIN AST " + sql)
    except Exception as exc:
        failures.append([sql[:120], str(exc)[:300]])
print(json.dumps({"parsed": len(single) + len(clustered), "failures": failures}))
"""


def journeys(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "streams", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"journeys {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def test_single_node_migrations_applied_twice_are_a_no_op(tmp_path: Path) -> None:
    env = dict(os.environ, JOURNEYS_CLICKHOUSE_URL=f"chdb://{tmp_path / 'store'}",
               JOURNEYS_DATA_DIR=str(tmp_path / "data"))
    first = journeys(env, "db", "migrate")
    assert first.stdout.strip() == f"applied {[m.version for m in ddl.MIGRATIONS]}"
    second = journeys(env, "db", "migrate")
    assert second.stdout.strip() == f"up to date (version {ddl.LATEST})"
    status = journeys(env, "db", "status").stdout.splitlines()
    assert len(status) == len(ddl.MIGRATIONS)
    assert all(line.split()[1] == "applied" for line in status), status
    assert "PENDING" not in "\n".join(status)


def test_single_node_and_cluster_statements_parse_on_chdb(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PARSE_ALL, f"chdb://{tmp_path / 'parse'}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["failures"] == []
    assert result["parsed"] > 2 * sum(len(m.statements) for m in ddl.MIGRATIONS)


def test_db_ddl_prints_both_variants(tmp_path: Path) -> None:
    env = dict(os.environ, JOURNEYS_DATA_DIR=str(tmp_path / "data"))
    single = journeys(env, "db", "ddl").stdout
    clustered = journeys(env, "db", "ddl", "--cluster", "prod").stdout
    assert "ON CLUSTER" not in single and "ReplacingMergeTree(version)" in single
    assert "ON CLUSTER 'prod'" in clustered and "Distributed('prod', currentDatabase(), timeline_local" in clustered
    assert single.count("-- migration ") == clustered.count("-- migration ") == len(ddl.MIGRATIONS)


# Migration 13 on a store at migration 12 holding two resolutions of each of 30 events over three
# months; then a crash between its EXCHANGE and its ledger row, and the migration run again.
PARTITIONED = """
import json, sys
from sinks.clickhouse import ddl
from sinks.clickhouse.client import Store

store = Store(sys.argv[1])
store.command(ddl._LEDGER)
for m in ddl.MIGRATIONS:
    if m.version < 13:
        for sql in m.statements + m.backfill:
            store.command(sql)
        store.command("INSERT INTO schema_migrations (version, name) VALUES ({v:UInt32}, {n:String})",
                      {"v": m.version, "n": m.name})
for version, account in ((1, "domain:acme.com"), (2, "crm-1")):  # the newer resolution must win
    store.command(
        "INSERT INTO event_resolution (event_id, accounts, event_time, event_type, resolved_at) "
        "SELECT concat('e', toString(number)), [{a:String}], "
        "toDateTime64('2025-01-15 10:00:00', 3, 'UTC') + toIntervalMonth(number % 3), 'track', "
        "toDateTime64('2025-06-01 00:00:00', 6, 'UTC') + toIntervalSecond({v:UInt32}) FROM numbers(30)",
        {"a": account, "v": version})
final = "SELECT event_id, accounts FROM event_resolution FINAL ORDER BY event_id"
before = store.query(final)[1]
out = {"applied": [m.version for m in ddl.migrate(store)]}
key = "SELECT partition_key FROM system.tables WHERE database = currentDatabase() AND name = 'event_resolution'"
out["partition_key"] = store.query(key)[1][0][0]
out["same"] = store.query(final)[1] == before
out["partitions"] = store.query("SELECT uniqExact(partition) FROM system.parts "
                                "WHERE table = 'event_resolution' AND active")[1][0][0]
[m13] = [m for m in ddl.MIGRATIONS if m.version == 13]
for sql in m13.statements[:-1]:  # a crash after the EXCHANGE, before the DROP and the ledger row
    store.command(sql)
store.command("DELETE FROM schema_migrations WHERE version = 13")
out["again"] = [m.version for m in ddl.migrate(store)]
out["same_again"] = store.query(final)[1] == before
out["key_again"] = store.query(key)[1][0][0]
out["left"] = store.query("SELECT count() FROM system.tables WHERE name = 'event_resolution_v13'")[1][0][0]
out["crm"] = sorted({r[1][0] for r in before})
print(json.dumps(out))
"""


def test_event_resolution_is_partitioned_by_event_month_and_a_crashed_run_loses_nothing(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PARTITIONED, f"chdb://{tmp_path / 'store'}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["applied"] == [v for v in (m.version for m in ddl.MIGRATIONS) if v >= 13]
    assert result["partition_key"] == result["key_again"] == "toYYYYMM(event_time)"
    assert result["same"] and result["same_again"], "FINAL answers changed"
    assert result["crm"] == ["crm-1"], "the newest resolution of every event wins"
    assert result["partitions"] == 3  # (row counts vary: merges drop replaced versions whenever they run)
    assert result["again"] == [13] and result["left"] == 0
