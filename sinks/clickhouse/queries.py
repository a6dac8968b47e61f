"""The analyst queries behind the CLI and the API (one query layer for both)."""

from __future__ import annotations

from typing import Any, Protocol


class _Queries(Protocol):
    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]: ...


TIMELINE_SQL = """
SELECT event_time, side, channel, event_type, name, contact_id, email, rep_id, rep_role,
       source, event_id
FROM timeline FINAL
WHERE account_id = {account:String}
ORDER BY event_time, event_id
LIMIT 1 BY event_id
LIMIT {limit:UInt32}
"""


def timeline(store: _Queries, account_id: str, limit: int = 1000) -> tuple[list[str], list[tuple]]:
    """One account's journey in event-time order, each event once."""
    return store.query(TIMELINE_SQL, {"account": account_id, "limit": limit})


def accounts(store: _Queries, limit: int = 100) -> tuple[list[str], list[tuple]]:
    """Accounts with their event counts and last activity."""
    return store.query(
        """
        SELECT account_id, uniqExact(event_id) AS events, max(event_time) AS last_event
        FROM timeline FINAL WHERE account_id != ''
        GROUP BY account_id ORDER BY last_event DESC LIMIT {limit:UInt32}
        """,
        {"limit": limit},
    )


def dead_letters(store: _Queries, limit: int = 100) -> tuple[list[str], list[tuple]]:
    return store.query(
        """
        SELECT rejected_at, source_kind, source, stage, reasons, dlq_id
        FROM dead_letters FINAL ORDER BY rejected_at DESC LIMIT {limit:UInt32}
        """,
        {"limit": limit},
    )


def stats(store: _Queries) -> dict[str, int]:
    """Visible events and dead letters (deduplicated), for progress checks and health."""
    _, rows = store.query(
        "SELECT (SELECT uniqExact(event_id) FROM timeline), (SELECT count() FROM timeline), "
        "(SELECT uniqExact(dlq_id) FROM dead_letters)"
    )
    events, raw_rows, dead = rows[0]
    return {"events": int(events), "rows": int(raw_rows), "dead_letters": int(dead)}


def records(columns: list[str], rows: list[tuple]) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (datetimes as ISO-8601 UTC)."""
    out = []
    for row in rows:
        item = {}
        for col, value in zip(columns, row):
            if hasattr(value, "isoformat"):
                value = value.isoformat().replace("+00:00", "Z")
                if not value.endswith("Z") and "T" in value:
                    value += "Z"
            elif isinstance(value, (list, tuple)):
                value = list(value)
            item[col] = value
        out.append(item)
    return out
