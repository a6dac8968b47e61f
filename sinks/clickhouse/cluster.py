"""Cluster variants of the migrations in :mod:`sinks.clickhouse.ddl` (ClickHouse server clusters).

Each single-node statement becomes one or more statements run ``ON CLUSTER``:

- ``CREATE TABLE t (...) ENGINE = XMergeTree[(args)]`` →
  ``t_local`` with ``ReplicatedXMergeTree('/clickhouse/tables/{shard}/{database}/t', '{replica}'[, args])``
  on every node, and ``t`` as ``Distributed(cluster, currentDatabase(), t_local, <sharding key>)``;
  inserts and queries keep using ``t``. Sharding keys keep an account's rows (or an identifier's
  links) on one shard: see :data:`SHARDING_KEYS`.
- ``CREATE VIEW`` / ``CREATE OR REPLACE VIEW`` → the same view ``ON CLUSTER``; it reads the Distributed tables.
- ``CREATE MATERIALIZED VIEW v TO t AS SELECT … FROM s`` → ``ON CLUSTER``, from ``s_local`` to ``t_local``:
  it fires on every replica's inserts into ``s_local`` and writes next to them (same shard).
- ``ALTER TABLE v MODIFY QUERY SELECT … FROM s`` (a materialized view) → ``ON CLUSTER``, from ``s_local``.
- ``ALTER TABLE t ... COLUMN ...`` → on ``t_local`` and on ``t``; other ALTERs (indexes,
  settings) → on ``t_local`` only (a Distributed table has no indexes).

A migration's ``backfill`` (``INSERT … SELECT``) runs once, not on every node: through the
Distributed tables, waiting until every shard has its rows (``distributed_foreground_insert``).

``non_replicated_deduplication_window`` is dropped: replicated tables deduplicate inserted
blocks (and honour ``insert_deduplication_token``) by default. Anything else raises
:class:`ValueError`, so a new kind of statement gets a cluster counterpart before it ships.
``{shard}`` and ``{replica}`` are server macros; ``{database}`` is expanded by ClickHouse.
"""

from __future__ import annotations

import re
import textwrap
from typing import Protocol

from sinks.clickhouse.ddl import _LEDGER, MIGRATIONS, Migration

SHARDING_KEYS: dict[str, str] = {
    "timeline": "cityHash64(account_id)",
    "dead_letters": "cityHash64(dlq_id)",
    "identity_links": "cityHash64(src)",
    "identity_overrides": "cityHash64(src)",
    "stage_changes": "cityHash64(account_id)",
    "account_scores": "cityHash64(account_id)",
    "contact_scores": "cityHash64(account_id)",
    "definitions_comparisons": "cityHash64(run_id)",
    "alerts": "cityHash64(account_id)",
    # lookup indexes (migration 6): filled on the shard of the row they index by materialized views;
    # only the one-off backfill goes through this key (lookups read every shard).
    "identity_links_by_dst": "cityHash64(src)",
    "timeline_by_key": "cityHash64(event_id)",
    "channel_definitions": "cityHash64(channel)",
    "event_resolution": "cityHash64(event_id)",
    # filled next to event_resolution by materialized views; a tombstone goes to its event's shard
    "account_events": "cityHash64(event_id)",
    "resolution_history": "cityHash64(event_id)",
    # written again per account by the store process (resolution.refresh_summaries)
    "account_summaries": "cityHash64(account_id)",
    "alert_deliveries": "cityHash64(alert_id)",
    "privacy_requests": "cityHash64(request_id)",
}
"""The Distributed sharding key of every table the migrations create."""

LOCAL_SUFFIX = "_local"
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_.{}-]+$")
_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (?P<name>\w+)\s*\(", re.S)
_ENGINE = re.compile(r"ENGINE\s*=\s*(?P<engine>\w*MergeTree)(?:\s*\((?P<args>[^()]*)\))?")
_CREATE_VIEW = re.compile(r"^CREATE VIEW IF NOT EXISTS (?P<name>\w+)\s+AS\b", re.S)
_REPLACE_VIEW = re.compile(r"^CREATE OR REPLACE VIEW (?P<name>\w+)\s+AS\b", re.S)
_CREATE_MV = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<name>\w+)\s+TO\s+(?P<target>\w+)\s+AS\b", re.S)
_FROM = re.compile(r"\bFROM\s+(?P<table>\w+)\b")
_ALTER = re.compile(r"^ALTER TABLE (?P<name>\w+)\s+(?P<rest>.*)$", re.S)
_COLUMN_ALTER = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b")
_DEDUP_SETTING = re.compile(r"\s*SETTINGS\s+non_replicated_deduplication_window\s*=\s*\d+\s*$")

LEDGER_PATH = "/clickhouse/tables/all/{database}/schema_migrations"
"""One replica set across the whole cluster (no ``{shard}``), so every node sees the ledger."""


class _Runs(Protocol):
    def command(self, sql: str, parameters: dict | None = None) -> object: ...

    def query(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]: ...


def _on(cluster: str) -> str:
    if not _CLUSTER_NAME.match(cluster):
        raise ValueError(f"invalid cluster name {cluster!r}")
    return f"ON CLUSTER '{cluster}'"


def clean(statement: str) -> str:
    """A migration statement without the indentation of its source."""
    return textwrap.dedent(statement).strip()


