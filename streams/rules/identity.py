"""Identity resolution rules (pure): device → person → account, time-bounded and undoable.

State is plain JSON-able dicts so Faust tables can hold them. Nothing here rewrites history:
the rules emit *link rows* (one per device, person or account, holding every interval), and
the timeline query resolves an account's events through them at read time. A touch belongs
to the person a device was identified as at that time, and to the account that person
belonged to at that time; the first link reaches back to the beginning (retroactive stitching).

Order independence: a person's account history is the sorted set of evidence points, so
late or shuffled events produce the same links as an in-order replay.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.identity import IdentityLink
from schemas.timeline import TimelineEvent, utc_ms
from streams.rules.journey import JOURNEY_PROPS

NEG_INF_MS = 0
"""Start of the first interval: 1970-01-01, i.e. 'since the beginning' (retroactive)."""
POS_INF_MS = 10413791999000
"""End of an open interval: 2299-12-31T23:59:59Z (the end of ClickHouse DateTime64)."""

RULE_PRIORITY = {"crm": 0, "group": 1, "domain": 2}
"""Lower wins: a CRM account id beats a Segment group, which beats the email domain fallback."""


@dataclass(frozen=True)
class IdentityConfig:
    """Caps and lists that stop over-merging (all configurable through settings)."""

    max_persons_per_device: int = 3
    buffer_max_events: int = 200
    buffer_window_ms: int = 30 * 24 * 3600 * 1000
    max_points_per_person: int = 256
    person_recent_events: int = 20
    """Events a person keeps to re-send when their account is learnt later (journey state only)."""
    max_state_bytes: int = 256 * 1024
    """Bytes of remembered events (a device's anonymous buffer, a person's recent events) one key
    may hold; the oldest go first. Faust refuses a changelog record over 1 MB, and a state that
    grows past it would crash-loop the worker."""
    blocked_values: frozenset[str] = frozenset(
        {"", "null", "none", "undefined", "0", "-1", "anonymous", "unknown", "test@test.com", "test@example.com"}
    )


@dataclass
class Outcome:
    """What one event did: the person/account it resolved to, links to (re)write, replays."""

    person: str = ""
    account: str = ""
    links: list[IdentityLink] = field(default_factory=list)
    replays: list[str] = field(default_factory=list)
    """Earlier events (JSON) to re-send as replays: to the person stage after a device is
    identified; to their new account's journey after a person's account changed."""
    buffered: bool = False
    refused: list[str] = field(default_factory=list)


def person_key(entry: TimelineEvent, cfg: IdentityConfig) -> str:
    """The strongest person identifier on the event: userId, then email, then CRM contact id."""
    for value in (entry.user_id, entry.email, entry.contact_id):
        if value and value.strip().lower() not in cfg.blocked_values:
            return value
    return ""


def aliases(entry: TimelineEvent, key: str, cfg: IdentityConfig) -> list[str]:
    """Other identifiers of the same person on this event (e.g. identify's traits.email)."""
    out = []
    for value in (entry.email, entry.contact_id, entry.properties.get("previousId") if entry.event_type == "alias" else None):
        if isinstance(value, str) and value and value != key and value.lower() not in cfg.blocked_values:
            if value not in out:
                out.append(value)
    return out


SEEN_MAX = 32
"""Ids of a person's latest events that named an account or alias: a redelivery of one of them
re-sends its links."""

REPLAY_VALUE_MAX = 512
"""Longest JSON (chars) of one property kept in a remembered event."""


def replay_json(entry: TimelineEvent) -> str:
    """An event as remembered for a replay, which only the journey stage reads (storage has
    the row already): the properties the journey rules read, each at most ``REPLAY_VALUE_MAX``
    chars — a 30 KB page view is remembered in a few hundred bytes."""
    props = {}
    for k in JOURNEY_PROPS:
        if k in entry.properties:
            value = entry.properties[k]
            if len(orjson.dumps(value)) <= REPLAY_VALUE_MAX:
                props[k] = value
    try:  # pydantic's model_dump_json, byte for byte (tests/unit/test_timeline_bytes.py), at a fifth of the cost
        return orjson.dumps(dict(entry.__dict__, properties=props), option=orjson.OPT_UTC_Z).decode()
    except TypeError:  # a value orjson does not write natively
        return entry.model_copy(update={"properties": props}).model_dump_json()


def _within_bytes(items: list[list[Any]], budget: int) -> list[list[Any]]:
    """The newest items (``[t, ..., json]``, oldest first) that fit ``budget`` bytes as the state
    is written (each JSON string nested in the state's JSON: its quotes escaped, the rest of the
    item counted as 64 bytes)."""
    total, keep = 0, len(items)
    for i in range(len(items) - 1, -1, -1):
        text = items[i][-1]
        total += len(text) + text.count('"') + 64
        if total > budget:
            break
        keep = i
    return items[keep:]


def _intervals(points: list[list[Any]]) -> tuple[list[str], list[int], list[int], list[str]]:
    """Sorted (t, dst, rule) points → collapsed intervals; the first reaches back to the start."""
    dsts: list[str] = []
    froms: list[int] = []
    rules: list[str] = []
    for t, dst, rule in points:
        if dsts and dsts[-1] == dst:
            continue
        dsts.append(dst)
        froms.append(NEG_INF_MS if not froms else t)
        rules.append(rule)
    tos = froms[1:] + [POS_INF_MS]
    return dsts, froms, tos, rules


def at_time(points: list[list[Any]], t: int) -> str:
    """The destination in force at time ``t`` (the first one for anything before it)."""
    if not points:
        return ""
    dsts, froms, _, _ = _intervals(points)
    i = bisect.bisect_right(froms, t) - 1
    return dsts[max(i, 0)]


def _insert_point(points: list[list[Any]], t: int, dst: str, rule: str) -> bool:
    point = [t, dst, rule]
    if point in points:
        return False
    bisect.insort(points, point)
    return True


def _link(kind: str, src: str, dsts: Any, froms: Any, tos: Any, rules: Any) -> IdentityLink:
    return IdentityLink(kind=kind, src=src, dsts=tuple(dsts), valid_from_ms=tuple(froms),
                        valid_to_ms=tuple(tos), rules=tuple(rules))


# -- device stage (keyed by anonymousId) -----------------------------------------------------


def new_device() -> dict[str, Any]:
    return {"persons": [], "buffer": []}


def on_device_event(state: dict[str, Any], entry: TimelineEvent, cfg: IdentityConfig) -> Outcome:
    """Link the device to the person the event names; resolve anonymous events through it.

    An event before the device is identified is buffered (bounded by count and event-time
    window); when the device gets its first person, the buffer is returned as replays so the
    journey stage can count them. Storage already has those rows: nothing is rewritten.
    """
    out = Outcome()
    device = entry.anonymous_id
    t = utc_ms(entry.event_time)
    key = person_key(entry, cfg)
    points = state["persons"]
    if key:
        known = {p[1] for p in points}
        before = _intervals(points)
        if key not in known and len(known) >= cfg.max_persons_per_device:
            out.refused.append(f"device {device} already links {len(known)} persons (cap)")
        elif _insert_point(points, t, key, "identify") and _intervals(points) != before:
            first = len(known) == 0
            dsts, froms, tos, rules = _intervals(points)
            out.links.append(_link("device", device, dsts, froms, tos, rules))
            if first:
                out.replays = [raw for _, raw in state["buffer"]]
                state["buffer"] = []
        elif entry.event_id in state.setdefault("seen", []):
            # this very event redelivered after a crash between the state write and the sends:
            # send the device's link again (idempotent). Another event of the same person on the
            # device sends nothing: the link stands.
            dsts, froms, tos, rules = _intervals(points)
            out.links.append(_link("device", device, dsts, froms, tos, rules))
        seen = state.setdefault("seen", [])
        if entry.event_id not in seen:
            seen.append(entry.event_id)
            del seen[:-SEEN_MAX]
        out.person = key
        return out
    out.person = at_time(points, t)
    if not out.person:
        buffer = state["buffer"]
        buffer.append([t, replay_json(entry)])
        buffer.sort(key=lambda item: item[0])
        newest = buffer[-1][0]
        kept = [b for b in buffer if newest - b[0] <= cfg.buffer_window_ms][-cfg.buffer_max_events :]
        state["buffer"] = _within_bytes(kept, cfg.max_state_bytes)
        out.buffered = True
    return out


# -- person stage (keyed by person) ----------------------------------------------------------


def new_person() -> dict[str, Any]:
    return {"accounts": [], "aliases": [], "devices": []}


def account_rule(entry: TimelineEvent) -> str:
    if entry.account_id.startswith("domain:"):
        return "domain"
    return "group" if entry.event_type == "group" else "crm"


def _make_room(points: list[list[Any]], account: str, rule: str) -> bool:
    """At the cap, drop the oldest repeated (account, rule) point so new evidence — above all
    a first CRM account — is never refused; False if every point is a distinct pair."""
    pairs: dict[tuple[str, str], int] = {}
    for p in points:
        pairs[(p[1], p[2])] = pairs.get((p[1], p[2]), 0) + 1
    for i, p in enumerate(points):
        if pairs[(p[1], p[2])] > 1:
            del points[i]
            return True
    return False


def _account_points(state: dict[str, Any]) -> list[list[Any]]:
    """Direct evidence (CRM, group) if the person has any; the domain fallback otherwise."""
    strong = [p for p in state["accounts"] if p[2] != "domain"]
    return strong or [p for p in state["accounts"] if p[2] == "domain"]


def _memberships(state: dict[str, Any]) -> tuple[Any, ...]:
    """What the person's links say: the membership intervals and every (account, rule) known."""
    return _intervals(_account_points(state)), sorted({(p[1], p[2]) for p in state["accounts"]})


def on_person_event(
    state: dict[str, Any], entry: TimelineEvent, person: str, cfg: IdentityConfig, *, replay: bool = False
) -> Outcome:
    """Record the account the event names; resolve the event's account at its own time.

    Job changes: a later event naming another account starts a new membership at its time;
    earlier touches stay with the earlier account. A domain-derived account is merged into the
    CRM/group account the same person is found in (recorded as an ``account_merge`` link).
    """
    out = Outcome(person=person)
    t = utc_ms(entry.event_time)
    changed = False
    before = _memberships(state)
    evidence = []
    if entry.account_id and not replay:
        evidence.append((entry.account_id, account_rule(entry)))
        # a CRM record naming a work email's account also ties that email's domain to it
        if entry.domain and account_rule(entry) == "crm":
            evidence.append((f"domain:{entry.domain}", "domain"))
    for account, rule in evidence:
        points = state["accounts"]
        if len(points) >= cfg.max_points_per_person and not _make_room(points, account, rule):
            out.refused.append(f"person {person} has {cfg.max_points_per_person} account points (cap)")
            continue
        changed = _insert_point(points, t, account, rule) or changed
    if changed and before == _memberships(state):
        changed = False  # more evidence for the same memberships: the links and accounts stand
    named = aliases(entry, person, cfg)
    fresh = [a for a in named if a not in state["aliases"]]
    # nothing new and this very event seen before: redelivered after a crash between the state
    # write and the sends — its links are sent again (idempotent: a link row is the whole current
    # link). Another event that only repeats known facts (every CRM record naming the same
    # account) sends nothing: re-sent links cost a store refresh of every event they reach.
    seen = state.setdefault("seen", [])
    repeat = not changed and not fresh and bool(evidence or named) and entry.event_id in seen
    if (evidence or named) and entry.event_id not in seen:
        seen.append(entry.event_id)
        del seen[:-SEEN_MAX]
    for alias in named:
        if alias in fresh:
            state["aliases"].append(alias)
        if alias in fresh or repeat:
            out.links.append(_link("person_alias", alias, (person,), (NEG_INF_MS,), (POS_INF_MS,), ("alias",)))
    if changed or repeat and evidence:
        points = _account_points(state)
        dsts, froms, tos, rules = _intervals(points)
        out.links.append(_link("person_account", person, dsts, froms, tos, rules))
        domains = sorted({p[1] for p in state["accounts"] if p[2] == "domain"})
        # the domain merges into the person's latest CRM account, else their latest group account
        strong = ([p for p in state["accounts"] if p[2] == "crm"]
                  or [p for p in state["accounts"] if p[2] == "group"])
        if domains and strong:
            _, target, rule = sorted(strong)[-1][:3]
            for domain in domains:
                out.links.append(
                    _link("account_merge", domain, (target,), (NEG_INF_MS,), (POS_INF_MS,), (f"domain→{rule}",))
                )
    points = _account_points(state)
    out.account = at_time(points, t)
    recent = state.setdefault("recent", [])
    if changed:
        # earlier events whose account changed (first strong evidence reaches back, job changes
        # arriving late) are re-sent to their new account's journey; storage is not touched
        for item in recent:
            now_at = at_time(points, item[0])
            if now_at != item[1]:
                item[1] = now_at
                if now_at:
                    moved = TimelineEvent.model_validate_json(item[2]).model_copy(
                        update={"journey_account_id": now_at, "replay": True, "person_id": person})
                    out.replays.append(moved.model_dump_json())
    # remembered even when no account is known yet (an anonymous event re-sent once its device
    # was identified): it goes to the account's journey when the person's account is learnt
    recent.append([t, out.account, replay_json(entry)])
    recent.sort(key=lambda r: r[0])
    del recent[: -cfg.person_recent_events]
    state["recent"] = _within_bytes(recent, cfg.max_state_bytes)
    return out
