"""Journey state per account (pure): stage machine, lead/account scoring, buying committee.

Scores decay with a half-life in *event time* and are kept as a sum referenced to the newest
event seen, so the same events in any order give the same score. The bounded history of event
ids makes a redelivered event a no-op (at-least-once input, idempotent state).
"""

from __future__ import annotations

import copy
import hashlib
import zlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, TypeVar

from schemas.definitions import Condition, Definitions, Stage
from schemas.timeline import TimelineEvent, utc_ms

DAY_MS = 86_400_000


@dataclass(frozen=True)
class StageChange:
    change_id: str
    account_id: str
    from_stage: str
    to_stage: str
    at_ms: int
    rule: str
    definitions_version: str
    event_id: str
    contact_id: str
    source: str
    persona: str = ""


@dataclass
class JourneyOutcome:
    duplicate: bool = False
    stage_changes: list[StageChange] = field(default_factory=list)
    retracted: list[str] = field(default_factory=list)
    score: dict[str, float] = field(default_factory=dict)


SEQ_VERSION_BASE = 1 << 62  # above the wall-clock (µs) versions written before outputs carried seq


def output_version(state: dict[str, Any]) -> int:
    """The store version of what the account emits now: the number of events its state has
    applied, so the state that saw more events wins — not the process that wrote last (a worker
    resuming after its partitions moved writes later, from an older state)."""
    return SEQ_VERSION_BASE + int(state.get("seq", 0))


def new_journey() -> dict[str, Any]:
    return {
        "stage": "", "stage_rank": -1, "stage_since_ms": 0, "engagement": 0.0, "ref_ms": 0,
        "fit": 0.0, "account_fit": 0.0, "contacts": {}, "last_touch_ms": 0,
        "last_human_ms": 0, "last_digital_ms": 0, "owner": "", "source": "", "mql_at_ms": 0,
        "first_touch_ms": 0, "history": [], "changes": [],
    }  # fmt: skip


def decay(points: float, age_ms: int, half_life_days: float) -> float:
    """Points worth ``age_ms`` ago, halved every ``half_life_days``."""
    return float(points * 0.5 ** (age_ms / (half_life_days * DAY_MS)))


def _add_decayed(value: float, ref_ms: int, points: float, t: int, half_life: float) -> tuple[float, int]:
    """Add ``points`` at time ``t`` to a decayed sum referenced at ``ref_ms``; order-independent."""
    if t >= ref_ms:
        return decay(value, t - ref_ms, half_life) + points, t
    return value + decay(points, ref_ms - t, half_life), ref_ms


def touch_points(entry: TimelineEvent | Fact, defs: Definitions) -> float:
    channel = defs.channels.get(entry.channel)
    if channel is None or not channel.touch:
        return 0.0
    points = defs.scoring.channel_points.get(entry.channel, 0.0)
    path = str(entry.properties.get("path") or entry.name or "")
    for prefix, extra in defs.scoring.page_points.items():
        if path.startswith(prefix):
            points += extra
    return points


def _icp_fit(traits: dict[str, Any], defs: Definitions) -> float:
    fit = 0.0
    for rule in defs.icp:
        value = traits.get(rule.trait)
        if value is None:
            continue
        if rule.one_of is not None and str(value).lower() in {v.lower() for v in rule.one_of}:
            fit += rule.points
        elif rule.one_of is None:
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if (rule.min is None or number >= rule.min) and (rule.max is None or number <= rule.max):
                fit += rule.points
    return fit


def _matches(cond: Condition, entry: TimelineEvent | Fact, score: float) -> bool:
    props = entry.properties
    if cond.score_at_least is not None and score < cond.score_at_least:
        return False
    if cond.lead_status is not None and not (entry.event_type == "lead_status" and props.get("status") in cond.lead_status):
        return False
    if cond.opportunity is not None and not (entry.event_type == "opportunity" and props.get("action") in cond.opportunity):
        return False
    if cond.conversation_outcome is not None and not (
        entry.event_type == "conversation" and props.get("outcome") in cond.conversation_outcome
    ):
        return False
    return True


def _possible(cond: Condition, event_type: str) -> bool:
    """Can ``cond`` hold for an event of this type (whatever its properties and the score)?"""
    return ((cond.lead_status is None or event_type == "lead_status")
            and (cond.opportunity is None or event_type == "opportunity")
            and (cond.conversation_outcome is None or event_type == "conversation"))


