"""Step: rejected-lead feedback (keyed by lead source) — the sales rejection rate of a source's MQLs.

The journey stage sends every CRM lead status it applies to the lead outcomes topic, keyed by the
lead's source; this step keeps each source's recent outcomes (at most 2,000 leads) and raises
``rejected_leads`` when sales reject too many of its MQLs (:func:`streams.rules.alerts.on_lead_outcome`).
A batch's outcomes of one source are applied together, its state read and written once: a busy
source's state is a large value, and one read and write of it per outcome cost a live drain 3.7%
of the stream process's event loop for 7% of its events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas.definitions import Definitions
from schemas.timeline import TimelineEvent, utc_ms
from streams import metrics
from streams.rules.alerts import on_lead_outcome
from streams.steps import Names, Outbox, States, dead_letter
from streams.steps.journey import alert_record, lead_source


@dataclass
class LeadFeedback:
    names: Names
    defs: Definitions
    public_url: str = "http://127.0.0.1:6066"
    name: str = "lead-feedback"

    def use(self, defs: Definitions) -> None:
        """A new version of the definitions, for the batches after this one."""
        self.defs = defs

    def group(self, records: Sequence[Any], out: Outbox) -> dict[str, list[tuple[Any, ...]]]:
        groups: dict[str, list[tuple[Any, ...]]] = {}
        for record in records:
            try:
                entry = TimelineEvent.from_bytes(record.value)
            except Exception as exc:  # noqa: BLE001 - not our record format: dead-lettered
                dead_letter(out, self.names.inbound_dlq, record, self.name, exc)
                continue
            groups.setdefault(lead_source(entry), []).append((record, entry))
        return groups

    def handle(self, source: str, items: list[tuple[Any, ...]], states: States, out: Outbox) -> None:
        state = states.get(source) or {}
        for _, entry in items:
            found = on_lead_outcome(state, source, str(entry.properties.get("status")), utc_ms(entry.event_time),
                                    str(entry.properties.get("leadId")), self.defs)
            for alert in found:
                metrics.ALERTS_FIRED.labels(alert.rule).inc()
                record = alert_record(alert, self.public_url)
                out.add(self.names.alerts, record.alert_id.encode(), record.to_bytes())
        states.put(source, state, items[-1][0])
