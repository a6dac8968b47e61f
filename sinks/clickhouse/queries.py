"""The analyst queries behind the CLI and the API (one query layer for both)."""

from __future__ import annotations

from typing import Any, Protocol


class _Queries(Protocol):
    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]: ...


_TIMELINE_COLUMNS = """event_time, side, channel, event_type, name, contact_id, email, rep_id, rep_role,
       source, event_id, anonymous_id, user_id, account_id AS direct_account_id, person_id"""

# Query-time identity resolution: an account's journey is
#   1. events that name the account (or an account merged into it) directly;
#   2. events of its people (and their aliases) while they belonged to it;
#   3. anonymous events of devices identified as those people, at the time they were theirs.
# Links come from the stream; overrides (manual unmerges) remove links; nothing is rewritten.
RESOLVED_TIMELINE_SQL = f"""
WITH
  links AS (
    SELECT kind, src, dst, vf, vt
    FROM (SELECT kind, src, dsts, valid_froms, valid_tos FROM identity_links FINAL)
    ARRAY JOIN dsts AS dst, valid_froms AS vf, valid_tos AS vt
    WHERE (kind, src, dst) NOT IN (
      SELECT kind, src, dst FROM identity_overrides FINAL WHERE action = 'unmerge')
  ),
  accts AS (
    SELECT {{account:String}} AS a
    UNION DISTINCT SELECT src FROM links WHERE kind = 'account_merge' AND dst = {{account:String}}
  ),
  members AS (SELECT src AS person, vf, vt FROM links WHERE kind = 'person_account' AND dst IN (SELECT a FROM accts)),
  people AS (
    SELECT person, vf, vt FROM members
    UNION ALL SELECT l.src, m.vf, m.vt FROM links l INNER JOIN members m ON l.dst = m.person
      WHERE l.kind = 'person_alias'
    UNION ALL SELECT l.dst, m.vf, m.vt FROM links l INNER JOIN members m ON l.src = m.person
      WHERE l.kind = 'person_alias'
  ),
  devices AS (
    SELECT l.src AS device, greatest(l.vf, p.vf) AS vf, least(l.vt, p.vt) AS vt
    FROM links l INNER JOIN people p ON l.dst = p.person WHERE l.kind = 'device'
  ),
  direct AS (
    SELECT * FROM timeline FINAL WHERE account_id IN (SELECT a FROM accts)
  ),
  by_person AS (
    SELECT t.* FROM (
      SELECT * FROM timeline FINAL
      WHERE account_id = '' AND (user_id IN (SELECT person FROM people)
        OR email IN (SELECT person FROM people) OR contact_id IN (SELECT person FROM people))
    ) AS t
    ARRAY JOIN arrayDistinct(arrayFilter(x -> x != '', [t.user_id, t.email, t.contact_id])) AS pkey
    INNER JOIN people p ON pkey = p.person
    WHERE t.event_time >= p.vf AND t.event_time < p.vt
  ),
  by_device AS (
    SELECT t.* FROM (
      SELECT * FROM timeline FINAL
      WHERE account_id = '' AND user_id = '' AND email = '' AND contact_id = ''
        AND anonymous_id IN (SELECT device FROM devices)
    ) AS t
    INNER JOIN devices d ON t.anonymous_id = d.device
    WHERE t.event_time >= d.vf AND t.event_time < d.vt
  )
SELECT {_TIMELINE_COLUMNS} FROM (
  SELECT * FROM direct UNION ALL SELECT * FROM by_person UNION ALL SELECT * FROM by_device
)
ORDER BY event_time, event_id
LIMIT 1 BY event_id
LIMIT {{limit:UInt32}}
"""


def timeline(store: _Queries, account_id: str, limit: int = 1000) -> tuple[list[str], list[tuple]]:
    """One account's journey in event-time order, each event once, identities resolved now."""
    return store.query(RESOLVED_TIMELINE_SQL, {"account": account_id, "limit": limit})


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