_T = TypeVar("_T")


def _per_defs(cache: dict[int, tuple[Definitions, Any]], defs: Definitions, make: Callable[[], _T]) -> _T:
    """``make()`` once per definitions version (``defs`` is frozen) rather than once per fact
    applied: a replay applies every fact of a journey again."""
    made = cache.get(id(defs))
    if made is None or made[0] is not defs:  # the object is kept: its id is not reused meanwhile
        if len(cache) >= 8:
            cache.clear()
        made = cache[id(defs)] = (defs, make())
    return made[1]


_STAGE_PLANS: dict[int, tuple[Definitions, Any]] = {}
_PLAN_TYPES_MAX = 64


def _stage_plan(defs: Definitions, event_type: str) -> list[tuple[Stage, list[Condition]]]:
    """``defs.stages`` in order, each with the conditions an event of this type can meet, the
    stages with none left out: what :func:`_apply` tries (a page view meets no CRM condition).
    Made once per definitions version and type."""
    plans: dict[str, list[tuple[Stage, list[Condition]]]] = _per_defs(_STAGE_PLANS, defs, dict)
    plan = plans.get(event_type)
    if plan is None:
        plan = [(stage, conds) for stage in defs.stages
                if (conds := [c for c in stage.when if _possible(c, event_type)])]
        if len(plans) < _PLAN_TYPES_MAX:  # event types are a short list; an odd one is planned each time
            plans[event_type] = plan
    return plan


def _change_id(account: str, to_stage: str, event_id: str) -> str:
    return hashlib.sha256(f"{account}|{to_stage}|{event_id}".encode()).hexdigest()[:32]


def _update_contact(state: dict[str, Any], entry: TimelineEvent | Fact, points: float, t: int, defs: Definitions) -> None:
    person = contact_key(entry)
    if not person:
        return
    contact = state["contacts"].setdefault(person, {"persona": "", "score": 0.0, "ref_ms": 0, "title": ""})
    title = entry.properties.get("title") if entry.event_type == "identify" else None
    if isinstance(title, str) and title:
        contact["title"] = title[:128]
        persona = defs.persona_of(title)
        if persona:
            contact["persona"] = persona
    if points:
        contact["score"], contact["ref_ms"] = _add_decayed(contact["score"], contact["ref_ms"], points, t,
                                                           defs.scoring.half_life_days)


def contact_key(entry: TimelineEvent | Fact) -> str:
    """Whom an event scores for: the resolved person, else the contact id or email."""
    return entry.person_id or entry.contact_id or entry.email


def contact_scores(state: dict[str, Any], keys: Iterable[str]) -> list[tuple[str, str, str, float, int]]:
    """(contact, persona, title, score, scored at ms) of the given contacts the journey knows."""
    contacts = state.get("contacts", {})
    return [(k, c["persona"], c.get("title", ""), round(c["score"], 4), c["ref_ms"])
            for k in sorted(set(keys)) if (c := contacts.get(k)) is not None]


def _persona_of(state: dict[str, Any], entry: TimelineEvent | Fact) -> str:
    person = entry.person_id or entry.contact_id or entry.email
    contact = state["contacts"].get(person) if person else None
    if contact and contact["persona"]:
        return str(contact["persona"])
    personas = sorted({c["persona"] for c in state["contacts"].values() if c["persona"]})
    return personas[0] if personas else ""


_FIT_POINTS: dict[int, tuple[Definitions, Any]] = {}


def _fit_points(defs: Definitions) -> dict[str, float]:
    """Persona name → fit points of ``defs`` (``persona_fit`` runs on every fact of every replay)."""
    return _per_defs(_FIT_POINTS, defs, lambda: {p.name: p.fit_points for p in defs.personas})


def persona_fit(state: dict[str, Any], defs: Definitions) -> float:
    points = _fit_points(defs)
    return max((points.get(c["persona"], 0.0) for c in state["contacts"].values()), default=0.0)


def committee(state: dict[str, Any], defs: Definitions, now_ms: int) -> dict[str, list[str]]:
    """Engaged contacts by persona (decayed to ``now_ms``)."""
    out: dict[str, list[str]] = {}
    for person, c in sorted(state["contacts"].items()):
        score = decay(c["score"], max(0, now_ms - c["ref_ms"]), defs.scoring.half_life_days)
        if score >= defs.scoring.engaged_contact_points:
            out.setdefault(c["persona"] or "unknown", []).append(person)
    return out


