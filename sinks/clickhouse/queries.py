"""The analyst queries behind the CLI and the API (one query layer for both)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
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

# Both read by primary key: PREWHERE holds conditions on sorting-key columns only, so it drops
# whole keys before FINAL (as if applied after it) and FINAL merges only the rows looked up;
# WHERE filters the current (FINAL) rows.
_LINKS_SQL = """
SELECT kind, src, dst, vf, vt
FROM (SELECT kind, src, dsts, valid_froms, valid_tos FROM identity_links FINAL PREWHERE {key} WHERE {where})
ARRAY JOIN dsts AS dst, valid_froms AS vf, valid_tos AS vt
"""

# The account's events, and candidates among the unattributed events (by person or device id,
# from the key index ``timeline_by_key``), each with how it belongs to the account (``_via``:
# 0 it names the account, 1 one of its people then, 2 a device of theirs then, 3 not at all; the
# intervals come as parallel arrays of keys and epoch milliseconds). Each event once (its row
# with the lowest ``_via``), in (event_time, event_id) order, after the cursor, at most ``limit``.
_EVENTS_SQL = f"""
SELECT {', '.join(TIMELINE_OUT_COLUMNS)}{{extra}} FROM (
  SELECT * FROM (
    SELECT {_TIMELINE_COLUMNS}{{extra}}, multiIf(
      account_id IN {{accts:Array(String)}}, 0,
      arrayExists((k, f, t) -> k != '' AND (k = user_id OR k = email OR k = contact_id)
                  AND toUnixTimestamp64Milli(event_time) >= f AND toUnixTimestamp64Milli(event_time) < t,
                  {{pk:Array(String)}}, {{pf:Array(Int64)}}, {{pt:Array(Int64)}}), 1,
      user_id = '' AND email = '' AND contact_id = '' AND arrayExists((k, f, t) -> k = anonymous_id
                  AND toUnixTimestamp64Milli(event_time) >= f AND toUnixTimestamp64Milli(event_time) < t,
                  {{dk:Array(String)}}, {{df:Array(Int64)}}, {{dt:Array(Int64)}}), 2,
      3) AS _via
    FROM timeline FINAL
    PREWHERE account_id IN {{accts:Array(String)}}
      OR (account_id = '' AND event_id IN (SELECT event_id FROM timeline_by_key WHERE key IN {{keys:Array(String)}}))
    WHERE account_id IN {{accts:Array(String)}}
      OR user_id IN {{people:Array(String)}} OR email IN {{people:Array(String)}} OR contact_id IN {{people:Array(String)}}
      OR (user_id = '' AND email = '' AND contact_id = '' AND anonymous_id IN {{devices:Array(String)}})
  )
  WHERE _via < 3
  ORDER BY event_id, _via
  LIMIT 1 BY event_id
)
WHERE (toUnixTimestamp64Milli(event_time), event_id) > ({{after_ms:Int64}}, {{after_id:String}})
ORDER BY event_time, event_id
LIMIT {{limit:UInt32}}
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_BEFORE_ALL = -(2**62)
"""The cursor of the first page: before every event time."""


