"""Forget one person in the store: find their ids, delete or pseudonymise their rows, audit.

The store side of ``journeys privacy forget`` (the store process runs it for each request on
the privacy topic, ``streams/agents/privacy.py``). Lightweight ``DELETE FROM`` (chDB and a
server; the rows are masked at once and dropped at the next merge) and ``ALTER TABLE … UPDATE``
mutations waited for (``mutations_sync = 2``). Every statement is safe to re-run.

Who the person is: the identifier given plus every id linked to it — aliases (both ways),
the ids that appear together on their events (user id, email, CRM contact id), their devices
(device links to them, and the devices their events name) — and for an anonymous id, the
person(s) that device was identified as.

What goes (``DELETED``): the person's events (``timeline``, ``event_resolution``,
``account_events``, ``resolution_history``, ``timeline_by_key``) — an event naming one of their
person ids, or an anonymous event of one of their devices; the ``account_summaries`` of the accounts
that held them are first written again without them —, their identity links and overrides,
their per-contact scores, and the dead letters whose original bytes name them. What is kept
without them (``PSEUDONYMISED``): the account's stage changes (``contact_id`` cleared), its
score history (their id in the committee replaced by ``[forgotten]``) and its alerts (the id in
the summary replaced).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Protocol

from sinks.clickhouse import resolution

FORGOTTEN = "[forgotten]"
AUDIT_COLUMNS = ("request_id", "kind", "identifier_hash", "requested_by", "requested_at",
                 "rows_deleted", "rows_pseudonymised", "completed_at")
MAX_ROUNDS = 5
"""Rounds of alias expansion (an alias of an alias …) before the id set is taken as complete."""


class _Runs(Protocol):
    def command(self, sql: str, parameters: dict | None = None) -> object: ...

    def query(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]: ...


@dataclass(frozen=True)
class Subject:
    """A person as the store knows them."""

    persons: tuple[str, ...]
    devices: tuple[str, ...]
    accounts: tuple[str, ...]
    """Accounts whose journey may hold them (the stream side drops them there)."""

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.persons) | set(self.devices)))


# An event is the person's if it names one of their person ids, or is an anonymous event of one
# of their devices (on a device shared with someone else, its anonymous events too: they cannot
# be told apart).
EVENT_CONDITION = """(person_id IN {p:Array(String)} OR user_id IN {p:Array(String)} OR email IN {p:Array(String)}
    OR contact_id IN {p:Array(String)}
    OR (anonymous_id IN {d:Array(String)} AND user_id = '' AND email = '' AND contact_id = ''))"""
_EVENT_IDS = f"SELECT event_id FROM timeline WHERE {EVENT_CONDITION}"

DELETED: tuple[tuple[str, str], ...] = (
    # derived from the timeline first (they are found through its rows)
    ("timeline_by_key", f"event_id IN ({_EVENT_IDS}) OR key IN {{p:Array(String)}} OR key IN {{d:Array(String)}}"),
    ("event_resolution", f"event_id IN ({_EVENT_IDS}) OR {EVENT_CONDITION}"),
    ("account_events", f"event_id IN ({_EVENT_IDS}) OR {EVENT_CONDITION}"),
    ("resolution_history", f"event_id IN ({_EVENT_IDS})"),
    ("timeline", EVENT_CONDITION),
    ("identity_links_by_dst", "src IN {i:Array(String)} OR dst IN {p:Array(String)}"),
    ("identity_links", "src IN {i:Array(String)} OR (kind IN ('device', 'person_alias') AND hasAny(dsts, {p:Array(String)}))"),
    ("identity_overrides", "src IN {i:Array(String)} OR dst IN {i:Array(String)}"),
    ("contact_scores", "contact_id IN {p:Array(String)}"),
)
"""Table → which of its rows are the person's (``p``: person ids, ``d``: devices, ``i``: both)."""


def _replace_all(column: str, needles: list[str], quote: bool) -> tuple[str, dict[str, str]]:
    """``replaceAll(replaceAll(column, n0, r), n1, r)…`` with its parameters."""
    expr, params = column, {}
    for n, needle in enumerate(needles):
        params[f"n{n}"] = f'"{needle}"' if quote else needle
        expr = f"replaceAll({expr}, {{n{n}:String}}, {{r{'q' if quote else ''}:String}})"
    params["r"], params["rq"] = FORGOTTEN, f'"{FORGOTTEN}"'
    return expr, params


def pseudonymised(persons: list[str]) -> list[tuple[str, str, str, dict[str, str]]]:
    """(table, column, new value expression, parameters) of the updates that keep an account's
    rows without the person: ``WHERE`` is ``column != expression``."""
    committee, cp = _replace_all("committee", persons, quote=True)
    summary, sp = _replace_all("summary", persons, quote=False)
    return [
        ("stage_changes", "contact_id", "if(contact_id IN {p:Array(String)}, '', contact_id)", {}),
        ("account_scores", "committee", committee, cp),
        ("alerts", "summary", summary, sp),
    ]


def _values(store: _Runs, sql: str, params: dict[str, Any]) -> set[str]:
    _, rows = store.query(sql, params)
    return {str(v) for row in rows for v in row if isinstance(v, str) and v}


