"""Alert rules (pure): channel bounce, missed handoff, stalled opportunity, committee gap,
rejected-lead feedback. Thresholds come from the shared definitions file.

Event-time semantics: an event more than ``alerts.allowed_lateness_hours`` older than the newest event of its
account is late and raises no alert for the past. Timer rules (missed handoff, stalled
opportunity) are evaluated on ticks carrying the processing time. Every alert has a
deterministic id, and the fired ids are kept in state, so replays and restarts never repeat one;
a cooldown per account and rule stops repeats of the same condition.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from schemas.definitions import Definitions
from schemas.timeline import TimelineEvent, utc_ms

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
RECENT_MAX = 50
FIRED_MAX = 200


@dataclass(frozen=True)
class Alert:
    alert_id: str
    rule: str
    account_id: str
    at_ms: int
    owner: str
    summary: str
    definitions_version: str
    path: tuple[tuple[int, str, str, str], ...] = field(default=())
    """The recent touches that led to it: (time ms, side, channel, name)."""


class AlertClock:
    """The 'now' of timer rules: the newest event time while events flow (a replay of old data
    must not look idle), the wall clock once the stream has been idle for ``idle_ms``."""

    def __init__(self, idle_ms: int, wall_ms: Callable[[], int]) -> None:
        self._wall = wall_ms
        self.idle_ms = idle_ms
        self.newest_event_ms = 0
        self.last_seen_wall_ms = 0

    def saw(self, event_ms: int) -> None:
        self.newest_event_ms = max(self.newest_event_ms, event_ms)
        self.last_seen_wall_ms = self._wall()

    def now_ms(self) -> int:
        wall = self._wall()
        if wall - self.last_seen_wall_ms >= self.idle_ms:
            return wall
        return min(wall, self.newest_event_ms)


def alert_id(account: str, rule: str, anchor: str) -> str:
    return hashlib.sha256(f"{rule}|{account}|{anchor}".encode()).hexdigest()[:32]


def _recent(state: dict[str, Any]) -> list[list[Any]]:
    recent: list[list[Any]] = state.setdefault("recent", [])
    return recent


def remember_touch(state: dict[str, Any], entry: TimelineEvent, side: str) -> None:
    recent = _recent(state)
    recent.append([utc_ms(entry.event_time), side, entry.channel, (entry.name or "")[:80], _path(entry)[:80]])
    recent.sort(key=lambda r: r[0])
    del recent[:-RECENT_MAX]


def _path(entry: TimelineEvent) -> str:
    return str(entry.properties.get("path") or entry.name or "")


def _fire(state: dict[str, Any], out: list[Alert], rule: str, account: str, anchor: str, at_ms: int,
          cooldown_ms: float, summary: str, defs: Definitions) -> None:
    fired = state.setdefault("fired", [])
    last = state.setdefault("last_fired", {})
    aid = alert_id(account, rule, anchor)
    if aid in fired or at_ms - last.get(rule, -10**15) < cooldown_ms:
        return
    fired.append(aid)
    del fired[:-FIRED_MAX]
    last[rule] = at_ms
    path = tuple(tuple(r) for r in _recent(state)[-8:])
    out.append(Alert(aid, rule, account, at_ms, state.get("owner", ""), summary, defs.version, path))


def on_touch(state: dict[str, Any], entry: TimelineEvent, account: str, side: str, defs: Definitions,
             newest_ms: int) -> list[Alert]:
    """Rules that a touch can trigger: channel bounce (both forms)."""
    out: list[Alert] = []
    t = utc_ms(entry.event_time)
    if t < newest_ms - defs.alerts.allowed_lateness_hours * HOUR_MS:
        return out  # late: no alerts for the past
    rule = defs.alerts.channel_bounce
    window = [r for r in _recent(state) if r[1] in ("digital", "human") and t - r[0] <= rule.window_days * DAY_MS]
    switches = sum(1 for a, b in zip(window, window[1:], strict=False) if a[1] != b[1])
    cooldown = rule.cooldown_hours * HOUR_MS
    if switches >= rule.min_switches:
        _fire(state, out, "channel_bounce", account, f"switches:{t // (rule.window_days * DAY_MS):.0f}", t,
              cooldown, f"{switches} switches between self-service and 1:1 in {rule.window_days:g} days", defs)
    path = _path(entry)
    recent = _recent(state)
    last_human = max((r[0] for r in recent if r[1] == "human" and r[0] <= t), default=None)
    if (side == "digital" and last_human is not None and t - last_human <= rule.return_within_days * DAY_MS
            and any(path.startswith(p) for p in rule.evaluation_paths)):
        _fire(state, out, "back_to_research", account, f"after:{last_human}", t, cooldown,
              f"back on {path} {(t - last_human) / HOUR_MS:.0f}h after a sales conversation", defs)
    if side == "human":  # the conversation reached us after the research that followed it
        later_human = min((r[0] for r in recent if r[1] == "human" and r[0] > t), default=None)
        for r in recent:
            if (r[1] == "digital" and t < r[0] <= t + rule.return_within_days * DAY_MS and len(r) > 4
                    and (later_human is None or r[0] < later_human)
                    and any(str(r[4]).startswith(p) for p in rule.evaluation_paths)):
                _fire(state, out, "back_to_research", account, f"after:{t}", r[0], cooldown,
                      f"back on {r[4]} {(r[0] - t) / HOUR_MS:.0f}h after a sales conversation", defs)
                break
    return out


def committee_gap(state: dict[str, Any], account: str, stage_rank: int, engaged: dict[str, list[str]],
                  at_ms: int, defs: Definitions) -> list[Alert]:
    out: list[Alert] = []
    from_stage = defs.stage(defs.alerts.committee_from_stage)
    if from_stage is None or stage_rank < from_stage.rank or stage_rank <= 0:
        return out
    if state.get("stage") in {defs.stage_for("won"), defs.stage_for("lost")} - {""}:
        return out  # a closed deal: nobody is left to bring into the buying committee
    missing = [p for p in defs.alerts.committee_required_personas if not engaged.get(p)]
    if missing:
        _fire(state, out, "committee_gap", account, f"stage:{state.get('stage')}", at_ms, 7 * DAY_MS,
              f"at {state.get('stage')} with no engaged {', '.join(missing)}", defs)
    return out


def _at(state: dict[str, Any], defs: Definitions, role: str) -> bool:
    """Whether the account is at the stage with this role (names come from the definitions)."""
    name = defs.stage_for(role)
    return bool(name) and state.get("stage") == name


def on_tick(state: dict[str, Any], account: str, now_ms: int, defs: Definitions) -> list[Alert]:
    """Timer rules, evaluated when nothing happens: missed handoff and stalled opportunity."""
    out: list[Alert] = []
    mql_at = state.get("mql_at_ms", 0)
    sla_ms = defs.sla.mql_first_touch_hours * HOUR_MS
    if (mql_at and _at(state, defs, "qualified") and state.get("last_human_ms", 0) < mql_at
            and now_ms - mql_at > sla_ms):
        _fire(state, out, "missed_handoff", account, f"mql:{mql_at}", now_ms,
              defs.alerts.missed_handoff_cooldown_hours * HOUR_MS,
              f"MQL for {(now_ms - mql_at) / HOUR_MS:.0f}h without a sales touch (SLA "
              f"{defs.sla.mql_first_touch_hours:g}h)", defs)
    last = state.get("last_touch_ms", 0)
    stall_ms = defs.alerts.stalled_opportunity_days * DAY_MS
    if _at(state, defs, "opportunity") and last and now_ms - last > stall_ms:
        _fire(state, out, "stalled_opportunity", account, f"idle-since:{last}", now_ms, stall_ms,
              f"opportunity with no activity for {(now_ms - last) / DAY_MS:.0f} days", defs)
    return out


def next_due_ms(state: dict[str, Any], defs: Definitions) -> int:
    """When a timer rule could next fire for this account (0: never): when its condition is met,
    or when the rule's cooldown ends if that is later (an account held back by a cooldown is not
    ticked, and its state rewritten, every tick until then)."""
    due = []
    fired = set(state.get("fired", []))
    last_fired = state.get("last_fired", {})
    account = state.get("account", "")
    mql_at, last = state.get("mql_at_ms", 0), state.get("last_touch_ms", 0)
    if (_at(state, defs, "qualified") and mql_at and state.get("last_human_ms", 0) < mql_at
            and alert_id(account, "missed_handoff", f"mql:{mql_at}") not in fired):
        due.append(_after_cooldown(last_fired, "missed_handoff", mql_at + int(defs.sla.mql_first_touch_hours * HOUR_MS),
                                   defs.alerts.missed_handoff_cooldown_hours * HOUR_MS))
    if (_at(state, defs, "opportunity") and last
            and alert_id(account, "stalled_opportunity", f"idle-since:{last}") not in fired):
        stall_ms = defs.alerts.stalled_opportunity_days * DAY_MS
        due.append(_after_cooldown(last_fired, "stalled_opportunity", last + int(stall_ms), stall_ms))
    return min(due) if due else 0


def _after_cooldown(last_fired: dict[str, int], rule: str, due_ms: int, cooldown_ms: float) -> int:
    """``due_ms``, or the end of the rule's cooldown if it fired and that is later."""
    if rule not in last_fired:
        return due_ms
    return max(due_ms, last_fired[rule] + math.ceil(cooldown_ms))