def _ms(when: datetime) -> int:
    """Epoch milliseconds of a store time (DateTime64(3, 'UTC'); naive means UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - _EPOCH) // timedelta(milliseconds=1)


def cursor_of(event_time: datetime, event_id: str) -> str:
    """The keyset cursor after an event: ``<event time, ISO-8601 UTC, ms>|<event id>``."""
    if event_time.tzinfo is None:
        event_time = event_time.replace(tzinfo=timezone.utc)
    stamp = event_time.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{stamp}|{event_id}"


def parse_cursor(cursor: str) -> tuple[int, str]:
    """``(epoch ms, event id)`` of a cursor from :func:`cursor_of`, or ValueError saying why."""
    stamp, sep, event_id = cursor.partition("|")
    try:
        if not sep or len(cursor) > 1000:
            raise ValueError(cursor)
        return _ms(datetime.fromisoformat(stamp.replace("Z", "+00:00"))), event_id
    except ValueError:
        raise ValueError("after must be a cursor from a previous page (<event time>|<event id>, "
                         "as that page's `next` says)") from None


def _links(store: _Queries, kind: str, ids: list[str], params: dict[str, Any], where: str,
           unmerged: set[tuple[str, str, str]], srcs: str = "") -> list[tuple]:
    """Current ``kind`` links whose destinations include one of ``ids`` (and, with ``srcs``, those
    whose source is in that array parameter), as ``(kind, src, dst, vf, vt)`` rows without the
    unmerged ones. Candidate sources come from the reverse index ``identity_links_by_dst`` (it may
    hold stale ones); ``where`` is the exact condition on the current link row."""
    candidates = ("SELECT src FROM identity_links_by_dst "
                  "WHERE kind = {kind:String} AND dst IN {ids:Array(String)}")
    if srcs:
        candidates += f" UNION ALL SELECT arrayJoin({{{srcs}:Array(String)}})"
    key = f"kind = {{kind:String}} AND src IN ({candidates})"
    _, rows = store.query(_LINKS_SQL.format(key=key, where=where), {**params, "kind": kind, "ids": ids})
    return [r for r in rows if (r[0], r[1], r[2]) not in unmerged]


def _resolve(store: _Queries, account_id: str) -> tuple[set[str], dict[str, list[tuple]], dict[str, list[tuple]]]:
    """The account and those merged into it; its people and devices with their validity intervals."""
    _, over = store.query("SELECT kind, src, dst FROM identity_overrides FINAL WHERE action = 'unmerge'")
    unmerged = {(k, s, d) for k, s, d in over}
    accts = {account_id} | {r[1] for r in _links(store, "account_merge", [account_id], {"a": account_id},
                                                 "has(dsts, {a:String})", unmerged)}
    members = _links(store, "person_account", sorted(accts), {}, "hasAny(dsts, {ids:Array(String)})", unmerged)
    people: dict[str, list[tuple]] = {}
    for _, person, dst, vf, vt in members:
        if dst in accts:
            people.setdefault(person, []).append((vf, vt))
    devices: dict[str, list[tuple]] = {}
    if not people:
        return accts, people, devices
    names = sorted(people)
    aliases = _links(store, "person_alias", names, {"p": names},
                     "src IN {p:Array(String)} OR hasAny(dsts, {p:Array(String)})", unmerged, srcs="p")
    for _, src, dst, _, _ in aliases:
        if dst in people and src not in people:
            people[src] = list(people[dst])
        elif src in people and dst not in people:
            people[dst] = list(people[src])
    for _, device, person, vf, vt in _links(store, "device", sorted(people), {},
                                            "hasAny(dsts, {ids:Array(String)})", unmerged):
        for pf, pt in people.get(person, ()):
            lo, hi = max(vf, pf), min(vt, pt)
            if lo < hi:
                devices.setdefault(device, []).append((lo, hi))
    return accts, people, devices


def timeline(store: _Queries, account_id: str, limit: int = 1000,
             properties: bool = False, after: str | None = None) -> tuple[list[str], list[tuple]]:
    """One account's journey in event-time order, each event once, identities resolved now.

    The same semantics as :data:`RESOLVED_TIMELINE_SQL`, run as a few small keyed queries
    (links of the account, then its events by account, person ids and device ids) so that
    one account's page stays fast on a large store: links are found by destination through
    ``identity_links_by_dst``, unattributed events by identifier through ``timeline_by_key``
    (migration 6), and then read by primary key and filtered by the same exact conditions.
    With ``properties``, each row also has the event's properties (JSON): what a journey
    rebuild reads (:mod:`streams.agents.rebuilds`). The query itself is bounded (``LIMIT``);
    ``after`` (a :func:`cursor_of` cursor) pages on: the events after that one, in the same order
    (:func:`timeline_page`).
    """
    if not account_id:
        raise ValueError("an account id is required (the empty id would read every unattributed event)")
    after_ms, after_id = parse_cursor(after) if after else (_BEFORE_ALL, "")
    accts, people, devices = _resolve(store, account_id)
    cols = TIMELINE_OUT_COLUMNS + (["properties"] if properties else [])
    sql = _EVENTS_SQL.replace("{extra}", ", properties" if properties else "")
    pk, pf, pt = _intervals(people)
    dk, df, dt = _intervals(devices)
    _, rows = store.query(sql, {"accts": sorted(accts), "keys": sorted(people.keys() | devices.keys()),
                                "people": sorted(people), "devices": sorted(devices),
                                "pk": pk, "pf": pf, "pt": pt, "dk": dk, "df": df, "dt": dt,
                                "after_ms": after_ms, "after_id": after_id, "limit": limit})
    return cols, rows


def _intervals(intervals: dict[str, list[tuple]]) -> tuple[list[str], list[int], list[int]]:
    """Parallel arrays (key, from ms, to ms) of every validity interval, for the query."""
    flat = [(key, _ms(vf), _ms(vt)) for key in sorted(intervals) for vf, vt in intervals[key]]
    return [k for k, _, _ in flat], [f for _, f, _ in flat], [t for _, _, t in flat]


# The read path of the timeline (migration 14): one account's events as ``event_resolution``
# resolved them — the resolution every report reads —, from ``account_events``, ordered by
# account: one range read instead of keyed look-ups (docs/benchmarks.md).
_INDEXED_SQL = f"""
SELECT {', '.join('ingest_source AS source' if c == 'source' else c for c in TIMELINE_OUT_COLUMNS)}
FROM account_events FINAL
PREWHERE account_id = {{account:String}}
WHERE (toUnixTimestamp64Milli(event_time), event_id) > ({{after_ms:Int64}}, {{after_id:String}})
ORDER BY event_time, event_id
LIMIT {{limit:UInt32}}
"""


def account_timeline(store: _Queries, account_id: str, limit: int = 1000,
                     after: str | None = None) -> tuple[list[str], list[tuple]]:
    """What the API, the CLI and the UI show: :func:`timeline`'s rows, read from
    ``account_events`` (kept by the store process with the resolution the reports read; the
    same events as :func:`timeline` once the store has resolved them, tested).

    An account merged into another (a ``domain:`` account into the CRM account its people are
    found in) has no events of its own any more: the reports count them under the account it is
    merged into (:func:`canonical_account`), and so does its timeline — one company, one journey,
    whichever of its ids is asked for. An account ``account_events`` holds nothing for (events
    the store has not resolved yet) is resolved at query time by :func:`timeline`.

    The source is chosen per account, not per page: a page past the end of an account that
    ``account_events`` holds is empty, not a query-time page, so the pages of one account
    never mix two resolutions (which could repeat or skip events while the store catches up)."""
    if not account_id:
        raise ValueError("an account id is required (the empty id would read every unattributed event)")
    after_ms, after_id = parse_cursor(after) if after else (_BEFORE_ALL, "")
    params = {"account": account_id, "after_ms": after_ms, "after_id": after_id, "limit": limit}
    cols, rows = store.query(_INDEXED_SQL, params)
    if rows or (after and _indexed(store, account_id)):
        return TIMELINE_OUT_COLUMNS, rows
    shown = canonical_account(store, account_id) or account_id
    if shown != account_id:
        cols, rows = store.query(_INDEXED_SQL, {**params, "account": shown})
        if rows or (after and _indexed(store, shown)):
            return TIMELINE_OUT_COLUMNS, rows
    return timeline(store, shown, limit, after=after)


# account_merges_v's answer for one account, read by key (the view groups every merge: ~25 ms
# at 10M events against ~8 ms for this).
_CANONICAL_SQL = """
SELECT min(dst) FROM (SELECT src, dsts FROM identity_links FINAL
                      PREWHERE kind = 'account_merge' AND src = {account:String})