def find(store: _Runs, kind: str, identifier: str) -> Subject:
    """The person ``identifier`` (of ``kind`` email, user_id or anonymous_id, as stored) names."""
    persons: set[str] = set()
    devices: set[str] = set()
    if kind == "anonymous_id":
        devices.add(identifier)
        persons |= _values(store, "SELECT arrayJoin(dsts) FROM identity_links FINAL WHERE kind = 'device' AND src = {s:String}",
                           {"s": identifier})
        persons |= _values(store, "SELECT DISTINCT person_id FROM timeline WHERE anonymous_id = {s:String}", {"s": identifier})
    else:
        persons.add(identifier)
    for _ in range(MAX_ROUNDS):
        p = sorted(persons)
        found = _values(store, """SELECT src, arrayJoin(dsts) FROM identity_links FINAL
                                  WHERE kind = 'person_alias' AND (src IN {p:Array(String)} OR hasAny(dsts, {p:Array(String)}))""",
                        {"p": p})
        found |= _values(store, """SELECT DISTINCT person_id, user_id, email, contact_id FROM timeline
                                   WHERE person_id IN {p:Array(String)} OR user_id IN {p:Array(String)}
                                      OR email IN {p:Array(String)} OR contact_id IN {p:Array(String)}""", {"p": p})
        if found <= persons:
            break
        persons |= found
    p = sorted(persons)
    devices |= _values(store, "SELECT src FROM identity_links FINAL WHERE kind = 'device' AND hasAny(dsts, {p:Array(String)})",
                       {"p": p})
    devices |= _values(store, """SELECT DISTINCT anonymous_id FROM timeline WHERE person_id IN {p:Array(String)}
                                 OR user_id IN {p:Array(String)} OR email IN {p:Array(String)}""", {"p": p})
    params = {"p": p, "d": sorted(devices)}
    accounts = _values(store, f"SELECT DISTINCT account_id, journey_account_id FROM timeline WHERE {EVENT_CONDITION}", params)
    accounts |= _values(store, "SELECT arrayJoin(dsts) FROM identity_links FINAL WHERE kind = 'person_account' "
                               "AND src IN {p:Array(String)}", params)
    accounts |= _values(store, "SELECT DISTINCT account_id FROM contact_scores WHERE contact_id IN {p:Array(String)}", params)
    return Subject(tuple(p), tuple(sorted(devices)), tuple(sorted(accounts)))


def _count(store: _Runs, table: str, where: str, params: dict[str, Any]) -> int:
    _, rows = store.query(f"SELECT count() FROM {table} WHERE {where}", params)
    return int(rows[0][0])


def forget(store: _Runs, subject: Subject, names_them: Callable[[str], bool],
           needles: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Delete and pseudonymise the subject's rows; ``(rows deleted, rows pseudonymised)`` per
    table. Dead letters: those whose payload contains one of ``needles`` (case-insensitive, a
    pre-filter) and that ``names_them`` (the exact test, run here on each candidate payload)."""
    params = {"p": list(subject.persons), "d": list(subject.devices), "i": list(subject.ids)}
    deleted: dict[str, int] = {}
    # the summaries of the accounts that hold the person's events, written without them before the
    # events go (a request retried after a crash finds the events, or the summaries already right)
    held = dict(DELETED)["account_events"]
    _, rows = store.query(f"SELECT DISTINCT account_id FROM account_events WHERE {held}", params)
    resolution.refresh_summaries(store, [str(a) for a, in rows], exclude=held, parameters=params)
    for table, where in DELETED:
        deleted[table] = _count(store, table, where, params)
        if deleted[table]:
            store.command(f"DELETE FROM {table} WHERE {where}", params)
    needles = sorted({n for n in needles if n})
    letters: list[str] = []
    if needles:
        _, rows = store.query("SELECT dlq_id, payload FROM dead_letters "
                              "WHERE multiSearchAnyCaseInsensitive(payload, {n:Array(String)})", {"n": needles})
        letters = sorted({str(dlq_id) for dlq_id, payload in rows if names_them(str(payload))})
    deleted["dead_letters"] = len(letters)
    if letters:
        store.command("DELETE FROM dead_letters WHERE dlq_id IN {l:Array(String)}", {"l": letters})
    changed: dict[str, int] = {}
    for table, column, expr, extra in pseudonymised(list(subject.persons)):
        where = f"{column} != {expr}"
        both = dict(params, **extra)
        changed[table] = _count(store, table, where, both)
        if changed[table]:
            store.command(f"ALTER TABLE {table} UPDATE {column} = {expr} WHERE {where} SETTINGS mutations_sync = 2",
                          both)
    return deleted, changed


def completed(store: _Runs, request_id: str) -> bool:
    _, rows = store.query("SELECT count() FROM privacy_requests WHERE request_id = {r:String}", {"r": request_id})
    return bool(rows[0][0])


def audit_row(request_id: str, kind: str, identifier_hash: str, requested_by: str, requested_at: datetime,
              deleted: dict[str, int], changed: dict[str, int], completed_at: datetime) -> tuple:
    return (request_id, kind, identifier_hash, requested_by, requested_at, deleted, changed, completed_at)


def requests(store: _Runs, request_id: str | None = None, limit: int = 100) -> tuple[list[str], list[tuple]]:
    """Audit rows, newest first (one request's when ``request_id`` is given)."""
    where = "WHERE request_id = {r:String}" if request_id else ""
    return store.query(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM privacy_requests FINAL {where} "
                       "ORDER BY requested_at DESC LIMIT {n:UInt32}", {"r": request_id or "", "n": limit})
