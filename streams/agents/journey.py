"""Agent: journey stage (keyed by account) — stage machine, scores, committee, alerts.

It reads the timeline topic and the tick topic (co-partitioned, both keyed by account). A
timer sends ticks for accounts whose time-based alert rules are due, so rules that fire
"when nothing happens" run in the partition that owns the account's state.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import faust
import orjson

from schemas.alerts import AlertRecord, PathStep
from schemas.definitions import Definitions
from schemas.journey import JourneyUpdate, StageChangeRecord
from schemas.timeline import TimelineEvent, utc_ms
from streams import metrics
from streams.rules import alerts as rules
from streams.rules.journey import committee, new_journey, on_journey_event


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
    journeys = app.Table(
        "journeys", default=None, partitions=settings.topic_partitions, key_type=str,
        help="account → stage, scores, buying committee, recent touches, fired alerts.",
    )
    source = app.topic(topics.timeline.get_topic_name(), topics.journey_ticks.get_topic_name(),
                       key_serializer="raw", value_serializer="raw")

    clock = rules.AlertClock(int(settings.alert_idle_seconds * 1000), lambda: time.time_ns() // 1_000_000)

    async def publish(found: list[rules.Alert]) -> None:
        for alert in found:
            metrics.ALERTS_FIRED.labels(alert.rule).inc()
            record = alert_record(alert, settings.public_url)
            await topics.alerts.send(key=record.alert_id.encode(), value=record.to_bytes())

    @app.agent(source, name="journey")
    async def journey(stream: faust.StreamT) -> None:
        async for event in stream.events():
            if event.message.topic == topics.journey_ticks.get_topic_name():
                tick = orjson.loads(event.message.value)
                state = journeys.get(tick["account"])
                if state is not None:
                    found = rules.on_tick(state, tick["account"], tick["now_ms"], defs)
                    state["due_ms"] = rules.next_due_ms(state, defs)
                    journeys[tick["account"]] = state
                    await publish(found)
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
            if outcome.duplicate:
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
            journeys[account] = state
            update = JourneyUpdate(
                account_id=account, event_id=entry.event_id, at=entry.event_time, stage=state["stage"],
                engagement=outcome.score["engagement"], fit=outcome.score["fit"], total=outcome.score["total"],
                owner=state["owner"], source=state["source"],
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
                retracted_changes=outcome.retracted, version=time.time_ns() // 1000,
            )
            await topics.journey_updates.send(key=account.encode(), value=update.to_bytes())
            await publish(found)

    @app.timer(interval=settings.alert_tick_seconds)
    async def tick_due_accounts() -> None:
        """Send a tick to every local account whose timer rule is due (duplicates are harmless)."""
        now = clock.now_ms()
        for account, state in list(journeys.items()):
            due = (state or {}).get("due_ms", 0)
            if due and due <= now:
                await topics.journey_ticks.send(key=account.encode(),
                                                value=orjson.dumps({"account": account, "now_ms": now}))