def _local(table: str) -> str:
    if table not in SHARDING_KEYS:
        raise ValueError(f"table {table!r} has no sharding key: add it to sinks.clickhouse.cluster.SHARDING_KEYS")
    return table + LOCAL_SUFFIX


def _create_table(name: str, sql: str, cluster: str) -> list[str]:
    key = SHARDING_KEYS.get(name)
    if key is None:
        raise ValueError(f"table {name!r} has no sharding key: add it to sinks.clickhouse.cluster.SHARDING_KEYS")
    engine = _ENGINE.search(sql)
    if engine is None:
        raise ValueError(f"table {name!r}: only *MergeTree engines have a cluster variant")
    args = ", ".join(["'/clickhouse/tables/{shard}/{database}/" + name + "'", "'{replica}'"]
                     + ([engine["args"].strip()] if engine["args"] and engine["args"].strip() else []))
    local = sql[: engine.start()] + f"ENGINE = Replicated{engine['engine']}({args})" + sql[engine.end():]
    local = _DEDUP_SETTING.sub("", local)
    local = _CREATE_TABLE.sub(f"CREATE TABLE IF NOT EXISTS {name}{LOCAL_SUFFIX} {_on(cluster)} (", local, count=1)
    distributed = (f"CREATE TABLE IF NOT EXISTS {name} {_on(cluster)} AS {name}{LOCAL_SUFFIX}\n"
                   f"ENGINE = Distributed('{cluster}', currentDatabase(), {name}{LOCAL_SUFFIX}, {key})")
    return [local, distributed]


def statements_for(statement: str, cluster: str) -> list[str]:
    """The cluster counterpart(s) of one single-node migration statement."""
    sql = clean(statement)
    if match := _CREATE_TABLE.match(sql):
        return _create_table(match["name"], sql, cluster)
    if match := _CREATE_VIEW.match(sql):
        return [f"CREATE VIEW IF NOT EXISTS {match['name']} {_on(cluster)} AS" + sql[match.end():]]
    if match := _REPLACE_VIEW.match(sql):
        return [f"CREATE OR REPLACE VIEW {match['name']} {_on(cluster)} AS" + sql[match.end():]]
    if match := _CREATE_MV.match(sql):
        select = _FROM.sub(lambda m: f"FROM {_local(m['table'])}", sql[match.end():])
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {match['name']} {_on(cluster)} "
                f"TO {_local(match['target'])} AS" + select]
    if match := _ALTER.match(sql):
        name, rest = match["name"], match["rest"]
        if rest.startswith("MODIFY QUERY "):  # a materialized view's query: it reads the local tables
            select = _FROM.sub(lambda m: f"FROM {_local(m['table'])}", rest)
            return [f"ALTER TABLE {name} {_on(cluster)} {select}"]
        local = [f"ALTER TABLE {name}{LOCAL_SUFFIX} {_on(cluster)} {rest}"]
        return local + ([f"ALTER TABLE {name} {_on(cluster)} {rest}"] if _COLUMN_ALTER.match(rest) else [])
    raise ValueError(f"no cluster variant for statement: {sql[:80]!r}… (teach sinks.clickhouse.cluster)")


def migration_statements(migration: Migration, cluster: str) -> list[str]:
    """The migration's statements ``ON CLUSTER`` (none for a single node's layout change: a
    cluster's local tables keep theirs, and the migration is only recorded)."""
    if migration.single_node:
        return []
    return [out for statement in migration.statements for out in statements_for(statement, cluster)]


def backfill_statements(migration: Migration) -> list[str]:
    """The migration's backfill, run once through the Distributed tables (synchronously)."""
    if migration.single_node:
        return []
    return [clean(s) + "\nSETTINGS distributed_foreground_insert = 1" for s in migration.backfill]


def ledger(cluster: str) -> str:
    """``schema_migrations`` replicated to every node (replica name unique per shard and replica)."""
    return (f"CREATE TABLE IF NOT EXISTS schema_migrations {_on(cluster)} (\n"
            "    version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)\n"
            f") ENGINE = ReplicatedReplacingMergeTree('{LEDGER_PATH}', '{{shard}}-{{replica}}') ORDER BY version")


def applied(store: _Runs, cluster: str) -> list[int]:
    store.command(ledger(cluster))
    _, rows = store.query("SELECT DISTINCT version FROM schema_migrations ORDER BY version")
    return [int(r[0]) for r in rows]


def migrate(store: _Runs, cluster: str) -> list[Migration]:
    """Apply every missing migration's cluster variant, in order; return those applied."""
    done = set(applied(store, cluster))
    ran = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration_statements(migration, cluster) + backfill_statements(migration):
            store.command(statement)
        store.command(
            "INSERT INTO schema_migrations (version, name) VALUES ({v:UInt32}, {n:String})",
            {"v": migration.version, "n": migration.name},
        )
        ran.append(migration)
    return ran


def script(cluster: str | None) -> str:
    """Every migration as one SQL script (single node, or ``ON CLUSTER cluster``)."""
    parts = [clean(ledger(cluster)) if cluster else clean(_LEDGER)]
    for migration in MIGRATIONS:
        parts.append(f"-- migration {migration.version}: {migration.name}")
        statements = (migration_statements(migration, cluster) + backfill_statements(migration) if cluster
                      else [clean(s) for s in migration.statements + migration.backfill])
        parts.extend(statements)
    return "".join(p + ("\n" if p.startswith("--") else ";\n\n") for p in parts).rstrip() + "\n"