HISTORY_MAX = 150
"""Compact facts kept per account so a late event can be replayed in event-time order. Faust
writes the whole state to the changelog on every update, so this bounds write amplification."""

JOURNEY_PROPS = ("status", "action", "outcome", "leadSource", "title", "employees", "industry", "path", "utm")
"""The event properties the journey and alert rules read (all they keep of an event)."""
_FACT_PROPS = JOURNEY_PROPS
_FACT_FIELDS = ("event_id", "event_type", "name", "channel", "side", "person_id", "contact_id", "email", "rep_id",
                "rep_role")


_COMPACT_FIELDS = _FACT_FIELDS[1:]
"""A fact is stored as a list: these fields in order, then the properties (the event id is the
history entry's own). Written once per key and batch to the changelog, 150 of them per account:
positional lists take about half the bytes of dicts."""
FACT_COLUMNS = _COMPACT_FIELDS
"""The timeline columns a fact holds, in its order (a rebuild reads them from the store)."""


def _fact(entry: TimelineEvent) -> list[Any]:
    """The parts of an event the journey rules read (enough to replay it later)."""
    data: list[Any] = [getattr(entry, name) for name in _COMPACT_FIELDS]
    data.append({k: entry.properties[k] for k in _FACT_PROPS if k in entry.properties})
    return data


class Fact:
    """A remembered fact as the rules read it: the attributes of a ``TimelineEvent`` that
    :func:`_apply` uses, read from the history without a model validation (a late event
    replays up to ``HISTORY_MAX`` of them). ``data``: the stored list (or, from states written
    before the lists, a dict)."""

    __slots__ = _FACT_FIELDS + ("properties",)
    event_id: str
    event_type: str
    name: str
    channel: str
    side: str
    person_id: str
    contact_id: str
    email: str
    rep_id: str
    rep_role: str
    properties: dict[str, Any]

    def __init__(self, data: list[Any] | dict[str, Any], event_id: str = "") -> None:
        if isinstance(data, dict):
            for name in _FACT_FIELDS:
                setattr(self, name, data.get(name) or "")
            self.properties = data.get("properties") or {}
            self.event_id = self.event_id or event_id
            return
        self.event_id = event_id
        if len(data) > len(_COMPACT_FIELDS):  # as written by _fact (replays read every fact: unrolled)
            (event_type, name, channel, side, person_id, contact_id, email, rep_id, rep_role,
             self.properties) = data[:len(_COMPACT_FIELDS) + 1]
            self.event_type, self.name, self.channel, self.side = event_type or "", name or "", channel or "", side or ""
            self.person_id, self.contact_id, self.email = person_id or "", contact_id or "", email or ""
            self.rep_id, self.rep_role = rep_id or "", rep_role or ""
            return
        for field_name, value in zip(_COMPACT_FIELDS, data, strict=False):
            setattr(self, field_name, value or "")
        for field_name in _COMPACT_FIELDS[len(data):]:  # a shorter list: the missing fields empty
            setattr(self, field_name, "")
        self.properties = {}


def on_journey_event(state: dict[str, Any], entry: TimelineEvent, account: str, defs: Definitions) -> JourneyOutcome:
    """Apply one event to the account's journey; return stage changes and the new scores.

    Events are applied in event-time order: an event older than the newest one applied is a
    late event, and the journey is replayed from its history so it ends exactly as an
    in-order run would; ``retracted`` lists the stage changes that no longer happened.
    """
    return on_journey_events(state, [entry], account, defs)[0][1]


