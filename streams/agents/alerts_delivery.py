"""Agent: deliver each alert to the webhooks its routes name, each once or marked failed.

It has its own consumer position, so a failing webhook delays only deliveries — never the
journey stream. Per alert, every receiver is tried at once (sinks/webhook.py: bounded retries
with backoff); one that does not take it is recorded ``failed`` and the next alerts go on. How
each delivery ended goes to the alert-deliveries topic (the store keeps it: ``journeys
alerts``, the UI), and the table remembers it, so a redelivered alert is not sent again to a
receiver that had taken or refused it. An alert is acked only after every receiver took it or
was marked failed. A record the agent fails on (one it cannot read) is dead-lettered with stage
``alert-delivery`` and the next alerts go on (:func:`streams.agents.guarded`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import aiohttp
import faust

from schemas.alerts import AlertDelivery, AlertRecord
from schemas.definitions import Definitions
from sinks import webhook
from streams import metrics, tables
from streams.agents import guarded
from streams.rules.alert_routing import receivers


def _done(value: object) -> dict[str, str]:
    """The table's value for an alert: receiver → status (older workers kept a list of URLs)."""
    if isinstance(value, dict):
        return dict(value)
    return {webhook.redact(url): "delivered" for url in value or []}


def _count(outcome: webhook.Outcome) -> None:
    (metrics.ALERTS_DELIVERED if outcome.delivered else metrics.ALERTS_FAILED).labels("webhook").inc()


def register(app: faust.App, topics, settings, defs: Definitions) -> None:
    health = webhook.Health(webhook.Policy(
        attempts=settings.alert_delivery_attempts, backoff=settings.alert_delivery_backoff_seconds,
        max_backoff=settings.alert_delivery_max_backoff_seconds, timeout=settings.alert_delivery_timeout_seconds))
    delivered = tables.table(
        app, settings, "alert-deliveries",
        help="alert id → receiver (redacted URL) → delivered or failed.",
    )

    def on_retry(_reason: str) -> None:
        metrics.ALERT_DELIVERY_RETRIES.labels("webhook").inc()

    async def one(session: aiohttp.ClientSession, url: str, alert: AlertRecord) -> webhook.Outcome:
        outcome = await webhook.deliver(session, url, alert.slack_body(), alert.alert_id, health.policy_for(url),
                                        on_retry=on_retry)
        health.record(url, outcome)
        return outcome

    @app.agent(topics.alerts, name="alert-delivery")
    async def alert_delivery(stream: faust.StreamT) -> None:
        async with aiohttp.ClientSession() as session:
            async for event in stream.events():
                async with guarded(event, topics.inbound_dlq, "alert-delivery"):  # a bad record costs only itself
                    await deliver(session, AlertRecord.model_validate_json(event.message.value))

    async def deliver(session: aiohttp.ClientSession, alert: AlertRecord) -> None:
        done = _done(delivered.get(alert.alert_id))
        urls = [u for u in receivers(alert.rule, alert.owner, defs.alerts, settings.alert_webhooks)
                if webhook.redact(u) not in done]
        if not urls:
            return
        outcomes = await asyncio.gather(*(one(session, url, alert) for url in urls))
        for url, outcome in zip(urls, outcomes, strict=True):
            record = AlertDelivery(
                alert_id=alert.alert_id, receiver=webhook.redact(url),
                status="delivered" if outcome.delivered else "failed", attempts=outcome.attempts,
                reason=outcome.reason, at=datetime.now(timezone.utc))
            await topics.alert_deliveries.send(key=alert.alert_id.encode(), value=record.to_bytes())
            _count(outcome)
            done[record.receiver] = record.status
        delivered[alert.alert_id] = done
