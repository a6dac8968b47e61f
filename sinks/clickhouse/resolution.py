"""Query-time resolution in bulk: every stored event → the account(s) it resolves to now.

The same semantics as :func:`sinks.clickhouse.queries.timeline` (one account, keyed look-ups),
for many events at once:

1. an event naming an account directly (CRM id, group, email domain) belongs to it;
2. an event of a person (userId, email or CRM contact id, with aliases in both directions)
   belongs to the account the person was a member of at the event's time;
3. an anonymous event belongs, through the device's person at that time, to that person's
   account at that time.

Account merges are applied one level, as the timeline query does: an event whose account
``D`` is merged into ``C`` (``account_merge D → C``) resolves to ``C``. Manual unmerges
(``identity_overrides``) remove links first. ``accounts`` is sorted and empty for an
unattributed event; more than one entry means the event shows in several canonical timelines.

One SQL template (:func:`resolve_sql`) says this, rendered twice: over every event for the
``event_accounts`` view, and over a given set of events — with only the links those events
can reach read, by key, and what they resolve through computed from them by :func:`keymap`
(the same derivation as the SQL's ``_DERIVED``, tested against it) — to keep the
``event_resolution`` table current (:func:`refresh`):
the store process re-resolves the events of each timeline batch it writes, and the events a
batch of changed links or overrides can move (:func:`affected`). Reports read that table; the
timeline reads ``account_events``, the same answer by account (materialized views fill it on
each insert; :func:`refresh` then writes the tombstones of the accounts an event left), and
:func:`refresh` then writes ``account_summaries`` again — each account's events as arrays, one
row per account — for every account the events resolve or resolved to (:func:`summaries_sql`),
so a report over every account reads ~one row per account instead of every event.

Invariant (tested): for every account ``A`` that is not itself merged into another,
``timeline(A)`` holds exactly the events whose ``accounts`` contain ``A``.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Protocol, Sequence

from sinks.clickhouse.rows import LINK_COLUMNS, OVERRIDE_COLUMNS, TIMELINE_COLUMNS


class _Queries(Protocol):
    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]: ...


class _Runs(_Queries, Protocol):
    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any: ...

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> Any: ...


_UNMERGED = "(kind, src, dst) NOT IN (SELECT kind, src, dst FROM identity_overrides FINAL WHERE action = 'unmerge')"


def _links(kind: str, prewhere: str = "") -> str:
    """Current ``kind`` links as (src, dst, vf, vt) rows, unmerges removed; ``prewhere`` narrows
    the read by primary key (conditions on ``src`` only)."""
    narrow = f" AND ({prewhere})" if prewhere else ""
    return (f"SELECT src, dst, vf, vt FROM (SELECT kind, src, dsts, valid_froms, valid_tos FROM identity_links "
            f"FINAL PREWHERE kind = '{kind}'{narrow}) ARRAY JOIN dsts AS dst, valid_froms AS vf, valid_tos AS vt "
            f"WHERE {_UNMERGED}")


_KINDS = ("device", "person_alias", "person_account", "account_merge")

_DERIVED = """
  merges AS (SELECT src AS acct, min(dst) AS canon FROM ({merges}) GROUP BY src),
  people AS (
    SELECT person, acct, vf, vt FROM members
    UNION ALL SELECT l.src, m.acct, m.vf, m.vt FROM alias_links l INNER JOIN members m ON l.dst = m.person
    UNION ALL SELECT l.dst, m.acct, m.vf, m.vt FROM alias_links l INNER JOIN members m ON l.src = m.person
  ),
  keymap AS (
    SELECT 'p' AS kind, person AS key, acct, vf, vt FROM people
    UNION ALL SELECT 'd', l.src, p.acct, greatest(l.vf, p.vf), least(l.vt, p.vt)
      FROM dev_links l INNER JOIN people p ON l.dst = p.person
  )"""
"""What every event resolves through, derived from the current links: each key (``'p'``, a person
key, or ``'d'``, a device) → an account and the interval it holds, and each merged account → its
canonical one. :func:`keymap` says the same in Python for the scoped refresh."""

_GIVEN = """
  keymap AS (SELECT l.1 AS kind, l.2 AS key, l.3 AS acct, fromUnixTimestamp64Milli(l.4, 'UTC') AS vf,
                    fromUnixTimestamp64Milli(l.5, 'UTC') AS vt
             FROM (SELECT arrayJoin({keymap:Array(Tuple(String, String, String, Int64, Int64))}) AS l)),
  merges AS (SELECT l.1 AS acct, l.2 AS canon FROM (SELECT arrayJoin({merges:Array(Tuple(String, String))}) AS l))"""


def keymap(links: Iterable[tuple[str, str, str, int, int]]) -> dict[str, list[tuple[Any, ...]]]:
    """``_DERIVED``'s ``keymap`` and ``merges`` from the links ``(kind, src, dst, valid_from_ms,
    valid_to_ms)`` a scoped refresh can reach, as the ``keymap`` and ``merges`` parameters of
    ``resolve_sql(scoped=True)``. Computed here, not in SQL, because the SQL's planning dominated a
    refresh: the CTEs are inlined (``members`` six times over), each copy parsing its links
    again — the scoped select of 250 events took 180 ms of CPU, 144 of them in its ``EXPLAIN``,
    against 48 ms with these two given (docs/benchmarks.md, sixteenth session). Duplicates are
    dropped (the SQL's ``UNION ALL`` kept them; the resolution collects accounts as a set)."""
    by_kind: dict[str, list[tuple[str, str, int, int]]] = {kind: [] for kind in _KINDS}
    for kind, src, dst, vf, vt in links:
        by_kind[kind].append((src, dst, vf, vt))
    members = by_kind["person_account"]
    by_person: dict[str, list[tuple[str, int, int]]] = {}
    for person, acct, vf, vt in members:
        by_person.setdefault(person, []).append((acct, vf, vt))
    people = set(members)
    for src, dst, _, _ in by_kind["person_alias"]:  # one alias hop, either way
        people.update((src, acct, vf, vt) for acct, vf, vt in by_person.get(dst, ()))
        people.update((dst, acct, vf, vt) for acct, vf, vt in by_person.get(src, ()))
    of_person: dict[str, list[tuple[str, int, int]]] = {}
    for person, acct, vf, vt in people:
        of_person.setdefault(person, []).append((acct, vf, vt))
    keys = {("p", person, acct, vf, vt) for person, acct, vf, vt in people}
    for device, person, dvf, dvt in by_kind["device"]:
        keys.update(("d", device, acct, max(dvf, vf), min(dvt, vt)) for acct, vf, vt in of_person.get(person, ()))
    canon: dict[str, str] = {}
    for src, dst, _, _ in by_kind["account_merge"]:
        canon[src] = min(canon.get(src, dst), dst)
    return {"keymap": sorted(keys), "merges": sorted(canon.items())}


def resolve_sql(scoped: bool) -> str:
    """``SELECT event_id, accounts, <timeline columns>`` — every event (``scoped=False``), through
    the current links; or the events whose ``(account_id, event_id)`` is in the
    ``{pairs:Array(Tuple(String, String))}`` parameter, through the ``keymap`` and ``merges``
    parameters (:func:`_scope`: :func:`keymap` of the links they can reach, read with
    :func:`scope_links_sql`, the same :func:`_links` reads, once)."""
    where = "PREWHERE (account_id, event_id) IN {pairs:Array(Tuple(String, String))}" if scoped else ""
    derived = f"""
  dev_links AS ({_links("device")}),
  alias_links AS ({_links("person_alias")}),
  members AS (SELECT src AS person, dst AS acct, vf, vt FROM ({_links("person_account")})),""" + \
        _DERIVED.format(merges=_links("account_merge"))
    return f"""
WITH{_GIVEN if scoped else derived}
SELECT c.event_id AS event_id, arraySort(groupUniqArrayIf(if(m.canon != '', m.canon, c.cand), c.cand != '')) AS accounts,
       {_COLUMNS}
FROM (
  -- each event once (the first receipt), looked up by the key it resolves through: its own
  -- account, else its person ids, else its device; then the link interval holding its time
  SELECT e.*, if(e.account_id != '', e.account_id,
                 if(k.acct != '' AND e.event_time >= k.vf AND e.event_time < k.vt, k.acct, '')) AS cand
  FROM (
    SELECT ev.*, if(account_id != '', [('-', '')],
                    if(user_id = '' AND email = '' AND contact_id = '', [('d', anonymous_id)],
                       arrayMap(x -> ('p', x), arrayDistinct(arrayFilter(x -> x != '', [user_id, email, contact_id])))))
                   AS lookups
    FROM (SELECT * FROM timeline FINAL {where} ORDER BY event_id, version DESC LIMIT 1 BY event_id) AS ev
  ) AS e
  ARRAY JOIN e.lookups AS lk
  LEFT JOIN keymap AS k ON k.kind = lk.1 AND k.key = lk.2
) AS c
LEFT JOIN merges AS m ON m.acct = c.cand
GROUP BY c.event_id
SETTINGS join_use_nulls = 0
"""


_COLUMNS = """any(c.event_time) AS event_time, any(c.event_type) AS event_type, any(c.name) AS name,
       any(c.channel) AS channel, any(c.side) AS side, any(c.rep_id) AS rep_id, any(c.rep_role) AS rep_role,
       any(c.person_id) AS person_id, any(c.contact_id) AS contact_id, any(c.email) AS email,
       any(c.anonymous_id) AS anonymous_id, any(c.user_id) AS user_id, any(c.account_id) AS direct_account_id,
       any(c.journey_account_id) AS stream_account_id, any(c.properties) AS properties, any(c.source) AS ingest_source"""

RESOLUTION_COLUMNS = ("event_id", "accounts", "event_time", "event_type", "name", "channel", "side", "rep_id",
                      "rep_role", "person_id", "contact_id", "email", "anonymous_id", "user_id", "direct_account_id",
                      "stream_account_id", "properties", "ingest_source")
"""The columns of ``event_resolution`` that :func:`resolve_sql` fills (``resolved_at`` is the version)."""

_INSERT = f"INSERT INTO event_resolution ({', '.join(RESOLUTION_COLUMNS)}) "

CHUNK = 5000
"""Events re-resolved per statement."""


class Pairs(list[tuple[str, str]]):
    """Events to re-resolve, ``(direct account id, event id)``, with the person and device keys
    (``p:…`` / ``d:…``, :func:`row_keys`) of those whose timeline row is in hand: a timeline batch
    just stored. The refresh then does not read those rows back to find their keys — on a store
    of 10M events that look-up read nearly every granule of ``timeline`` (1.0–1.4 s per refresh of
    1,000 events; docs/benchmarks.md)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = (),
                 keys: dict[tuple[str, str], tuple[str, ...]] | None = None) -> None:
        super().__init__(pairs)
        self.keys: dict[tuple[str, str], tuple[str, ...]] = keys if keys is not None else {}


def row_keys(account_id: str, anonymous_id: str, user_id: str, email: str, contact_id: str) -> tuple[str, ...]:
    """The keys an event resolves through, as :func:`_scope`'s look-up reads them from
    ``timeline``: none for an event naming its account; its person ids (``p:``) when it has any,
    else its device (``d:``)."""
    if account_id:
        return ()
    persons = tuple(f"p:{x}" for x in (user_id, email, contact_id) if x)
    return persons or ((f"d:{anonymous_id}",) if anonymous_id else ())


def _scope(store: _Runs, pairs: list[tuple[str, str]],
           known: dict[tuple[str, str], tuple[str, ...]] | None = None) -> dict[str, Any]:
    """The parameters of the scoped :func:`resolve_sql`: the events, the devices of their
    anonymous events, and every person key they can reach (their own, their devices' persons,
    one alias hop either way) — a superset is harmless, a missing key would not be. ``known``:
    the keys of events whose rows are in hand (:class:`Pairs`); the others are read from
    ``timeline``."""
    known = known or {}
    unknown = [pair for pair in pairs if not pair[0] and pair not in known]
    rows: list[tuple[Any, ...]] = []
    if unknown:
        _, rows = store.query(
            "SELECT DISTINCT arrayJoin(if(user_id = '' AND email = '' AND contact_id = '', "
            "[concat('d:', anonymous_id)], arrayMap(x -> concat('p:', x), arrayFilter(x -> x != '', "
            "[user_id, email, contact_id])))) FROM timeline PREWHERE (account_id, event_id) IN "
            "{pairs:Array(Tuple(String, String))} WHERE account_id = ''", {"pairs": unknown})
    keys = [str(r[0]) for r in rows if len(str(r[0])) > 2]
    keys += [key for pair in pairs for key in known.get(pair, ())]
    devices = sorted(k[2:] for k in keys if k.startswith("d:"))
    persons = {k[2:] for k in keys if k.startswith("p:")}
    if devices:
        _, rows = store.query("SELECT DISTINCT arrayJoin(dsts) FROM identity_links FINAL "
                              "PREWHERE kind = 'device' AND src IN {d:Array(String)}", {"d": devices})
        persons.update(str(r[0]) for r in rows)
    if persons:
        _, rows = store.query(
            "SELECT src, dsts FROM identity_links FINAL PREWHERE kind = 'person_alias' AND (src IN {p:Array(String)} "
            "OR src IN (SELECT src FROM identity_links_by_dst WHERE kind = 'person_alias' AND dst IN {p:Array(String)}))",
            {"p": sorted(persons)})
        for src, dsts in rows:
            persons.add(str(src))
            persons.update(str(d) for d in dsts)
    params = {"persons": sorted(persons), "devices": devices, "accounts": sorted({a for a, _ in pairs if a})}
    _, rows = store.query(scope_links_sql(), params)
    return {"pairs": pairs, **keymap((str(k), str(s), str(d), int(f), int(t)) for k, s, d, f, t in rows)}


def scope_links_sql() -> str:
    """The current links a scoped refresh can reach: the devices' links, the persons' aliases
    (either way) and memberships, and the merges of the accounts an event can resolve through
    (the ones the events name, ``accounts``, and the persons' accounts) — each read once. Not
    every merge of the store: on 10M events that was 95,808 links passed with every refresh,
    and a refresh of 1,000 events took 54 s (docs/benchmarks.md)."""
    persons = "src IN {persons:Array(String)}"
    parts = [("device", "src IN {devices:Array(String)}"),
             ("person_alias", f"{persons} OR src IN (SELECT src FROM identity_links_by_dst WHERE "
                              "kind = 'person_alias' AND dst IN {persons:Array(String)})"),
             ("person_account", persons),
             ("account_merge", "src IN {accounts:Array(String)} OR src IN (SELECT arrayJoin(dsts) FROM identity_links "
                               "FINAL PREWHERE kind = 'person_account' AND src IN {persons:Array(String)})")]
    return "\nUNION ALL\n".join(
        f"SELECT '{kind}', src, dst, toUnixTimestamp64Milli(vf), toUnixTimestamp64Milli(vt) FROM ({_links(kind, where)})"
        for kind, where in parts)


def tombstones_sql() -> str:
    """``account_events`` rows that hide every event from the accounts it no longer resolves to:
    every account of the event's ``resolution_history`` that its newest resolution lacks (the
    scoped refresh applies the same rule in Python to :data:`_HISTORY_SQL`'s rows). Each tombstone
    is newer (``resolved_at`` now) than the row it hides; re-writing one is harmless."""
    return """
INSERT INTO account_events (account_id, event_id, event_time, deleted)
SELECT account, event_id, at, 1 FROM (
  SELECT event_id, argMax(accounts, resolved_at) AS current, groupUniqArrayArray(accounts) AS ever,
         any(event_time) AS at
  FROM resolution_history GROUP BY event_id
)
ARRAY JOIN arrayFilter(x -> NOT has(current, x), ever) AS account
"""


def refresh(store: _Runs, pairs: Iterable[tuple[str, str]]) -> int:
    """Re-resolve the events ``(direct account id, event id)`` now, writing a newer version of
    their ``event_resolution`` rows (materialized views add their ``account_events`` rows and
    ``resolution_history``), then the tombstones of the accounts they left; how many.
    Idempotent: running it again writes the same answer (ReplacingMergeTree keeps the newest),
    and a run stopped between the two writes is completed by the next (the history has both).
    ``pairs`` may be :class:`Pairs` (or several merged with :func:`merged`): their known keys are
    not read back."""
    known = pairs.keys if isinstance(pairs, Pairs) else {}
    unique = sorted(set(pairs))
    for i in range(0, len(unique), CHUNK):
        chunk = unique[i : i + CHUNK]
        store.command(_INSERT + resolve_sql(scoped=True), _scope(store, chunk, known))
        ids = sorted({event_id for _, event_id in chunk})
        _, rows = store.query(_HISTORY_SQL, {"ids": ids})
        tombstones = [(account, event_id, at, 1) for event_id, current, ever, at in rows
                      for account in ever if account not in current]
        if tombstones:
            store.insert("account_events", tombstones, _TOMBSTONE_COLUMNS)
        # every account these events resolve or resolved to (their history): its summary again
        refresh_summaries(store, {account for _, _, ever, _ in rows for account in ever})
    return len(unique)


_HISTORY_SQL = """
SELECT event_id, argMax(accounts, resolved_at) AS current, groupUniqArrayArray(accounts) AS ever, any(event_time) AS at
FROM resolution_history PREWHERE event_id IN {ids:Array(String)} GROUP BY event_id
"""
"""Each event's newest resolution and every account it ever resolved to — read once per refresh
for both its tombstones (:func:`tombstones_sql`'s rule, applied here) and the accounts whose
summaries it writes again; a refresh whose events left no account (the usual case) writes no
tombstone. One read instead of an ``INSERT … SELECT`` and a read of the same rows."""
_TOMBSTONE_COLUMNS = ("account_id", "event_id", "event_time", "deleted")


def refresh_all(store: _Runs) -> None:
    """Resolve every stored event again (a backfill; the store process keeps the table current)."""
    store.command(_INSERT + resolve_sql(scoped=False))
    store.command(tombstones_sql())
    store.command(summaries_sql(scoped=False))


SUMMARY_COLUMNS = ("account_id", "times", "sides", "channels", "rep_ids", "rep_roles", "utm_sources", "lead_sources",
                   "computed_at")
"""The columns of ``account_summaries`` (migration 17 added ``rep_ids`` … ``lead_sources``)."""
_SUMMARY_COLUMNS_16 = ("account_id", "times", "sides", "channels", "computed_at")
# each summary array: the element of the sorted (event_time, event_id, side, channel, rep_id,
# rep_role, utm_source, lead_source) tuples it takes
_SUMMARY_ARRAYS = {"times": 1, "sides": 3, "channels": 4, "rep_ids": 5, "rep_roles": 6, "utm_sources": 7,
                   "lead_sources": 8}


def summaries_sql(scoped: bool, exclude: str = "", version: int = 17) -> str:
    """``account_summaries`` rows: each account's events as ``account_events`` has them now, in
    ``(event_time, event_id)`` order — their times, sides (1 digital, 2 human, 0 other),
    channels, reps, rep roles, UTM sources and CRM lead sources, one array each — for the
    accounts in the ``{accounts:Array(String)}`` parameter
    (``scoped``; range reads of ``account_events``, which is ordered by account), else for every
    account it or the summaries know. An account with no event left gets empty arrays (newer
    than the row they replace). Re-writing a summary is harmless (the newest wins). ``exclude``:
    a condition on ``account_events`` columns whose events are left out (a privacy forget, written
    before the rows are deleted). ``version``: 16 writes the columns migration 16 made (its
    backfill, on a store that has no later column yet)."""
    columns = _SUMMARY_COLUMNS_16 if version == 16 else SUMMARY_COLUMNS
    events = ("event_time, event_id, toUInt8(multiIf(side = 'digital', 1, side = 'human', 2, 0)), channel"
              + ("" if version == 16 else ", rep_id, rep_role, utm_source, lead_source"))
    if scoped:
        accounts = "SELECT arrayJoin({accounts:Array(String)}) AS account_id"
        where = "PREWHERE account_id IN {accounts:Array(String)} "
    else:
        accounts = "SELECT account_id FROM account_events UNION DISTINCT SELECT account_id FROM account_summaries"
        where = ""
    if exclude:
        where += f"WHERE NOT ({exclude}) "
    arrays = ", ".join(f"arrayMap(x -> x.{_SUMMARY_ARRAYS[c]}, e.events)" for c in columns[1:-1])
    return f"""
INSERT INTO account_summaries ({', '.join(columns)})
SELECT a.account_id, {arrays}, now64(6)
FROM ({accounts}) AS a
LEFT JOIN (
  SELECT account_id, arraySort(groupArray(({events}))) AS events
  FROM account_events FINAL {where}GROUP BY account_id
) AS e ON a.account_id = e.account_id
SETTINGS join_use_nulls = 0
"""


def refresh_summaries(store: _Runs, accounts: Iterable[str], exclude: str = "",
                      parameters: dict[str, Any] | None = None) -> None:
    """Write the ``account_summaries`` of ``accounts`` again from ``account_events`` (without the
    events ``exclude`` names, its ``parameters`` given)."""
    wanted = sorted({a for a in accounts if a})
    for i in range(0, len(wanted), CHUNK):
        store.command(summaries_sql(scoped=True, exclude=exclude), {**(parameters or {}), "accounts": wanted[i : i + CHUNK]})


def indexed_resolution(store: _Queries) -> dict[str, tuple[str, ...]]:
    """What ``account_events`` (the timeline's read path) says now, event id → accounts (sorted;
    events it shows under no account are absent)."""
    _, rows = store.query("SELECT event_id, arraySort(groupArray(account_id)) FROM account_events FINAL "
                          "GROUP BY event_id")
    return {str(e): tuple(a) for e, a in rows}


_ALIASES_SQL = """
SELECT arrayJoin(dsts) FROM identity_links FINAL PREWHERE kind = 'person_alias' AND src IN {persons:Array(String)}
UNION DISTINCT
SELECT src FROM identity_links_by_dst WHERE kind = 'person_alias' AND dst IN {persons:Array(String)}
"""
"""The persons one alias hop from ``persons``, either way."""
_DEVICES_OF_SQL = "SELECT DISTINCT src FROM identity_links_by_dst WHERE kind = 'device' AND dst IN {persons:Array(String)}"
"""The devices linked to ``persons``."""
_AFFECTED_SQL = "SELECT '' AS account_id, event_id FROM timeline_by_key WHERE key IN {keys:Array(String)}"
_AFFECTED_ACCOUNTS_SQL = """
UNION DISTINCT
SELECT account_id, event_id FROM timeline PREWHERE account_id IN {accounts:Array(String)}
UNION DISTINCT
SELECT direct_account_id, event_id FROM event_resolution FINAL WHERE hasAny(accounts, {accounts:Array(String)})
"""
"""Only for merge changes: the last part reads every resolved event (a merge moves whole accounts)."""


def affected(store: _Queries, changes: Iterable[tuple[str, str, Sequence[str]]]) -> list[tuple[str, str]]:
    """The events ``(direct account id, event id)`` whose resolution the changed links or
    overrides ``(kind, src, dsts)`` can move: a device's anonymous events; a person's events
    (and their aliases' and devices'); every event on either side of an account merge."""
    persons: set[str] = set()
    devices: set[str] = set()
    accounts: set[str] = set()
    for kind, src, dsts in changes:
        if kind == "device":
            devices.add(src)
        elif kind in ("person_account", "person_alias"):
            persons.add(src)
            if kind == "person_alias":
                persons.update(dsts)
        elif kind == "account_merge":
            accounts.add(src)
            accounts.update(dsts)
    if not (persons or devices or accounts):
        return []
    # step by step, each look-up by key with its keys given: one statement whose CTEs ClickHouse
    # inlined (the persons three times over) took 87–99 ms per 1,000-event refresh, these three
    # 45 ms (docs/benchmarks.md, twenty-sixth session)
    keys = set(persons) | devices
    if persons:
        _, rows = store.query(_ALIASES_SQL, {"persons": sorted(persons)})
        persons.update(str(r[0]) for r in rows)
        _, rows = store.query(_DEVICES_OF_SQL, {"persons": sorted(persons)})
        keys.update(persons)
        keys.update(str(r[0]) for r in rows)
    sql = _AFFECTED_SQL + (_AFFECTED_ACCOUNTS_SQL if accounts else "")
    _, rows = store.query(sql, {"keys": sorted(keys), "accounts": sorted(accounts)})
    return [(str(a), str(e)) for a, e in rows]


# What the store process runs after each batch it writes (streams/agents/store.py), on its rows.
_EVENT_KEY = (TIMELINE_COLUMNS.index("account_id"), TIMELINE_COLUMNS.index("event_id"))
_LINK_KEY = tuple(LINK_COLUMNS.index(c) for c in ("kind", "src", "dsts"))
_OVERRIDE_KEY = tuple(OVERRIDE_COLUMNS.index(c) for c in ("kind", "src", "dst"))


_ROW_KEY_COLUMNS = tuple(TIMELINE_COLUMNS.index(c) for c in ("account_id", "anonymous_id", "user_id", "email",
                                                                 "contact_id"))


def timeline_pairs(store: _Runs, rows: Sequence[Sequence[Any]]) -> Pairs:
    """Timeline rows just stored: their events, with the keys they resolve through (their rows
    are in hand)."""
    pairs = Pairs()
    for row in rows:
        pair = (row[_EVENT_KEY[0]], row[_EVENT_KEY[1]])
        pairs.append(pair)
        if not pair[0]:
            pairs.keys[pair] = row_keys(*(row[i] for i in _ROW_KEY_COLUMNS))
    return pairs


def merged(many: Iterable[list[tuple[str, str]]]) -> Pairs:
    """Several sinks' pairs as one :class:`Pairs`, their known keys kept."""
    out = Pairs()
    for pairs in many:
        out.extend(pairs)
        if isinstance(pairs, Pairs):
            out.keys.update(pairs.keys)
    return out


def link_pairs(store: _Runs, rows: Sequence[Sequence[Any]]) -> list[tuple[str, str]]:
    """Identity links just stored: every event they can move."""
    return affected(store, [(row[_LINK_KEY[0]], row[_LINK_KEY[1]], row[_LINK_KEY[2]]) for row in rows])


def override_pairs(store: _Runs, rows: Sequence[Sequence[Any]]) -> list[tuple[str, str]]:
    """Manual unmerges/merges just stored: every event they can move."""
    return affected(store, [(row[_OVERRIDE_KEY[0]], row[_OVERRIDE_KEY[1]], (row[_OVERRIDE_KEY[2]],)) for row in rows])


def after_timeline_rows(store: _Runs, rows: Sequence[Sequence[Any]]) -> None:
    """Timeline rows just stored: resolve their events."""
    refresh(store, timeline_pairs(store, rows))


def after_link_rows(store: _Runs, rows: Sequence[Sequence[Any]]) -> None:
    """Identity links just stored: re-resolve every event they can move."""
    refresh(store, link_pairs(store, rows))


def after_override_rows(store: _Runs, rows: Sequence[Sequence[Any]]) -> None:
    """Manual unmerges/merges just stored: re-resolve every event they can move."""
    refresh(store, override_pairs(store, rows))


RESOLVED_EVENTS_SQL = """
SELECT e.event_id AS event_id, e.event_type AS event_type,
       arraySort(groupArrayIf(a.account_id, a.account_id != '')) AS accounts
FROM (SELECT event_id, any(event_type) AS event_type FROM timeline GROUP BY event_id) AS e
LEFT JOIN event_accounts AS a ON a.event_id = e.event_id
GROUP BY e.event_id, e.event_type
SETTINGS join_use_nulls = 0
"""
"""Every stored event with the accounts the ``event_accounts`` view resolves it to now."""


def resolve_events(store: _Queries) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """``(event_id, event_type, accounts)`` for every stored event (each once), resolved now."""
    _, rows = store.query(RESOLVED_EVENTS_SQL)
    for event_id, event_type, accounts in rows:
        yield str(event_id), str(event_type), tuple(accounts)


def stored_resolution(store: _Queries) -> dict[str, tuple[str, ...]]:
    """What ``event_resolution`` (the table the reports read) says now, event id → accounts."""
    _, rows = store.query("SELECT event_id, accounts FROM event_resolution FINAL")
    return {str(e): tuple(a) for e, a in rows}


def canonical_accounts(store: _Queries) -> set[str]:
    """Accounts that are not merged into another one (the ones the invariant above holds for)."""
    _, rows = store.query(
        """
        SELECT DISTINCT account FROM (
          SELECT account_id AS account FROM timeline WHERE account_id != ''
          UNION ALL SELECT arrayJoin(dsts) FROM identity_links FINAL WHERE kind IN ('person_account', 'account_merge')
        )
        WHERE account NOT IN (
          SELECT src FROM identity_links FINAL WHERE kind = 'account_merge' AND (kind, src, dsts[1]) NOT IN (
            SELECT kind, src, dst FROM identity_overrides FINAL WHERE action = 'unmerge'))
        """
    )
    return {str(r[0]) for r in rows}
