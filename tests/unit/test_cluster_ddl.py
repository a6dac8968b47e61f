"""Cluster variants of the migrations: Replicated local tables, Distributed tables, ON CLUSTER."""

from __future__ import annotations

import re

import pytest

from sinks.clickhouse import cluster, ddl

C = "journeys_cluster"
ON = f"ON CLUSTER '{C}'"


def created_tables() -> list[str]:
    names = []
    for migration in ddl.MIGRATIONS:
        for statement in migration.statements:
            if match := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", cluster.clean(statement)):
                names.append(match[1])
    return names


def all_cluster_statements() -> list[str]:
    return [s for m in ddl.MIGRATIONS for s in cluster.migration_statements(m, C)]


def test_every_migration_statement_has_a_cluster_counterpart_on_cluster() -> None:
    for migration in ddl.MIGRATIONS:
        if migration.single_node:
            continue
        for statement in migration.statements:
            variants = cluster.statements_for(statement, C)
            assert variants, statement
            assert all(ON in v for v in variants), variants
    assert ON in cluster.ledger(C)


def test_local_tables_are_replicated_with_shard_and_replica_macros() -> None:
    statements = all_cluster_statements()
    for name in created_tables():
        [local] = [s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS {name}_local ")]
        single = next(cluster.clean(s) for m in ddl.MIGRATIONS for s in m.statements
                      if cluster.clean(s).startswith(f"CREATE TABLE IF NOT EXISTS {name} "))
        engine = re.search(r"ENGINE = (\w+)(?:\(([\w, ]*)\))?", single)  # version (, is_deleted)
        assert engine is not None
        version = f", {engine[2]}" if engine[2] else ""
        path = f"'/clickhouse/tables/{{shard}}/{{database}}/{name}'"
        assert f"ENGINE = Replicated{engine[1]}({path}, '{{replica}}'{version})" in local, local
        assert "non_replicated_deduplication_window" not in local
        assert "ORDER BY" in local


@pytest.mark.parametrize(("table", "key"), [
    ("timeline", "cityHash64(account_id)"),
    ("identity_links", "cityHash64(src)"),
    ("dead_letters", "cityHash64(dlq_id)"),
])
def test_distributed_tables_keep_the_original_names_and_shard_by_account_or_id(table: str, key: str) -> None:
    expected = (f"CREATE TABLE IF NOT EXISTS {table} {ON} AS {table}_local\n"
                f"ENGINE = Distributed('{C}', currentDatabase(), {table}_local, {key})")
    assert expected in all_cluster_statements()


def test_every_created_table_has_a_sharding_key_and_a_distributed_table() -> None:
    statements = all_cluster_statements()
    for name in created_tables():
        assert name in cluster.SHARDING_KEYS
        assert sum(s.startswith(f"CREATE TABLE IF NOT EXISTS {name} {ON} AS {name}_local") for s in statements) == 1


def test_views_read_the_distributed_tables() -> None:
    views = [s for s in all_cluster_statements() if s.startswith("CREATE VIEW")]
    assert views
    for view in views:
        assert ON in view
        assert "_local" not in view


def test_column_alters_reach_local_and_distributed_tables_index_alters_only_local() -> None:
    add_column = "ALTER TABLE timeline ADD COLUMN IF NOT EXISTS person_id String"
    assert cluster.statements_for(add_column, C) == [
        f"ALTER TABLE timeline_local {ON} ADD COLUMN IF NOT EXISTS person_id String",
        f"ALTER TABLE timeline {ON} ADD COLUMN IF NOT EXISTS person_id String",
    ]
    add_index = "ALTER TABLE timeline ADD INDEX IF NOT EXISTS idx_x email TYPE bloom_filter GRANULARITY 4"
    assert cluster.statements_for(add_index, C) == [
        f"ALTER TABLE timeline_local {ON} ADD INDEX IF NOT EXISTS idx_x email TYPE bloom_filter GRANULARITY 4"]


def test_ledger_is_replicated_across_the_whole_cluster() -> None:
    ledger = cluster.ledger(C)
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/schema_migrations'" in ledger
    assert "{shard}" not in ledger.split("(", 2)[2].split(",")[0]  # one replica set, not one per shard


def test_unknown_statements_and_tables_without_sharding_key_are_refused() -> None:
    with pytest.raises(ValueError, match="no cluster variant"):
        cluster.statements_for("DROP TABLE timeline", C)
    with pytest.raises(ValueError, match="sharding key"):
        cluster.statements_for("CREATE TABLE IF NOT EXISTS mystery (a String) ENGINE = MergeTree ORDER BY a", C)
    with pytest.raises(ValueError, match="cluster name"):
        cluster.statements_for("ALTER TABLE timeline ADD COLUMN x String", "bad name; DROP")


def test_script_lists_every_migration_in_order() -> None:
    for name in (None, C):
        text = cluster.script(name)
        positions = [text.index(f"-- migration {m.version}: ") for m in ddl.MIGRATIONS]
        assert positions == sorted(positions)
        assert text.startswith("CREATE TABLE IF NOT EXISTS schema_migrations")
    assert ON not in cluster.script(None)


def test_a_single_node_layout_change_runs_nothing_on_a_cluster() -> None:
    [partitioned] = [m for m in ddl.MIGRATIONS if m.version == 13]
    assert partitioned.single_node
    assert cluster.migration_statements(partitioned, C) == cluster.backfill_statements(partitioned) == []
    assert "event_resolution_v13" not in cluster.script(C)


def test_a_materialized_views_new_query_reads_the_local_tables_on_every_node() -> None:
    out = cluster.statements_for("ALTER TABLE account_events_mv MODIFY QUERY SELECT account_id, 0 AS deleted "
                                 "FROM event_resolution ARRAY JOIN accounts AS account_id", C)
    assert out == [f"ALTER TABLE account_events_mv {ON} MODIFY QUERY SELECT account_id, 0 AS deleted "
                   "FROM event_resolution_local ARRAY JOIN accounts AS account_id"]
    (mv,) = [s for s in cluster.migration_statements(ddl.MIGRATIONS[16], C) if "MODIFY QUERY" in s]
    assert "FROM event_resolution_local" in mv and "utm_source, lead_source" in mv