def on_journey_events(state: dict[str, Any], entries: list[TimelineEvent], account: str, defs: Definitions,
                      then: Callable[[TimelineEvent, JourneyOutcome, int], None] | None = None,
                      ) -> list[tuple[TimelineEvent, JourneyOutcome]]:
    """Apply a batch of the account's events; each event with its outcome, in the order applied.

    The same journey as applying them one at a time in event-time order, at the cost of at
    most one replay: redelivered events (already in the history) hand back what they emitted;
    the new ones are sorted by (event time, id); those older than the newest event applied
    before the batch are late, go into the history together and cost one replay, whose
    outcome is the last late event's; the rest are applied in order, one by one.

    ``then(entry, outcome, newest_ms)`` runs after each event is applied (the late ones: after
    their replay), with the newest event time the journey had seen before it — where the
    caller runs the rules that read the state as of that event (alerts).
    """
    history = state.setdefault("history", [])
    known = {f[1] for f in history}
    out: list[tuple[TimelineEvent, JourneyOutcome]] = []

    def done(entry: TimelineEvent, outcome: JourneyOutcome, newest: int) -> None:
        out.append((entry, outcome))
        if then is not None:
            then(entry, outcome, newest)

    fresh: dict[str, tuple[int, TimelineEvent]] = {}
    for entry in entries:
        if entry.event_id in known:
            done(entry, _again(state, entry.event_id), state.get("ref_ms", 0))
        elif entry.event_id not in fresh:  # a second copy in the same batch: the first is applied
            fresh[entry.event_id] = (utc_ms(entry.event_time), entry)
    ordered = sorted(fresh.values(), key=lambda te: (te[0], te[1].event_id))
    newest = history[-1][0] if history else None
    late = [te for te in ordered if newest is not None and te[0] < newest]
    if late:
        ref = state.get("ref_ms", 0)
        replayed = _replay(state, late, account, defs)
        for _, entry in late[:-1]:  # the replay speaks for them all
            done(entry, JourneyOutcome(), ref)
        done(late[-1][1], replayed, ref)
    for t, entry in ordered[len(late):]:
        ref = state.get("ref_ms", 0)
        state["seq"] = state.get("seq", 0) + 1  # events applied: orders this account's outputs
        history.append([t, entry.event_id, _fact(entry)])
        _evict(state, account, defs)
        one = _apply(state, entry, account, defs, t)
        state["changes"] = (state.get("changes", []) + [c.change_id for c in one.stage_changes])[-HISTORY_MAX:]
        _log_changes(state, entry.event_id, one.stage_changes, [])
        done(entry, one, ref)
    return out


def _evict(state: dict[str, Any], account: str, defs: Definitions) -> None:
    """Keep ``HISTORY_MAX`` facts: the oldest ones leave the history for the *base*, the journey
    as of just before the oldest fact kept, which a replay starts from. (Without it a late event
    in a journey longer than the history replayed from an empty journey and lost everything
    before the history: stage, owner, source, contacts.) An event older than the base is
    applied to the base out of order: lateness is exact within the last ``HISTORY_MAX`` events."""
    history = state["history"]
    if len(history) <= HISTORY_MAX:
        return
    base = state.get("base")
    if base is None:
        base = {k: v for k, v in new_journey().items() if k != "history"}
    for t, event_id, data, *via in history[:-HISTORY_MAX]:
        changed = _apply(base, Fact(data, event_id), account, defs, t).stage_changes
        if changed:
            base["changes"] = (base.get("changes", []) + [c.change_id for c in changed])[-HISTORY_MAX:]
        if not via:  # the newest of its own facts folded in (a rebuild waits for the store to have it)
            base["folded"] = event_id
    gone = len(history) - HISTORY_MAX
    folded = {h[1] for h in history[:gone]}
    mark = state.get("mark")
    if mark is not None and (mark[0] > len(history) or _prefix_sig(history, mark[0]) != mark[1]):
        mark = None  # a late fact went in before it: stale
    del history[:-HISTORY_MAX]
    state["base"] = base
    state.pop("mark", None)
    if mark is not None:  # the mark's journey is the new base plus its remaining facts: still valid
        if mark[0] - gone > 0:
            state["mark"] = [mark[0] - gone, _prefix_sig(history, mark[0] - gone), mark[2],
                             [c for c in mark[3] if c[0] not in folded]]


def _again(state: dict[str, Any], event_id: str) -> JourneyOutcome:
    """A redelivered event (at-least-once input): the state has it, but its outputs may have
    been lost with a crash between the state write and the sends — hand them back to be
    re-sent (the changes it emitted, still valid, and the changes it retracted, still
    retracted) — each change as last emitted: a later late event may have re-emitted it with
    another from_stage, and re-sending the older record would overwrite the newer one."""
    valid = set(state.get("changes", []))  # never resurrect a change a late event retracted
    logged = _logged(state)
    latest = {change["change_id"]: change for _, change, _ in logged if change is not None}
    mine, retracted = [], set()
    for trigger, change, gone in logged:
        if trigger == event_id:
            if change is not None and change["change_id"] in valid and change["change_id"] not in mine:
                mine.append(change["change_id"])
            retracted.update(gone)
    again = [StageChange(**latest[cid]) for cid in mine]
    return JourneyOutcome(duplicate=True, stage_changes=again, retracted=sorted(retracted - valid))


