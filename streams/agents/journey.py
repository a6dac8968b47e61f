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
from streams.agents import fenced, guarded
from streams.rules import alerts as rules
from streams.rules.journey import committee, new_journey, on_journey_event, output_version

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

    async def publish(records: list[AlertRecord], fresh: bool = True) -> None:
        for record in records:
            if fresh:
                metrics.ALERTS_FIRED.labels(record.rule).inc()
            await topics.alerts.send(key=record.alert_id.encode(), value=record.to_bytes())

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

    @app.agent(source, name="journey")
    async def journey(stream: faust.StreamT) -> None:
        async for event in fenced(stream, fence):
            async with guarded(event, topics.inbound_dlq, "journey"):
                if event.message.topic == topics.journey_ticks.get_topic_name():
                    tick = orjson.loads(event.message.value)
                    state = journeys.get(tick["account"])
                    if state is not None:
                        trigger = f"tick:{tick['now_ms']}"
                        found = rules.on_tick(state, tick["account"], tick["now_ms"], defs)
                        records = records_for(found, state, trigger) if found else logged_alerts(state, trigger)
                        state["due_ms"] = rules.next_due_ms(state, defs)
                        journeys[tick["account"]] = state
                        due_index.note(tick["account"], state["due_ms"])
                        await publish(records, fresh=bool(found))
                    continue
                entry = TimelineEvent.from_bytes(event.message.value)
                metrics.EVENTS_IN.labels("journey").inc()
                clock.saw(utc_ms(entry.event_time))
                if entry.event_type == "lead_status" and not entry.replay:
                    lead_source = str(entry.properties.get("leadSource") or "unknown")
                    await topics.lead_outcomes.send(key=lead_source.encode(), value=entry.to_bytes())
                account = entry.journey_account_id or entry.account_id
                if not account or entry.replay and not entry.journey_account_id:
                    continue  # anonymous and unattributed: nothing to score yet
                state = journeys.get(account) or new_journey()
                state["account"] = account
                newest = state.get("ref_ms", 0)
                outcome = on_journey_event(state, entry, account, defs)
                if outcome.duplicate:  # re-send what this event produced: the store dedups by id
                    await topics.journey_updates.send(
                        key=account.encode(), value=journey_update(state, account, entry, outcome).to_bytes())
                    await publish(logged_alerts(state, entry.event_id), fresh=False)
                    continue
                found: list[rules.Alert] = []
                channel = defs.channels.get(entry.channel)
                if channel is not None and channel.touch:
                    rules.remember_touch(state, entry, channel.side)
                    found += rules.on_touch(state, entry, account, channel.side, defs, newest)
                if outcome.stage_changes:
                    engaged = committee(state, defs, state["ref_ms"])
                    found += rules.committee_gap(state, account, state["stage_rank"], engaged, utc_ms(entry.event_time), defs)
                state["due_ms"] = rules.next_due_ms(state, defs)
                records = records_for(found, state, entry.event_id)
                journeys[account] = state
                due_index.note(account, state["due_ms"])
                await topics.journey_updates.send(
                    key=account.encode(), value=journey_update(state, account, entry, outcome).to_bytes())
                await publish(records)

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
