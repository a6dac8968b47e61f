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
