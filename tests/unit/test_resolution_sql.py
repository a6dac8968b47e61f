"""The scoped refresh: what events resolve through is computed once, in Python, and passed in.

The SQL's own derivation (``_DERIVED``, kept for the full resolution) is inlined by ClickHouse
once per use, and its planning dominated every refresh (docs/benchmarks.md, sixteenth session).
test_resolution_incremental.py checks on real chDB that both give the same resolution."""

from __future__ import annotations

import re

from sinks.clickhouse import resolution


def test_the_scoped_select_takes_the_keymap_and_merges_as_parameters() -> None:
    sql = resolution.resolve_sql(scoped=True)
    assert sorted(re.findall(r"\{(\w+):", sql)) == ["keymap", "merges", "pairs"]
    assert "identity_links" not in sql and "people AS" not in sql
    assert "people AS" in resolution.resolve_sql(scoped=False)  # the full resolution derives it in SQL


def test_keymap_says_what_the_sql_derivation_says() -> None:
    links = [
        ("person_account", "u1", "A", 10, 100), ("person_account", "u1", "B", 100, 200),
        ("person_alias", "e@x.co", "u1", 0, 999),  # alias → member: the alias gets u1's accounts
        ("person_alias", "u1", "u9", 0, 999),  # member → alias: u9 gets them too
        ("device", "d1", "e@x.co", 50, 150),  # a device's interval intersects its person's
        ("device", "d2", "nobody", 0, 10),  # a device of a person without an account: no key
        ("account_merge", "B", "Z", 0, 1), ("account_merge", "B", "C", 0, 1),  # the smallest wins
    ]
    got = resolution.keymap(links)
    assert got["merges"] == [("B", "C")]
    assert got["keymap"] == sorted([
        ("p", "u1", "A", 10, 100), ("p", "u1", "B", 100, 200),
        ("p", "e@x.co", "A", 10, 100), ("p", "e@x.co", "B", 100, 200),
        ("p", "u9", "A", 10, 100), ("p", "u9", "B", 100, 200),
        ("d", "d1", "A", 50, 100), ("d", "d1", "B", 100, 150),
    ])


def test_scope_passes_the_keymap_of_the_links_it_read() -> None:
    class Store:
        def query(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]:
            if sql.startswith("SELECT DISTINCT arrayJoin(if("):
                return [], [("p:u1",)]
            if sql.startswith("SELECT src, dsts"):
                return [], []
            return [], [("person_account", "u1", "A", 1, 2), ("account_merge", "A", "B", 3, 4)]

    params = resolution._scope(Store(), [("", "e1")])  # type: ignore[arg-type]
    assert params == {"pairs": [("", "e1")], "keymap": [("p", "u1", "A", 1, 2)], "merges": [("A", "B")]}