ARRAY JOIN dsts AS dst
WHERE ('account_merge', src, dst) NOT IN (SELECT kind, src, dst FROM identity_overrides FINAL WHERE action = 'unmerge')
"""


def canonical_account(store: _Queries, account_id: str) -> str:
    """The account ``account_id`` is merged into now (``account_merges_v``: the least of its
    current merge links, manual unmerges removed), or ``""`` when it is not merged."""
    _, rows = store.query(_CANONICAL_SQL, {"account": account_id})
    return str(rows[0][0]) if rows and rows[0][0] else ""


def _indexed(store: _Queries, account_id: str) -> bool:
    """Whether ``account_events`` shows any event under the account (then its timeline reads it)."""
    _, rows = store.query("SELECT 1 FROM account_events FINAL PREWHERE account_id = {account:String} LIMIT 1",
                          {"account": account_id})
    return bool(rows)


def timeline_page(store: _Queries, account_id: str, limit: int = 1000,
                  after: str | None = None) -> tuple[list[str], list[tuple], str | None]:
    """One page of :func:`account_timeline`: its rows and the cursor of the next page (None: no more)."""
    cols, rows = account_timeline(store, account_id, limit + 1, after=after)
    if len(rows) <= limit:
        return cols, rows, None
    at, ev = cols.index("event_time"), cols.index("event_id")
    return cols, rows[:limit], cursor_of(rows[limit - 1][at], rows[limit - 1][ev])


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
    """Visible events and dead letters (deduplicated), for progress checks and health, and how
    many events the reports can see yet (``resolved``: resolved to their accounts, which the store
    process does right after it writes them — the reports and ``journey_events`` read that)."""
    _, rows = store.query(
        "SELECT (SELECT uniqExact(event_id) FROM timeline), (SELECT count() FROM timeline), "
        "(SELECT uniqExact(dlq_id) FROM dead_letters), (SELECT uniqExact(event_id) FROM event_resolution)"
    )
    events, raw_rows, dead, resolved = rows[0]
    return {"events": int(events), "rows": int(raw_rows), "dead_letters": int(dead), "resolved": int(resolved)}


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
