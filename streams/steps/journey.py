"""Step: the journey stage (keyed by account) — stage machine, scores, committee, alerts.

It reads the timeline topic and the tick topic (co-partitioned, both keyed by account): a
batch's events and ticks of one account are handled together, with the state read and written
once. Alerts have deterministic ids and are remembered in the state (written with the batch's sends)
so a redelivered trigger re-sends what a crash lost. One journey update per account and batch
carries the newest scores and every stage change the batch made or retracted (the score
history has a point per batch: per event when traffic is light, fewer under a backlog).

A tick with ``forget`` (person ids, sent by the store process for ``journeys privacy
forget``) removes those people from the account's journey (:func:`forget_contacts`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from schemas.alerts import AlertRecord, PathStep
from schemas.definitions import Definitions
from schemas.journey import ContactScore, JourneyUpdate, StageChangeRecord
from schemas.timeline import TimelineEvent, utc_ms
from streams import metrics
from streams.rules import alerts as rules
from streams.rules.journey import (
    FACT_COLUMNS,
    HISTORY_MAX,
    JOURNEY_PROPS,
    MERGE_REASON,
    UNMERGE_REASON,
    Fact,
    JourneyOutcome,
    StageChange,
    because,
    before_window,
    committee,
    contact_key,
    contact_scores,
    drop_forwarded,
    fact_event,
    fact_item,
    facts,
    forget_contacts,
    mark_forwarded,
    new_journey,
    on_journey_events,
    output_version,
    rebuild_into,
    rebuilt,
    recompute,
)
from streams.steps import Names, Outbox, States, dead_letter

ALERT_LOG_MAX = 20
REBUILD_RETRY_MS = 600_000
"""A rebuild request unanswered this long (the store process was down) is asked again."""
REBUILD_TICK_BYTES = 256 * 1024
"""About how many bytes of facts one rebuild answer record carries (Kafka's default cap is 1 MB)."""


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def alert_record(alert: rules.Alert, public_url: str) -> AlertRecord:
    return AlertRecord(
        alert_id=alert.alert_id, rule=alert.rule, account_id=alert.account_id, at=_utc(alert.at_ms),
        owner=alert.owner, summary=alert.summary, definitions_version=alert.definitions_version,
        path=[PathStep(at=_utc(p[0]), side=p[1], channel=p[2], name=p[3]) for p in alert.path],
        link=f"{public_url.rstrip('/')}/ui/account/{alert.account_id}",
    )


def lead_source(entry: TimelineEvent) -> str:
    """The key of a lead outcome (the lead outcomes topic, :mod:`streams.steps.lead_feedback`):
    the lead's source as the CRM names it, else ``unknown``."""
    return str(entry.properties.get("leadSource") or "unknown")


def journey_update(state: dict[str, Any], account: str, entry: TimelineEvent, outcome: JourneyOutcome,
                   defs: Definitions, contacts: Iterable[str] = (), reason: str = "") -> JourneyUpdate:
    return JourneyUpdate(
        # a late event's update shows the journey as of the newest event (it was replayed in order)
        account_id=account, event_id=entry.event_id, at=max(entry.event_time, _utc(state["ref_ms"])),
        stage=state["stage"], engagement=round(state["engagement"], 4), fit=round(state["fit"], 4),
        total=round(state["engagement"] + state["fit"], 4), owner=state["owner"], source=state["source"],
        committee=committee(state, defs, state["ref_ms"]), definitions_version=defs.version,
        contacts=[ContactScore(contact_id=k, persona=persona, title=title, score=score, scored_at=_utc(at))
                  for k, persona, title, score, at in contact_scores(state, contacts) if at],
        stage_changes=[
            StageChangeRecord(
                change_id=c.change_id, account_id=c.account_id, from_stage=c.from_stage,
                to_stage=c.to_stage, at=_utc(c.at_ms), rule=c.rule,
                definitions_version=c.definitions_version, event_id=c.event_id,
                contact_id=c.contact_id, source=c.source, persona=c.persona,
            )
            for c in outcome.stage_changes
        ],
        retracted_changes=outcome.retracted, reason=reason if outcome.retracted else "",
        version=output_version(state),
    )


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Journey:
    names: Names
    defs: Definitions
    public_url: str = "http://127.0.0.1:6066"
    alert_idle_ms: int = 300_000
    wall_ms: Callable[[], int] = _wall_ms
    name: str = "journey"
    due_index: rules.DueIndex = field(default_factory=rules.DueIndex)
    clock: rules.AlertClock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = rules.AlertClock(self.alert_idle_ms, self.wall_ms)

    def use(self, defs: Definitions) -> None:
        """A new version of the definitions, for the batches after this one."""
        self.defs = defs

    # -- alert records remembered in the state ------------------------------------------------
    def records_for(self, found: list[rules.Alert], state: dict[str, Any], trigger: str) -> list[AlertRecord]:
        """Alert records for this trigger, remembered in state (written before they are sent)
        so that a redelivered trigger re-sends them if a crash lost the sends."""
        records = [alert_record(a, self.public_url) for a in found]
        log = state.setdefault("alert_log", [])
        log.extend([trigger, r.model_dump_json()] for r in records)
        del log[:-ALERT_LOG_MAX]
        return records

    @staticmethod
    def logged_alerts(state: dict[str, Any], trigger: str) -> list[AlertRecord]:
        return [AlertRecord.model_validate_json(raw) for t, raw in state.get("alert_log", []) if t == trigger]

    def publish(self, out: Outbox, records: list[AlertRecord], fresh: bool = True) -> None:
        for record in records:
            if fresh:
                metrics.ALERTS_FIRED.labels(record.rule).inc()
            out.add(self.names.alerts, record.alert_id.encode(), record.to_bytes())

    # -- the step -----------------------------------------------------------------------------
    def group(self, records: Sequence[Any], out: Outbox) -> dict[str, list[tuple[Any, ...]]]:
        groups: dict[str, list[tuple[Any, ...]]] = {}
        for record in records:
            if record.topic == self.names.journey_ticks:
                try:
                    tick = orjson.loads(record.value)
                    account = str(tick["account"])
                    tick["now_ms"] = int(tick.get("now_ms", 0))
                    tick["forget"] = tuple(str(i) for i in tick.get("forget", ()))
                    absorbed = [fact_event(int(t), str(i), data, account) for t, i, data in tick.get("facts", ())]
                except Exception as exc:  # noqa: BLE001 - not a tick we wrote: dead-lettered
                    dead_letter(out, self.names.inbound_dlq, record, self.name, exc)
                    continue
                if "absorb" in tick:  # facts of a journey merged into this one: applied as events
                    via = str(tick["absorb"])
                    groups.setdefault(account, []).extend((record, e, via) for e in absorbed)
                    if tick.get("folded"):  # and older ones it no longer kept: from the store
                        groups[account].append((record, None, {"rebuild_after": [str(tick["folded"])]}))
                else:
                    groups.setdefault(account, []).append((record, None, tick))
                continue
            metrics.child(metrics.EVENTS_IN, self.name).inc()
            try:
                entry = TimelineEvent.from_bytes(record.value)
            except Exception as exc:  # noqa: BLE001 - not our record format: dead-lettered
                dead_letter(out, self.names.inbound_dlq, record, self.name, exc)
                continue
            self.clock.saw(utc_ms(entry.event_time))
            if entry.event_type == "lead_status" and not entry.replay:
                out.add(self.names.lead_outcomes, lead_source(entry).encode(), record.value)
            account = entry.journey_account_id or entry.account_id
            if not account or entry.replay and not entry.journey_account_id:
                continue  # anonymous and unattributed: nothing to score yet
            groups.setdefault(account, []).append((record, entry, ""))
        return groups

    def handle(self, account: str, items: list[tuple[Any, ...]], states: States, out: Outbox) -> None:
        """The account's records of one batch in order: each run of events (and facts a merged
        journey forwarded) applied together — journey and alerts per event, then one journey
        update (the newest scores and every stage change made or retracted) — and each tick
        (timer rules, privacy, merges) in its place."""
        state = states.get(account)
        run: list[tuple[Any, TimelineEvent, str]] = []
        for record, entry, tick in items:
            if entry is not None:
                run.append((record, entry, tick))
                continue
            state = self.events(account, state, run, states, out)
            run = []
            state = self.control(account, state, tick, record, states, out)
        self.events(account, state, run, states, out)

    def events(self, account: str, state: dict[str, Any] | None, run: list[tuple[Any, TimelineEvent, str]],
               states: States, out: Outbox) -> dict[str, Any] | None:
        if not run:
            return state
        state = state or new_journey()
        state["account"] = account
        merged = state.get("merged_into", "")
        known = {h[1] for h in state.get("history", [])}
        first: dict[str, str] = {}
        for _, entry, via in run:
            first.setdefault(entry.event_id, via)
        changes: dict[str, StageChange] = {}
        retracted: set[str] = set()
        had = set(state.get("changes", []))
        caused: set[str] = set()  # changes entered by facts a merged journey forwarded
        reason = ""

        def after(entry: TimelineEvent, outcome: JourneyOutcome, newest: int) -> None:
            nonlocal reason
            if first.get(entry.event_id):  # a merged journey's fact: the merge entered or retracted these
                caused.update(c.change_id for c in outcome.stage_changes if c.change_id not in had)
                reason = MERGE_REASON if outcome.retracted else reason
            for gone in outcome.retracted:
                changes.pop(gone, None)
                retracted.add(gone)
            for change in outcome.stage_changes:
                changes[change.change_id] = change
                retracted.discard(change.change_id)
            if merged:  # the target's journey speaks for these events: no alerts here
                channel = self.defs.channels.get(entry.channel)
                if channel is not None and channel.touch and not outcome.duplicate:
                    rules.remember_touch(state, entry, channel.side)
                return
            self.after_event(state, account, entry, outcome, newest, out)

        entries = [entry for _, entry, _ in run]
        too_late = before_window(state, entries)
        outcomes = on_journey_events(state, entries, account, self.defs, after)
        if too_late and not merged:  # applied to the base out of order: rebuild from the stored events
            self.ask_rebuild(account, state, too_late, out)
        mark_forwarded(state, {i: via for i, via in first.items() if via and i not in known},
                       own={i for i, via in first.items() if not via} & known)
        if merged:  # merged into another account: its journey gets these facts; this one's changes stay unsaid
            self.forward(out, account, merged, [fact_item(e) for e in entries])
            retracted |= set(changes)
            reason = MERGE_REASON if changes else reason
            changes = {}
        last = outcomes[-1][0]
        entered = [because(JourneyOutcome(stage_changes=[c]), MERGE_REASON).stage_changes[0]
                   if c.change_id in caused else c for c in changes.values()]
        batch = JourneyOutcome(stage_changes=entered, retracted=sorted(retracted))
        out.add(self.names.journey_updates, account.encode(),
                journey_update(state, account, last, batch, self.defs,
                               contacts={contact_key(e) for e in entries}, reason=reason).to_bytes())
        if not all(outcome.duplicate for _, outcome in outcomes):
            self.written(states, account, state, run[-1][0])
        return state

    def control(self, account: str, state: dict[str, Any] | None, tick: dict[str, Any], record: Any,
                states: States, out: Outbox) -> dict[str, Any] | None:
        """One tick: a merge or unmerge of this account's journey, facts to drop, people to
        forget, or the timer rules."""
        if "merge_into" in tick or "unmerge_from" in tick or "remerge_into" in tick:
            state = self.merges(account, state or new_journey(), tick, out)
            self.written(states, account, state, record)
            return state
        if "reresolve" in tick:  # a person moved in or out of this account (journeys identity)
            state = self.reresolve(account, state, tick, out)
            self.written(states, account, state, record)
            return state
        if state is None:
            return None
        if "rebuild" in tick:  # the account's stored events, read back by the store process
            if self.rebuild(account, state, tick, out):
                self.written(states, account, state, record)
            return state
        if "rebuild_after" in tick:  # a merged journey had facts it no longer kept: the store has them
            if not state.get("merged_into"):
                self.ask_rebuild(account, state, [], out, list(tick["rebuild_after"]))
                self.written(states, account, state, record)
            return state
        if "drop" in tick:  # a journey merged into this one was unmerged: its facts go
            had = set(state.get("changes", []))
            outcome = drop_forwarded(state, str(tick["drop"]), account, self.defs)
            if outcome is not None:
                self.update(out, account, state, because(outcome, UNMERGE_REASON, had), UNMERGE_REASON)
                self.recheck_alerts(state, UNMERGE_REASON)
                self.written(states, account, state, record)
            return state
        if tick["forget"]:  # a privacy request: the people go, the account's journey stays
            state = forget_contacts(state, tick["forget"])
            self.written(states, account, state, record)
            return state
        if state.get("merged_into"):
            return state  # the target's journey runs the timer rules
        now = tick["now_ms"]
        trigger = f"tick:{now}"
        found = rules.on_tick(state, account, now, self.defs)
        records = self.records_for(found, state, trigger) if found else self.logged_alerts(state, trigger)
        self.written(states, account, state, record)
        self.publish(out, records, fresh=bool(found))
        return state

    # -- rebuilds from the store ----------------------------------------------------------------
    def reresolve(self, account: str, state: dict[str, Any] | None, tick: dict[str, Any],
                  out: Outbox) -> dict[str, Any]:
        """A person's link to this account was undone or re-applied (``journeys identity
        unmerge|merge --kind person_account``): the journey is rebuilt from the events the store
        now resolves to the account (their events leave it, or join it), its stage history
        saying why. A journey merged into another: the target's journey is re-resolved (it
        speaks for these events)."""
        state = state or dict(new_journey(), account=account)
        state["account"] = account
        action = str(tick["reresolve"])
        override = tick.get("override")
        target = state.get("merged_into")
        if target:
            out.add(self.names.journey_ticks, target.encode(), reresolve_tick(target, action, override))
            return state
        reason = MERGE_REASON if action == "merge" else UNMERGE_REASON
        self.ask_rebuild(account, state, [], out, reason=reason, override=override)
        return state

    def recheck_alerts(self, state: dict[str, Any], reason: str) -> None:
        """The touch alert rules once the identity graph changed the journey's facts: the touches
        they read (``recent``) are those of the journey's facts now, and the outcome is kept in
        the state (``alert_recheck``): the alerts raised here that no longer hold over them
        (``withdrawn``: the touches that made them left with an unmerge) and those that hold now.
        Alerts are notifications, already delivered and stored as they were raised: nothing is
        taken back; an alert a merge makes hold is raised live, as its facts are applied."""
        account = state.get("account", "")
        history = state.get("history", [])
        floor = history[0][0] if history and state.get("base") else None
        scratch: dict[str, Any] = {"recent": [r for r in state.get("recent", []) if floor is not None and r[0] < floor],
                                   "owner": state.get("owner", "")}
        holding: set[str] = set()
        for t, event_id, data, *_ in history:
            entry = fact_event(t, event_id, data, account)
            channel = self.defs.channels.get(entry.channel)
            if channel is None or not channel.touch:
                continue
            rules.remember_touch(scratch, entry, channel.side)
            holding |= {a.alert_id for a in rules.on_touch(scratch, entry, account, channel.side, self.defs, t)}
        state["recent"] = scratch["recent"]
        raised = [AlertRecord.model_validate_json(raw) for _, raw in state.get("alert_log", [])]
        touch_rules = {"channel_bounce", "back_to_research"}
        withdrawn = sorted({a.alert_id for a in raised if a.rule in touch_rules and a.alert_id not in holding})
        state["alert_recheck"] = {"reason": reason, "withdrawn": withdrawn, "holding": sorted(holding)}

    def ask_rebuild(self, account: str, state: dict[str, Any], late: list[TimelineEvent], out: Outbox,
                    after: Sequence[str] = (), reason: str = "", override: Any = None) -> None:
        """Ask the store process for the account's stored events (one request at a time; one
        unanswered for ``REBUILD_RETRY_MS`` is asked again). The events that were too late
        are kept until the rebuild is done: the store may not have written them yet. ``after``:
        more events the store must have resolved to this account first (a merged journey's)."""
        pending = state.get("rebuilding")
        kept = [fact_item(e) for e in late]
        if pending and self.wall_ms() - pending["asked_ms"] < REBUILD_RETRY_MS:
            pending["late"] = (pending["late"] + kept)[-HISTORY_MAX:]
            if after:  # the answer on its way may not have these: another rebuild once it is done
                pending["again"] = sorted(set(pending.get("again", [])) | set(after))
            if reason:  # the answer on its way may predate the identity change: another one after it
                pending["recheck"] = [reason, override]
            return
        request = f"{account}:{state.get('seq', 0)}"
        state["rebuilding"] = {"id": request, "asked_ms": self.wall_ms(), "late": kept[-HISTORY_MAX:],
                               "journey": None, "changes": {}}
        if reason:  # re-resolved: the facts it has of the person moved count only as the store resolves them
            state["rebuilding"].update(reason=reason, known=_naming(state, str(override[1]) if override else None))
        # the store answers once it has resolved, to this account, the newest event the journey
        # folded into its base (the older ones came before it): what the journey no longer keeps
        # must come from the store — not for an identity override (that event may be the moved
        # person's, no longer resolved here: the store waits for the override instead)
        folded = None if override else (state.get("base") or {}).get("folded")
        body: dict[str, Any] = {"account": account, "id": request, "after": ([folded] if folded else []) + list(after)}
        if override:  # the store answers once it has the identity override too
            body["override"] = list(override)
        out.add(self.names.journey_rebuilds, account.encode(), orjson.dumps(body))
        metrics.JOURNEY_REBUILDS.labels("asked").inc()

    def rebuild(self, account: str, state: dict[str, Any], tick: dict[str, Any], out: Outbox) -> bool:
        """One part of the answer: its events applied, in order, to the journey being rebuilt,
        with the journey's own facts and the late ones the store did not have yet in their
        place; after the last part the rebuilt journey is swapped in (every stage change it made
        sent again, those that no longer happened retracted). No alerts: they were raised live.
        False for an answer to no pending request (a redelivery, or one overtaken)."""
        pending = state.get("rebuilding")
        if not pending or pending["id"] != str(tick["rebuild"]):
            done = state.get("rebuilt")
            if done and done[0] == str(tick["rebuild"]) and tick.get("last"):  # redelivered after a crash
                out.add(self.names.journey_updates, account.encode(), done[1].encode())
            return False
        fresh = pending["journey"] or dict(new_journey(), account=account)
        changes = pending["changes"]
        stored = [[int(t), str(i), data] for t, i, data in tick.get("facts", ())]
        # the journey's own facts and the late ones, each applied once: those the store has with
        # its copy; those it lacks (not written yet) in their place among the stored ones — with
        # the part that reaches past them, or the last part
        known = set(pending.get("known", []))  # re-resolved: the facts it had at the request only as the store has them
        mine = ({h[1]: h[:3] for h in state.get("history", []) if h[1] not in known}
                | {f[1]: f for f in pending["late"]})
        seen = set(pending.get("seen", [])) | (mine.keys() & {i for _, i, _ in stored})
        horizon = (stored[-1][0], stored[-1][1]) if stored else None
        extra = [f for i, f in mine.items() if i not in seen
                 and (tick.get("last") or horizon is not None and (f[0], f[1]) <= horizon)]
        seen |= {f[1] for f in extra}
        items = sorted(stored + extra, key=lambda f: (f[0], f[1]))
        rebuild_into(fresh, [fact_event(t, i, data, account) for t, i, data in items], account, self.defs, changes)
        pending["journey"], pending["seen"] = fresh, sorted(seen & mine.keys())
        if not tick.get("last"):
            return True
        had = set(state.get("changes", [])) | set((state.get("base") or {}).get("changes", []))
        newest = (state.get("history") or [None])[-1]
        outcome = rebuilt(state, fresh, changes)
        reason = str(pending.get("reason", ""))
        sent = self.update(out, account, state, because(outcome, reason, had), reason, newest)
        if sent is not None:  # kept to send again if this answer is redelivered (a crash before the sends)
            state["rebuilt"] = [pending["id"], sent.decode()]
        if reason:
            self.recheck_alerts(state, reason)
        metrics.JOURNEY_REBUILDS.labels("done").inc()
        if pending.get("again") or pending.get("recheck"):
            again, override = pending.get("recheck") or ["", None]
            self.ask_rebuild(account, state, [], out, pending.get("again", []), again, override)
        return True

    # -- merged accounts ----------------------------------------------------------------------
    def merges(self, account: str, state: dict[str, Any], tick: dict[str, Any], out: Outbox) -> dict[str, Any]:
        """``merge_into`` (the identity rules merged this account — a domain account — into
        another), ``unmerge_from`` and ``remerge_into`` (a manual unmerge, and its undoing)."""
        state["account"] = account
        unmerged = state.setdefault("unmerged", [])
        if "merge_into" in tick:
            target = str(tick["merge_into"])
            state["merge_rule"] = target
            if target not in unmerged:
                self.merge(account, state, target, out)
        elif "unmerge_from" in tick:
            target = str(tick["unmerge_from"])
            if target not in unmerged:
                unmerged.append(target)
            if state.get("merged_into") == target:
                state["merged_into"] = ""
                out.add(self.names.journey_ticks, target.encode(), orjson.dumps({"account": target, "drop": account}))
                if state.get("history"):  # its own stage changes count again, on this account
                    outcome = recompute(state, account, self.defs, f"unmerge:{target}")
                    self.update(out, account, state, because(outcome, UNMERGE_REASON), UNMERGE_REASON)
                    self.recheck_alerts(state, UNMERGE_REASON)
        else:
            target = str(tick["remerge_into"])
            if target in unmerged:
                unmerged.remove(target)
            if state.get("merge_rule") == target:
                self.merge(account, state, target, out)
        return state

    def merge(self, account: str, state: dict[str, Any], target: str, out: Outbox) -> None:
        """This journey's facts go to ``target``'s journey, its stage changes are retracted here
        (the target's count). Merged into it already (the rules re-send a merge whenever a
        person's memberships change): nothing to do — the facts were forwarded, and a fact the
        target folded into its base could not be told from a new one and would count twice."""
        previous = state.get("merged_into", "")
        if previous == target:
            return
        if previous:
            out.add(self.names.journey_ticks, previous.encode(), orjson.dumps({"account": previous, "drop": account}))
        state["merged_into"] = target
        self.forward(out, account, target, facts(state), (state.get("base") or {}).get("folded", ""))
        if state.get("changes") and state.get("history"):
            state["seq"] = state.get("seq", 0) + 1
            self.update(out, account, state, JourneyOutcome(retracted=sorted(state["changes"])), MERGE_REASON)

    def forward(self, out: Outbox, account: str, target: str, items: list[list[Any]], folded: str = "") -> None:
        """Facts to ``target``'s journey; ``folded``: the newest fact this journey folded into its
        base (it no longer has those facts: the target rebuilds from the store once it has it)."""
        if items:
            body: dict[str, Any] = {"account": target, "absorb": account, "facts": items}
            if folded:
                body["folded"] = folded
            out.add(self.names.journey_ticks, target.encode(), orjson.dumps(body))

    def update(self, out: Outbox, account: str, state: dict[str, Any], outcome: JourneyOutcome,
               reason: str = "", fallback: list[Any] | None = None) -> bytes | None:
        """A journey update for a change no event made (a merge, an unmerge, a rebuild): as of the
        newest fact; the record sent (None: no facts, nothing to say). ``reason``: why its
        retractions happened (``identity merge``/``unmerge``; none: a late event)."""
        history = state.get("history") or ([fallback] if fallback and outcome.retracted else [])
        if not history:  # (``fallback``: the newest fact it had, when its retractions left it none)
            return None
        t, event_id, data, *_ = history[-1]
        newest = fact_event(t, event_id, data, account)
        value = journey_update(state, account, newest, outcome, self.defs, reason=reason).to_bytes()
        out.add(self.names.journey_updates, account.encode(), value)
        return value

    def after_event(self, state: dict[str, Any], account: str, entry: TimelineEvent, outcome: JourneyOutcome,
                    newest: int, out: Outbox) -> None:
        """The alert rules on one event, as the journey stood right after it."""
        if outcome.duplicate:  # re-send what this event raised: the store and webhooks dedup by id
            self.publish(out, self.logged_alerts(state, entry.event_id), fresh=False)
            return
        found: list[rules.Alert] = []
        channel = self.defs.channels.get(entry.channel)
        if channel is not None and channel.touch:
            rules.remember_touch(state, entry, channel.side)
            found += rules.on_touch(state, entry, account, channel.side, self.defs, newest)
        if outcome.stage_changes:
            engaged = committee(state, self.defs, state["ref_ms"])
            found += rules.committee_gap(state, account, state["stage_rank"], engaged, utc_ms(entry.event_time),
                                         self.defs)
        self.publish(out, self.records_for(found, state, entry.event_id))

    def written(self, states: States, account: str, state: dict[str, Any], record: Any) -> None:
        # a journey merged into another has no timer rules of its own (the target's run)
        due = 0 if state.get("merged_into") else rules.next_due_ms(state, self.defs)
        if next(iter(state), None) != "due_ms":  # first, once: see due_ms_of
            rest = [(k, v) for k, v in state.items() if k != "due_ms"]
            state.clear()
            state["due_ms"] = due
            state.update(rest)
        state["due_ms"] = due
        states.put(account, state, record)
        self.due_index.note(account, state["due_ms"])

    def tick(self, account: str, now_ms: int) -> bytes:
        """The value of a tick record for ``account`` (sent to the tick topic keyed by account)."""
        return tick_value(account, now_ms)


_DUE_PREFIX = b'{"due_ms":'


def due_ms_of(raw: bytes) -> int:
    """The ``due_ms`` of a journey state in its stored JSON bytes, without parsing the rest: the
    journey stage writes it as the state's first key (:meth:`Journey.written`), so the bytes
    start ``{"due_ms":<int>``. Reading every state whole to find it held up a recovery for 10 s
    per 100,000 accounts (journey states average 16 KB). Any other shape (a state written before
    the key went first) is parsed whole."""
    if raw.startswith(_DUE_PREFIX):
        end = len(_DUE_PREFIX)
        while end < len(raw) and raw[end] in b"-0123456789":
            end += 1
        if end < len(raw) and raw[end] in b",}" and end > len(_DUE_PREFIX):
            return int(raw[len(_DUE_PREFIX):end])
    state = orjson.loads(raw)
    return int(state.get("due_ms", 0) or 0) if isinstance(state, dict) else 0


def tick_value(account: str, now_ms: int, forget: Iterable[str] = ()) -> bytes:
    """A tick record's value; with ``forget``, the person ids the account's journey drops."""
    body: dict[str, Any] = {"account": account, "now_ms": now_ms}
    if forget:
        body["forget"] = sorted(forget)
    return orjson.dumps(body)


def merge_tick(account: str, action: str, target: str) -> bytes:
    """The tick a manual ``unmerge`` or ``merge`` of the account merge ``account → target`` sends
    ``account``'s journey (``journeys identity``)."""
    return orjson.dumps({"account": account, "unmerge_from" if action == "unmerge" else "remerge_into": target})


def _naming(state: dict[str, Any], person: str | None) -> list[str]:
    """The ids of the journey's facts that name ``person`` (as person, contact or email; None:
    every fact): those a re-resolving rebuild keeps only if the store still resolves them to
    the account (the others, missing from the store, are taken as not written yet)."""
    out = []
    for h in state.get("history", []):
        fact = Fact(h[2], h[1])
        if person is None or person in (fact.person_id, fact.contact_id, fact.email):
            out.append(h[1])
    return out


def reresolve_tick(account: str, action: str, override: Any = None) -> bytes:
    """The tick a manual ``unmerge`` or ``merge`` of a person's link to ``account`` sends that
    account's journey (``journeys identity --kind person_account``); ``override``: the
    ``[kind, src, dst, action]`` the store must have before it answers the rebuild."""
    body: dict[str, Any] = {"account": account, "reresolve": action}
    if override:
        body["override"] = list(override)
    return orjson.dumps(body)


def rebuild_ticks(account: str, request: str, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> list[bytes]:
    """The store's answer to a rebuild request: the account's stored events (``columns`` as
    :func:`sinks.clickhouse.queries.timeline` returns them, with properties, in time order) as
    journey facts, in tick records of about ``REBUILD_TICK_BYTES``; the last one says so."""
    at = {c: i for i, c in enumerate(columns)}
    ticks: list[bytes] = []
    part: list[list[Any]] = []
    size = 0
    for row in rows:
        props = row[at["properties"]]
        props = orjson.loads(props) if isinstance(props, (str, bytes)) else dict(props or {})
        when = row[at["event_time"]]
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        fact = [row[at[name]] or "" for name in FACT_COLUMNS] + [{k: props[k] for k in JOURNEY_PROPS if k in props}]
        item = [utc_ms(when), row[at["event_id"]], fact]
        part.append(item)
        size += len(orjson.dumps(item))
        if size >= REBUILD_TICK_BYTES:
            ticks.append(orjson.dumps({"account": account, "rebuild": request, "facts": part}))
            part, size = [], 0
    ticks.append(orjson.dumps({"account": account, "rebuild": request, "facts": part, "last": True}))
    return ticks
