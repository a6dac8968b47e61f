"""Agent: journey stage (keyed by account) — stage machine, scores, committee, alerts.

It reads the timeline topic and the tick topic (co-partitioned, both keyed by account). A
timer sends ticks for accounts whose time-based alert rules are due, so rules that fire
"when nothing happens" run in the partition that owns the account's state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

import faust
import orjson

from schemas.alerts import AlertRecord, PathStep
from schemas.definitions import Definitions
from schemas.journey import JourneyUpdate, StageChangeRecord
from schemas.timeline import TimelineEvent, utc_ms
from streams import metrics, tables
from streams.agents import batches, crash_on_error, dead_letter, each_guarded
from streams.agents.batching import BatchTable, Outbox
from streams.rules import alerts as rules
from streams.rules.journey import committee, new_journey, on_journey_events, output_version

log = logging.getLogger(__name__)


ALERT_LOG_MAX = 20


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def alert_record(alert: rules.Alert, public_url: str) -> AlertRecord:
    return AlertRecord(
        alert_id=alert.alert_id, rule=alert.rule, account_id=alert.account_id, at=_utc(alert.at_ms),
        owner=alert.owner, summary=alert.summary, definitions_version=alert.definitions_version,
        path=[PathStep(at=_utc(p[0]), side=p[1], channel=p[2], name=p[3]) for p in alert.path],
        link=f"{public_url.rstrip('/')}/ui/account/{alert.account_id}",
    )


def register(app: faust.App, topics, settings, defs: Definitions) -> None:
    fence = app.journeys_fence  # type: ignore[attr-defined]
    journeys = tables.table(
        app, settings, "journeys",
        help="account → stage, scores, buying committee, recent touches, fired alerts.",
    )
    source = app.topic(topics.timeline.get_topic_name(), topics.journey_ticks.get_topic_name(),
                       key_serializer="raw", value_serializer="raw")

    due_index = rules.DueIndex()
    clock = rules.AlertClock(int(settings.alert_idle_seconds * 1000), lambda: time.time_ns() // 1_000_000)

    def records_for(found: list[rules.Alert], state: dict, trigger: str) -> list[AlertRecord]:
        """Alert records for this trigger, remembered in state (written before they are sent)
        so that a redelivered trigger re-sends them if a crash lost the sends."""
        records = [alert_record(a, settings.public_url) for a in found]
        log = state.setdefault("alert_log", [])
        log.extend([trigger, r.model_dump_json()] for r in records)
        del log[:-ALERT_LOG_MAX]
        return records

    def logged_alerts(state: dict, trigger: str) -> list[AlertRecord]:
        return [AlertRecord.model_validate_json(raw) for t, raw in state.get("alert_log", []) if t == trigger]

    def journey_update(state: dict, account: str, entry: TimelineEvent, outcome) -> JourneyUpdate:
        return JourneyUpdate(
            # a late event's update shows the journey as of the newest event (it was replayed in order)
            account_id=account, event_id=entry.event_id, at=max(entry.event_time, _utc(state["ref_ms"])),
            stage=state["stage"], engagement=round(state["engagement"], 4), fit=round(state["fit"], 4),
            total=round(state["engagement"] + state["fit"], 4), owner=state["owner"], source=state["source"],
            committee=committee(state, defs, state["ref_ms"]), definitions_version=defs.version,
            stage_changes=[
                StageChangeRecord(
                    change_id=c.change_id, account_id=c.account_id, from_stage=c.from_stage,
                    to_stage=c.to_stage, at=_utc(c.at_ms), rule=c.rule,
                    definitions_version=c.definitions_version, event_id=c.event_id,
                    contact_id=c.contact_id, source=c.source, persona=c.persona,
                )
                for c in outcome.stage_changes
            ],
            retracted_changes=outcome.retracted, version=output_version(state),
        )

    names = {"ticks": topics.journey_ticks.get_topic_name(), "updates": topics.journey_updates.get_topic_name(),
             "alerts": topics.alerts.get_topic_name(), "leads": topics.lead_outcomes.get_topic_name(),
             "dead": topics.inbound_dlq.get_topic_name()}

    def publish(box: Outbox, records: list[AlertRecord], fresh: bool = True) -> None:
        for record in records:
            if fresh:
                metrics.ALERTS_FIRED.labels(record.rule).inc()
            box.add(names["alerts"], record.alert_id.encode(), record.to_bytes())

    def on_account(table: BatchTable, account: str, items: list[tuple[faust.EventT, TimelineEvent]],
                   box: Outbox) -> None:
        """The account's events of one batch: journey, alerts, one journey update per event."""
        state = table.get(account) or new_journey()
        state["account"] = account

        def then(entry: TimelineEvent, outcome, newest: int) -> None:
            update = journey_update(state, account, entry, outcome).to_bytes()
            if outcome.duplicate:  # re-send what this event produced: the store dedups by id
                box.add(names["updates"], account.encode(), update)
                publish(box, logged_alerts(state, entry.event_id), fresh=False)
                return
            found: list[rules.Alert] = []
            channel = defs.channels.get(entry.channel)
            if channel is not None and channel.touch:
                rules.remember_touch(state, entry, channel.side)
                found += rules.on_touch(state, entry, account, channel.side, defs, newest)
            if outcome.stage_changes:
                engaged = committee(state, defs, state["ref_ms"])
                found += rules.committee_gap(state, account, state["stage_rank"], engaged,
                                             utc_ms(entry.event_time), defs)
            records = records_for(found, state, entry.event_id)
            box.add(names["updates"], account.encode(), update)
            publish(box, records)

        outcomes = on_journey_events(state, [entry for _, entry in items], account, defs, then)
        if all(outcome.duplicate for _, outcome in outcomes):
            return  # the state has them all already
        state["due_ms"] = rules.next_due_ms(state, defs)
        table.put(account, state, items[-1][0])
        due_index.note(account, state["due_ms"])

    def on_tick(table: BatchTable, event: faust.EventT, box: Outbox) -> None:
        tick = orjson.loads(event.message.value)
        state = table.get(tick["account"])
        if state is None:
            return
        trigger = f"tick:{tick['now_ms']}"
        found = rules.on_tick(state, tick["account"], tick["now_ms"], defs)
        records = records_for(found, state, trigger) if found else logged_alerts(state, trigger)
        state["due_ms"] = rules.next_due_ms(state, defs)
        table.put(tick["account"], state, event)
        due_index.note(tick["account"], state["due_ms"])
        publish(box, records, fresh=bool(found))

    @app.agent(source, name="journey")
    async def journey(stream: faust.StreamT) -> None:
        async for events in batches(stream, fence, settings):
            async with crash_on_error("journey"):
                box, table = Outbox(), BatchTable(journeys)
                groups: dict[str, list[tuple[faust.EventT, TimelineEvent]]] = {}
                ticks: dict[str, list[tuple[faust.EventT]]] = {}
                for event in events:
                    msg = event.message
                    if msg.topic == names["ticks"]:
                        ticks.setdefault(msg.key.decode("utf-8", "replace") if msg.key else "", []).append((event,))
                        continue
                    metrics.EVENTS_IN.labels("journey").inc()
                    try:
                        entry = TimelineEvent.from_bytes(msg.value)
                    except Exception as exc:  # noqa: BLE001 - not our record format: dead-lettered
                        dead_letter(box, names["dead"], event, "journey", exc)
                        continue
                    clock.saw(utc_ms(entry.event_time))
                    if entry.event_type == "lead_status" and not entry.replay:
                        lead_source = str(entry.properties.get("leadSource") or "unknown")
                        box.add(names["leads"], lead_source.encode(), msg.value)
                    account = entry.journey_account_id or entry.account_id
                    if not account or entry.replay and not entry.journey_account_id:
                        continue  # anonymous and unattributed: nothing to score yet
                    groups.setdefault(account, []).append((event, entry))
                each_guarded(box, names["dead"], "journey", groups,
                             lambda account, items, out: on_account(table, account, items, out), table)
                each_guarded(box, names["dead"], "journey", ticks,
                             lambda _, items, out: [on_tick(table, item[0], out) for item in items], table)
                fence.check()  # a worker frozen past its session writes nothing from stale state
                table.flush()
                await box.flush(app)

    @journeys.on_recover
    async def rebuild_due_index() -> None:
        """After a rebalance: the due times of the accounts this worker now owns, read once."""
        due_index.clear()
        for n, (account, state) in enumerate(journeys.items(), 1):  # lazily: one state at a time
            due_index.note(account, (state or {}).get("due_ms", 0))
            if n % 1000 == 0:
                await asyncio.sleep(0)
        log.info("timer rules: %d of this worker's accounts have a due time", len(due_index))

    @app.timer(interval=settings.alert_tick_seconds)
    async def tick_due_accounts() -> None:
        """Send a tick to every local account whose timer rule is due (duplicates are harmless)."""
        now = clock.now_ms()
        for account in due_index.due(now):
            await topics.journey_ticks.send(key=account.encode(),
                                            value=orjson.dumps({"account": account, "now_ms": now}))