def _replay(state: dict[str, Any], late: list[tuple[int, TimelineEvent]], account: str,
            defs: Definitions) -> JourneyOutcome:
    """Late events: into the history, then one replay of it from a fresh journey."""
    history = state["history"]
    state["seq"] = state.get("seq", 0) + len(late)
    history.extend([t, entry.event_id, _fact(entry)] for t, entry in late)
    history.sort(key=lambda f: (f[0], f[1]))
    _evict(state, account, defs)
    return _rebuild(state, account, defs, late[0][0], late[-1][1].event_id, after=(late[0][0], late[0][1].event_id))


MARK_LAG: int | None = 16
"""A replay leaves a checkpoint (the *mark*: the journey as of the fact this many facts before the
end of its history), so the next replay of a late event that sorts after that fact starts there
instead of at the base. Late events are mostly a few facts late (drain of the synthetic set: median
6, p90 14), while a full replay re-applies the whole history — up to ``HISTORY_MAX`` facts per
batch of a long journey. ``None``: no marks (every replay from the base)."""

MARK_MIN_HISTORY = 64
"""Marks only on journeys with at least this many facts: a mark is a copy of the journey written
with the state on every batch (a live drain of the short synthetic journeys wrote 33% more journey
changelog bytes with marks on every journey, for 6% fewer fact applications), while a long
journey's replays are where the time goes."""

_BASE_ONLY = ("base", "history", "changes", "folded", "mark")
"""Keys of a replayed journey that a mark does not hold: the base's own and the history."""


def _prefix_sig(history: list[Any], n: int) -> int:
    """A fingerprint of the first ``n`` facts' ids: a mark is only used on the history it was made on."""
    return zlib.crc32("\x1f".join(h[1] for h in history[:n]).encode())


def _usable_mark(state: dict[str, Any], after: tuple[int, str] | None) -> list[Any] | None:
    """The journey's mark if the facts it was made from are still the history's first ones and
    every changed fact sorts after them (``after``: the earliest changed fact's key)."""
    mark, history = state.get("mark"), state["history"]
    if MARK_LAG is None or mark is None or after is None:
        return None
    n = mark[0]
    if not 0 < n <= len(history) or (history[n - 1][0], history[n - 1][1]) >= after:
        return None
    return mark if _prefix_sig(history, n) == mark[1] else None


def _rebuild(state: dict[str, Any], account: str, defs: Definitions, first: int, trigger: str,
             after: tuple[int, str] | None = None) -> JourneyOutcome:
    """The journey replayed through its history (which changed at or after ``first`` ms): the
    stage changes that are new or at/after ``first``, and those retracted. From its base, or —
    when ``after`` (the key of the earliest changed fact) sorts after its mark — from the mark."""
    history = state["history"]
    before = set(state.get("changes", []))
    base = state.get("base")
    mark = _usable_mark(state, after)
    made: list[list[str]] = []  # [event id, change id] of every change the history's facts make, in order
    if mark is not None:
        start, fresh, made = mark[0], copy.deepcopy(mark[2]), [list(c) for c in mark[3]]
        if base and "folded" in base:
            fresh["folded"] = base["folded"]
    else:
        start = 0
        fresh = copy.deepcopy(base) if base else new_journey()
        fresh.pop("changes", None)
    if base:
        fresh["base"] = base
    fresh["history"] = history
    capture = (len(history) - MARK_LAG if MARK_LAG is not None and len(history) >= MARK_MIN_HISTORY
               else -1)  # facts applied when the next mark is made
    new_mark = mark if mark is not None and capture <= start else None  # a mark at or past the capture point stays
    changes: list[StageChange] = []
    out = JourneyOutcome()
    for i in range(start, len(history)):
        t, event_id, data, *_ = history[i]
        out = _apply(fresh, Fact(data, event_id), account, defs, t)
        changes.extend(out.stage_changes)
        made.extend([event_id, c.change_id] for c in out.stage_changes)
        if i + 1 == capture:
            snapshot = {k: copy.deepcopy(v) for k, v in fresh.items() if k not in _BASE_ONLY}
            new_mark = [capture, _prefix_sig(history, capture), snapshot, [list(c) for c in made]]
    fresh["changes"] = [c for _, c in made][-HISTORY_MAX:]
    for key in MEMORY_KEYS:
        if key in state:  # memory survives the replay
            fresh[key] = state[key]
    if new_mark is not None:
        fresh["mark"] = new_mark
    state.clear()
    state.update(fresh)
    # new changes, and any at or after the earliest changed fact (their from_stage may have changed)
    out.stage_changes = [c for c in changes if c.change_id not in before or c.at_ms >= first]
    made_ids = {c for _, c in made}
    out.retracted = sorted(before - made_ids - set(base.get("changes", []) if base else ()))
    _log_changes(state, trigger, out.stage_changes, out.retracted)
    return out


