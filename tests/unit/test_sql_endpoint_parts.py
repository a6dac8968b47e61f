"""Pure parts of the analysts' SQL endpoint and CLI (the endpoint itself: tests/integration/test_sql_endpoint.py)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import click
import pytest

from sinks.clickhouse import ddl, sql_guard
from streams.cli.sql_commands import since_of
from streams.web.sql_endpoint import content_type, loopback


def test_no_view_reads_a_hidden_column_so_the_guard_may_check_only_what_a_query_names() -> None:
    for migration in ddl.MIGRATIONS:
        for statement in migration.statements:
            if re.search(r"CREATE\s+(OR\s+REPLACE\s+)?(MATERIALIZED\s+)?VIEW", statement, re.IGNORECASE):
                for table in sql_guard.HIDDEN:
                    assert not re.search(rf"\b{table}\b", statement), f"a view reads {table}: extend sql_guard"


def test_query_tree_with_a_hidden_column_or_a_foreign_table_function_is_refused() -> None:
    tree = ("QUERY id: 0\n  PROJECTION\n    LIST id: 1, nodes: 1\n"
            "      COLUMN id: 2, column_name: payload, result_type: String, source_id: 3\n"
            "  JOIN TREE\n    TABLE id: 3, alias: __table1, table_name: default.dead_letters\n")
    with pytest.raises(sql_guard.Refused, match="not readable"):
        sql_guard.check_tree(tree)
    sql_guard.check_tree(tree.replace("column_name: payload", "column_name: reasons"))
    with pytest.raises(sql_guard.Refused, match="merge"):
        sql_guard.check_tree("    TABLE_FUNCTION id: 3, alias: __table1, table_function_name: merge\n")
    sql_guard.check_tree("    TABLE_FUNCTION id: 3, alias: __table1, table_function_name: numbers\n")


def test_since_takes_relative_spans_and_iso_dates() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
    assert since_of("7d", now) == datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
    assert since_of("30m", now) == datetime(2026, 12, 5, 11, 30, tzinfo=timezone.utc)
    assert since_of("2026-11-01") == datetime(2026, 11, 1, tzinfo=timezone.utc)
    with pytest.raises(click.BadParameter):
        since_of("last tuesday")


def test_content_types_and_loopback() -> None:
    assert content_type("JSONEachRow").startswith("application/json")
    assert content_type("CSVWithNames").startswith("text/csv")
    assert content_type("Native") == content_type("Parquet") == "application/octet-stream"
    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost") and not loopback("0.0.0.0")


def test_a_query_stopped_by_a_cap_does_not_leak_its_result_into_the_next(tmp_path) -> None:
    """chDB hands the rest of a stopped query's result to the next query on the connection: the
    session drains it, so the next answer is its own."""
    from sinks.clickhouse.embedded_sql import AnalystSession, EngineError, Limits

    session = AnalystSession(str(tmp_path / "store"), Limits(max_result_rows=100_000))
    try:
        with pytest.raises(EngineError, match="max rows"):
            session.run("SELECT number FROM numbers(200000)", "Native")
        assert session.run("SELECT 1").body == b"1\n"
    finally:
        session.close()
