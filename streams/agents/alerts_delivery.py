"""Agent: deliver each alert to every webhook once (a table remembers what was delivered).

It has its own consumer position, so a failing webhook delays only deliveries — never the
journey stream — and an alert is acked only after every webhook took it.
"""

from __future__ import annotations

import aiohttp
import faust

from schemas.alerts import AlertRecord
from schemas.definitions import Definitions
from sinks.webhook import deliver
from streams import metrics, tables


def register(app: faust.App, topics, settings, defs: Definitions) -> None:
    urls = list(dict.fromkeys(list(defs.alerts.webhook_urls) + list(settings.alert_webhooks)))
    delivered = tables.table(
        app, settings, "alert-deliveries",
        help="alert id → webhook URLs that acknowledged it.",
    )

    @app.agent(topics.alerts, name="alert-delivery")
    async def alert_delivery(stream: faust.StreamT) -> None:
        async with aiohttp.ClientSession() as session:
            async for event in stream.events():
                if not urls:
                    continue
                alert = AlertRecord.model_validate_json(event.message.value)
                done = list(delivered.get(alert.alert_id) or [])
                for url in urls:
                    if url in done:
                        continue
                    await deliver(session, url, alert.slack_body(), alert.alert_id,
                                  on_failure=lambda _reason: metrics.ALERTS_FAILED.labels("webhook").inc())
                    metrics.ALERTS_DELIVERED.labels("webhook").inc()
                    done.append(url)
                    delivered[alert.alert_id] = done