class DueIndex:
    """account → when its timer rules are next due (ms), for the accounts of this worker.

    The tick timer asks it which accounts are due instead of reading every journey: a scan of the
    journeys table parses every account's whole state each tick (``list(journeys.items())`` did,
    all at once), a cost and a transient memory peak that grow with the accounts and their
    histories (``make soak``: Python's allocator took a new arena every 12 s). The journey agent
    notes every state it writes; after a rebalance the index is rebuilt from the table's local
    partitions. An entry for an account that moved to another worker only costs a tick its new
    owner ignores (ticks are idempotent).
    """

    def __init__(self) -> None:
        self._due: dict[str, int] = {}
        self._noted: set[str] | None = None
        self._refills = 0

    def note(self, account: str, due_ms: int) -> None:
        """The account's due time as its journey now stands (0: nothing due)."""
        if self._noted is not None:
            self._noted.add(account)
        self._put(account, due_ms)

    def _put(self, account: str, due_ms: int) -> None:
        if due_ms:
            self._due[account] = due_ms
        else:
            self._due.pop(account, None)

    def due(self, now_ms: int) -> list[str]:
        return [account for account, due in self._due.items() if due <= now_ms]

    def clear(self) -> None:
        self._due.clear()
        self._noted = None

    # -- a refill from the table, while the journey stage goes on writing ----------------------
    def refill(self) -> int:
        """Empty the index for a refill from the table (:meth:`restore`, then :meth:`refilled`
        with the number returned: a refill cancelled by a newer one must not end the newer)."""
        self._due.clear()
        self._noted = set()
        self._refills += 1
        return self._refills

    def restore(self, account: str, due_ms: int) -> None:
        """The due time of a state read from the table during a refill: kept unless the stage
        noted the account since the refill began — a walk of the table reads it as it was when
        the walk began (a RocksDB iterator's snapshot), the stage's note is newer."""
        if self._noted is None or account not in self._noted:
            self._put(account, due_ms)

    def refilled(self, refill: int) -> None:
        if refill == self._refills:
            self._noted = None

    def __len__(self) -> int:
        return len(self._due)


def on_lead_outcome(state: dict[str, Any], source: str, status: str, t: int, lead_id: str,
                    defs: Definitions) -> list[Alert]:
    """Rejected-lead feedback: a source's MQL rejection rate over a window (state keyed by source)."""
    out: list[Alert] = []
    seen = state.setdefault("leads", {})
    seen.setdefault(lead_id, {})[status] = t
    window = defs.alerts.rejected_leads_window_days * DAY_MS
    recent = {k: v for k, v in seen.items() if max(v.values()) >= t - window}
    state["leads"] = dict(list(recent.items())[-2000:])
    mqls = sum(1 for v in recent.values() if "mql" in v)
    rejected = sum(1 for v in recent.values() if "rejected" in v)
    # judged after every outcome, not only a rejection: outcomes of different leads reach this
    # source's state in processing order (a lead's rejection may come before another's MQL)
    if mqls >= defs.alerts.rejected_leads_min_mqls and rejected / max(mqls, 1) > defs.alerts.rejected_leads_rate:
        _fire(state, out, "rejected_leads", f"source:{source}", f"window:{t // window}", t, window,
              f"sales rejected {rejected} of {mqls} MQLs from {source} in {defs.alerts.rejected_leads_window_days:g} days",
              defs)
    return out
