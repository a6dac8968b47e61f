"""Retention: a TTL on the raw events and the dead letters, set by the store process at start.

``JOURNEYS_RETENTION__EVENTS_DAYS`` applies to ``timeline``, ``event_resolution`` and the tables
derived from it, ``account_events`` and ``resolution_history`` (by event time), ``JOURNEYS_RETENTION__DEAD_LETTERS_DAYS`` to ``dead_letters`` (by rejection time); 0
keeps rows forever and removes a TTL set before. Idempotent: a table whose TTL is already the
wanted one is left alone (``MODIFY TTL`` re-evaluates every part, so it is not re-run at each
start). ClickHouse drops expired rows at merges (``merge_with_ttl_timeout``, 4 h by default).
"""

from __future__ import annotations

import re
from typing import Mapping, Protocol

EVENT_TABLES = (("timeline", "event_time"), ("event_resolution", "event_time"), ("account_events", "event_time"),
                ("resolution_history", "event_time"))
DEAD_LETTER_TABLES = (("dead_letters", "rejected_at"),)
_TTL = re.compile(r"\bTTL (?P<ttl>.+?)(?: SETTINGS |$)", re.S)


class _Runs(Protocol):
    def command(self, sql: str, parameters: dict | None = None) -> object: ...

    def query(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]: ...


def ttl_expression(column: str, days: int) -> str:
    """The TTL as ClickHouse shows it back in ``create_table_query`` ('' for none)."""
    return f"toDateTime({column}) + toIntervalDay({days})" if days > 0 else ""


def wanted(events_days: int, dead_letters_days: int) -> dict[str, str]:
    """Table → its TTL expression ('' for none)."""
    out = {table: ttl_expression(column, events_days) for table, column in EVENT_TABLES}
    out.update({table: ttl_expression(column, dead_letters_days) for table, column in DEAD_LETTER_TABLES})
    return out


def current_ttl(create_table_query: str) -> str:
    """The table TTL in a ``create_table_query`` ('' for none)."""
    match = _TTL.search(create_table_query)
    return match.group("ttl").strip() if match else ""


def plan(current: Mapping[str, str], want: Mapping[str, str]) -> list[str]:
    """The ALTERs that take the tables from their ``current`` TTLs to the wanted ones."""
    out = []
    for table, ttl in want.items():
        have = current.get(table, "")
        if have == ttl:
            continue
        out.append(f"ALTER TABLE {table} MODIFY TTL {ttl}" if ttl else f"ALTER TABLE {table} REMOVE TTL")
    return out


def apply(store: _Runs, events_days: int, dead_letters_days: int) -> list[str]:
    """Set the retention TTLs; the statements run (none when already as wanted)."""
    want = wanted(events_days, dead_letters_days)
    _, rows = store.query("SELECT name, create_table_query, engine FROM system.tables "
                          "WHERE database = currentDatabase() AND name IN {t:Array(String)}", {"t": sorted(want)})
    statements = plan({name: current_ttl(query) for name, query, _ in rows}, want)
    if statements and any(engine == "Distributed" for _, _, engine in rows):
        raise ValueError("retention on a cluster is not set by the store process: set the TTL on the "
                         "*_local tables ON CLUSTER (docs/operations.md, Retention)")
    for statement in statements:
        store.command(statement)
    return statements