# -- merged accounts ---------------------------------------------------------------------------

MERGE_KEYS = ("merged_into", "merge_rule", "unmerged")
"""What a journey remembers of merges: the account it is merged into (its facts forwarded
there), the account the identity rules last merged it into, and accounts a manual unmerge
keeps it apart from."""

MEMORY_KEYS = ("recent", "fired", "last_fired", "change_log", "alert_log", "seq") + MERGE_KEYS + (
    "rebuilding", "rebuilt", "alert_recheck")
"""What a journey remembers that is not computed from its facts: it survives a replay and a
rebuild (alerts fired, outputs logged for redeliveries, merges, a rebuild in progress, the
touch alerts' re-check after an identity change)."""


def before_window(state: dict[str, Any], entries: list[TimelineEvent]) -> list[TimelineEvent]:
    """The new events older than every fact the journey keeps, once it has folded older ones
    into its base: applied to the base out of order, they are only exact after a rebuild."""
    history = state.get("history") or []
    if not state.get("base") or not history:
        return []
    floor, known = history[0][0], {h[1] for h in history}
    return [e for e in entries if e.event_id not in known and utc_ms(e.event_time) < floor]


def rebuild_into(fresh: dict[str, Any], entries: list[TimelineEvent], account: str, defs: Definitions,
                 changes: dict[str, dict[str, Any]]) -> None:
    """Apply a rebuild's events (stored events in time order, then the live ones) to the journey
    being rebuilt, keeping every stage change it makes in ``changes`` (id → change)."""

    def keep(_: TimelineEvent, outcome: JourneyOutcome, __: int) -> None:
        for gone in outcome.retracted:
            changes.pop(gone, None)
        for change in outcome.stage_changes:
            changes[change.change_id] = dict(change.__dict__)

    on_journey_events(fresh, entries, account, defs, keep)


def rebuilt(state: dict[str, Any], fresh: dict[str, Any], changes: dict[str, dict[str, Any]]) -> JourneyOutcome:
    """Swap the rebuilt journey in (memory kept, forwarded facts still tagged): every change it
    made, and the ones the journey had that no longer happened."""
    before = set(state.get("changes", [])) | set((state.get("base") or {}).get("changes", []))
    tags = {h[1]: h[3] for h in state.get("history", []) if len(h) > 3}
    for key in MEMORY_KEYS:
        if key in state:
            fresh[key] = state[key]
    fresh.pop("rebuilding", None)
    fresh.pop("rebuilt", None)
    fresh["seq"] = state.get("seq", 0) + 1
    mark_forwarded(fresh, tags)
    state.clear()
    state.update(fresh)
    return JourneyOutcome(stage_changes=[StageChange(**c) for c in changes.values()],
                          retracted=sorted(before - set(changes)))


def facts(state: dict[str, Any] | None) -> list[list[Any]]:
    """The journey's own facts ``[t, event id, fact]`` (not those another journey forwarded)."""
    return [h[:3] for h in (state or {}).get("history", []) if len(h) < 4]


def fact_event(t: int, event_id: str, data: list[Any] | dict[str, Any], account: str) -> TimelineEvent:
    """A remembered fact as a timeline event of ``account``'s journey (no validation: it was
    validated when it was first applied) — how a merged journey's facts reach the target."""
    fact = Fact(data, event_id)
    at = datetime.fromtimestamp(t / 1000, timezone.utc)
    values: dict[str, Any] = {name: getattr(fact, name) for name in _FACT_FIELDS}
    values["side"] = fact.side or "digital"
    return TimelineEvent.model_construct(**values, properties=fact.properties, event_time=at, received_at=at,
                                         journey_account_id=account, replay=True)


