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


TIMELINE_OUT_COLUMNS = [c.strip().split(" AS ")[-1] for c in _TIMELINE_COLUMNS.replace("\n", " ").split(",")]

_LINKS_SQL = """
SELECT kind, src, dst, vf, vt
FROM (SELECT kind, src, dsts, valid_froms, valid_tos FROM identity_links FINAL WHERE {where})
ARRAY JOIN dsts AS dst, valid_froms AS vf, valid_tos AS vt
"""

_EVENTS_SQL = f"""
SELECT {_TIMELINE_COLUMNS} FROM timeline FINAL
WHERE {{where}}
"""


def _links(store: _Queries, where: str, params: dict[str, Any], unmerged: set[tuple[str, str, str]]) -> list[tuple]:
    _, rows = store.query(_LINKS_SQL.format(where=where), params)
    return [r for r in rows if (r[0], r[1], r[2]) not in unmerged]


def _within(intervals: dict[str, list[tuple]], key: str, when: Any) -> bool:
    return any(vf <= when < vt for vf, vt in intervals.get(key, ()))


def timeline(store: _Queries, account_id: str, limit: int = 1000) -> tuple[list[str], list[tuple]]:
    """One account's journey in event-time order, each event once, identities resolved now.

    The same semantics as :data:`RESOLVED_TIMELINE_SQL`, run as a few small keyed queries
    (links of the account, then its events by account, person ids and device ids) so that
    one account's page stays fast on a large store.
    """
    _, over = store.query("SELECT kind, src, dst FROM identity_overrides FINAL WHERE action = 'unmerge'")
    unmerged = {(k, s, d) for k, s, d in over}
    accts = {account_id} | {
        r[1] for r in _links(store, "kind = 'account_merge' AND has(dsts, {a:String})", {"a": account_id}, unmerged)
    }
    members = _links(store, "kind = 'person_account' AND hasAny(dsts, {accts:Array(String)})",
                     {"accts": sorted(accts)}, unmerged)
    people: dict[str, list[tuple]] = {}
    for _, person, dst, vf, vt in members:
        if dst in accts:
            people.setdefault(person, []).append((vf, vt))
    if people:
        names = sorted(people)
        aliases = _links(store, "kind = 'person_alias' AND (src IN {p:Array(String)} OR hasAny(dsts, {p:Array(String)}))",
                         {"p": names}, unmerged)
        for _, src, dst, _, _ in aliases:
            if dst in people and src not in people:
                people[src] = list(people[dst])
            elif src in people and dst not in people:
                people[dst] = list(people[src])
    devices: dict[str, list[tuple]] = {}
    if people:
        for _, device, person, vf, vt in _links(store, "kind = 'device' AND hasAny(dsts, {p:Array(String)})",
                                                {"p": sorted(people)}, unmerged):
            for pf, pt in people.get(person, ()):
                lo, hi = max(vf, pf), min(vt, pt)
                if lo < hi:
                    devices.setdefault(device, []).append((lo, hi))
    _, rows = store.query(_EVENTS_SQL.format(where="account_id IN {accts:Array(String)}"), {"accts": sorted(accts)})
    cols = TIMELINE_OUT_COLUMNS
    out = {r[cols.index("event_id")]: r for r in rows}
    at, ev = cols.index("event_time"), cols.index("event_id")
    if people:
        _, rows = store.query(_EVENTS_SQL.format(
            where="account_id = '' AND (user_id IN {p:Array(String)} OR email IN {p:Array(String)} "
                  "OR contact_id IN {p:Array(String)})"), {"p": sorted(people)})
        ids = [cols.index(c) for c in ("user_id", "email", "contact_id")]
        for r in rows:
            if any(r[i] and _within(people, r[i], r[at]) for i in ids):
                out.setdefault(r[ev], r)
    if devices:
        _, rows = store.query(_EVENTS_SQL.format(
            where="account_id = '' AND user_id = '' AND email = '' AND contact_id = '' "
                  "AND anonymous_id IN {d:Array(String)}"), {"d": sorted(devices)})
        anon = cols.index("anonymous_id")
        for r in rows:
            if _within(devices, r[anon], r[at]):
                out.setdefault(r[ev], r)
    ordered = sorted(out.values(), key=lambda r: (r[at], r[ev]))[:limit]
    return cols, ordered


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