def fact_item(entry: TimelineEvent) -> list[Any]:
    """``[t, event id, fact]``: an event as a history item (what a merged journey forwards)."""
    return [utc_ms(entry.event_time), entry.event_id, _fact(entry)]


def mark_forwarded(state: dict[str, Any], via: dict[str, str], own: set[str] | frozenset[str] = frozenset()) -> None:
    """Tag the history facts that another journey (``via[event id]``) forwarded here, so an
    unmerge can take them out again; untag those that reached this journey on their own too
    (``own``: a person's event re-sent here after their account was learnt) — they stay."""
    if not via and not own:
        return
    for h in state.get("history", []):
        if len(h) == 3 and h[1] in via:
            h.append(via[h[1]])
        elif len(h) > 3 and h[1] in own:
            del h[3:]


def drop_forwarded(state: dict[str, Any], via: str, account: str, defs: Definitions) -> JourneyOutcome | None:
    """The journey without the facts ``via`` forwarded (an unmerge): replayed from its base;
    None if it had none. Facts already folded into the base stay (lateness window)."""
    history = state.get("history", [])
    kept = [h for h in history if not (len(h) > 3 and h[3] == via)]
    if len(kept) == len(history):
        return None
    first = min(h[0] for h in history if len(h) > 3 and h[3] == via)
    state["history"] = kept
    state["seq"] = state.get("seq", 0) + 1
    return _rebuild(state, account, defs, first, f"unmerge:{via}")


def recompute(state: dict[str, Any], account: str, defs: Definitions, trigger: str) -> JourneyOutcome:
    """Every stage change of the journey's history again (a journey that stops being merged
    into another shows its own changes again)."""
    state["seq"] = state.get("seq", 0) + 1
    return _rebuild(state, account, defs, 0, trigger)


MERGE_REASON = "identity merge"
UNMERGE_REASON = "identity unmerge"


def because(outcome: JourneyOutcome, reason: str, before: set[str] | None = None) -> JourneyOutcome:
    """``outcome`` of a recompute the identity graph caused (``reason``: ``identity merge`` or
    ``identity unmerge``): the stage changes it entered say so in their rule (``identity
    unmerge: score >= 10``) — all of them, or with ``before`` (the change ids the journey had)
    only the new ones; changes it only re-stated keep their own rule."""
    if not reason:
        return outcome
    changes = [c if before is not None and c.change_id in before or c.rule.startswith(reason)
               else replace(c, rule=f"{reason}: {c.rule}") for c in outcome.stage_changes]
    return JourneyOutcome(duplicate=outcome.duplicate, stage_changes=changes, retracted=outcome.retracted,
                          score=outcome.score)


CHANGE_LOG_MAX = 40


def _log_changes(state: dict[str, Any], trigger: str, changes: list[StageChange], retracted: list[str]) -> None:
    """Keep what the latest events emitted — stage changes (a late event re-emits later ones
    too) and retractions — so a redelivered event can re-send exactly its own outputs."""
    log = state.setdefault("change_log", [])
    log.extend([trigger, c.__dict__, []] for c in changes)
    if retracted:
        log.append([trigger, None, list(retracted)])
    del log[:-CHANGE_LOG_MAX]


def _logged(state: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None, list[str]]]:
    """The change log as (trigger event id, stage change or None, retracted ids)."""
    out: list[tuple[str, dict[str, Any] | None, list[str]]] = []
    for item in state.get("change_log", []):
        if isinstance(item, dict):  # written before retractions were logged: its own event triggered it
            out.append((item["event_id"], item, []))
        else:
            out.append((item[0], item[1], item[2]))
    return out


def _apply(state: dict[str, Any], entry: TimelineEvent | Fact, account: str, defs: Definitions,
           t: int) -> JourneyOutcome:
    """Apply one event (or remembered fact) at event time ``t`` (ms) to the journey, in order."""
    out = JourneyOutcome()
    points = touch_points(entry, defs)
    state["engagement"], state["ref_ms"] = _add_decayed(state["engagement"], state["ref_ms"], points, t,
                                                        defs.scoring.half_life_days)
    _update_contact(state, entry, points, t, defs)
    if entry.event_type == "group" and any(rule.trait in entry.properties for rule in defs.icp):
        # a group call that names no ICP trait (a CRM contact's link to its account) says
        # nothing about the fit: it keeps the fit the account's own traits gave
        state["account_fit"] = _icp_fit(entry.properties, defs)
    state["fit"] = state["account_fit"] + persona_fit(state, defs)
    channel = defs.channels.get(entry.channel)
    if channel is not None and channel.touch:
        state["first_touch_ms"] = min(state["first_touch_ms"] or t, t)
        state["last_touch_ms"] = max(state["last_touch_ms"], t)
        side_key = "last_human_ms" if channel.side == "human" else "last_digital_ms"
        state[side_key] = max(state[side_key], t)
        if not state["source"]:
            utm = entry.properties.get("utm") or {}
            state["source"] = str(utm.get("source") or entry.channel)
    if entry.side == "human" and entry.rep_id:
        state["owner"] = entry.rep_id
    if entry.event_type == "lead_status" and entry.properties.get("leadSource"):
        state["source"] = str(entry.properties["leadSource"])
    if entry.event_type == "opportunity" and entry.rep_id:
        state["owner"] = entry.rep_id
    score = state["engagement"] + state["fit"]
    cycle = ""
    if state.get("cycle_ms"):  # recycled: score conditions count the engagement since then
        cycle = state.get("cycle_stage", "recycled")
        if t >= state["cycle_ms"]:
            state["cycle_engagement"], state["cycle_ref_ms"] = _add_decayed(
                state.get("cycle_engagement", 0.0), state.get("cycle_ref_ms", t), points, t,
                defs.scoring.half_life_days)
        earned = state.get("cycle_engagement", 0.0)
        score = earned + state["fit"] if earned > 0 and t >= state.get("cycle_hold_ms", 0) else float("-inf")
    for stage, conditions in _stage_plan(defs, entry.event_type):
        if stage.name == state["stage"]:
            continue
        if stage.forward_only and stage.rank <= state["stage_rank"]:
            continue
        cond = next((c for c in conditions if _matches(c, entry, score)), None)
        if cond is None:
            continue
        rule = cond.describe()
        if cycle and cond.score_at_least is not None:
            rule += f" (engagement since {cycle})"
        change = StageChange(
            change_id=_change_id(account, stage.name, entry.event_id), account_id=account,
            from_stage=state["stage"], to_stage=stage.name, at_ms=t, rule=rule,
            definitions_version=defs.version, event_id=entry.event_id,
            contact_id=entry.person_id or entry.contact_id, source=state["source"],
            persona=_persona_of(state, entry),
        )  # fmt: skip
        out.stage_changes.append(change)
        state["stage"], state["stage_rank"], state["stage_since_ms"] = stage.name, stage.rank, t
        if stage.name == defs.stage_for("qualified"):
            state["mql_at_ms"] = t
        if stage.restarts_scoring:  # a new cycle: the score just rejected no longer qualifies
            state.update(cycle_ms=t, cycle_stage=stage.name, cycle_engagement=0.0, cycle_ref_ms=t,
                         cycle_hold_ms=t + int(stage.cooldown_days * DAY_MS))
    out.score = {"engagement": round(state["engagement"], 4), "fit": round(state["fit"], 4),
                 "total": round(state["engagement"] + state["fit"], 4)}
    return out


def forget_contacts(state: dict[str, Any], ids: Iterable[str]) -> dict[str, Any]:
    """The journey without the given person ids (``journeys privacy forget``): their contact
    entries go (from the state and its base), every remembered value equal to one of them —
    a fact's person, contact or email, a logged stage change's contact — becomes ``""``, and
    remembered alerts that mention one are dropped (they are only kept to re-send after a
    crash). Account-level figures (stage, scores, owner) stay as they are."""
    gone = {i for i in ids if i}
    if not gone:
        return state

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return "" if value in gone else value
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k not in gone}
        return value

    alerts = [entry for entry in state.get("alert_log", []) if not any(i in str(entry) for i in gone)]
    out: dict[str, Any] = scrub({k: v for k, v in state.items() if k != "alert_log"})
    if "alert_log" in state:
        out["alert_log"] = alerts
    return out
