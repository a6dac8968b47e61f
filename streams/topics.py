"""Every topic the tracker reads or writes, with its key — declared here and nowhere else.

Names are lowercase-hyphenated and versioned; each inbound topic has a dead-letter twin.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    doc: str
    compacted: bool = False


INBOUND = TopicSpec(
    "journeys-inbound-v1",
    "anonymousId or userId (any stable person/device key; used only for ordering)",
    "Raw inbound JSON events (Segment calls, sales conversations, CRM updates).",
)
INBOUND_DLQ = TopicSpec(
    "journeys-inbound-v1-dlq",
    "as received",
    "Rejected inbound events: the original bytes as value, source/stage/reasons in headers.",
)
RECEIPTS = TopicSpec(
    "journeys-receipts-v1",
    "event_id",
    "Validated, normalised events keyed by event id: the dedupe stage passes on each id's first receipt.",
)
EVENTS = TopicSpec(
    "journeys-events-v1",
    "identity key (device or person)",
    "Validated, normalised events awaiting identity resolution.",
)
PERSONS = TopicSpec(
    "journeys-persons-v1",
    "person key (userId, else email, else CRM contact id)",
    "Events whose person is known, re-keyed for the person stage (account membership).",
)
TIMELINE = TopicSpec(
    "journeys-timeline-v1",
    "account_id",
    "Resolved timeline entries, keyed by account; the store writes them to ClickHouse.",
)

IDENTITY_LINKS = TopicSpec(
    "journeys-identity-links-v1",
    "kind:src",
    "Every interval of one identifier's links (newest version wins); the store keeps them.",
    compacted=True,
)
IDENTITY_OVERRIDES = TopicSpec(
    "journeys-identity-overrides-v1",
    "kind:src:dst",
    "Manual unmerges/merges with who and why (`journeys identity unmerge`).",
    compacted=True,
)

JOURNEY_UPDATES = TopicSpec(
    "journeys-journey-updates-v1",
    "account_id",
    "The account's stage, scores and committee after each event, with any stage changes.",
)

JOURNEY_TICKS = TopicSpec(
    "journeys-journey-ticks-v1",
    "account_id",
    "Ticks for an account's journey: timer rules due (missed handoff, stalled deal), privacy forgets, "
    "merges (a domain journey merged into or unmerged from a CRM account; the facts it forwards) and "
    "rebuilds (the account's stored events, read back by the store process).",
)
JOURNEY_REBUILDS = TopicSpec(
    "journeys-journey-rebuilds-v1",
    "account_id",
    "Requests from the journey stage to rebuild an account's journey from its stored events (an event "
    "later than the journey's kept facts): the store process answers on the journey ticks.",
)
LEAD_OUTCOMES = TopicSpec(
    "journeys-lead-outcomes-v1",
    "lead source",
    "Lead status changes re-keyed by source, for the rejected-lead feedback rule.",
)
ALERTS = TopicSpec(
    "journeys-alerts-v1",
    "alert_id",
    "Alerts with deterministic ids; the store and the webhook deliverer read them.",
)

ALERT_DELIVERIES = TopicSpec(
    "journeys-alert-deliveries-v1",
    "alert_id",
    "How each alert's delivery to each webhook ended (delivered or failed); the store keeps them.",
)

PRIVACY = TopicSpec(
    "journeys-privacy-v1",
    "request id",
    "Privacy requests (`journeys privacy forget`): the store process deletes the person's rows, tells the "
    "stream stages to drop their state (control records on events, persons and journey ticks), then audits.",
)

ALL = (INBOUND, INBOUND_DLQ, RECEIPTS, EVENTS, PERSONS, TIMELINE, IDENTITY_LINKS, IDENTITY_OVERRIDES, JOURNEY_UPDATES,
       JOURNEY_TICKS, JOURNEY_REBUILDS, LEAD_OUTCOMES, ALERTS, ALERT_DELIVERIES, PRIVACY)

STREAM_READS = (INBOUND, RECEIPTS, EVENTS, PERSONS, TIMELINE, JOURNEY_TICKS, LEAD_OUTCOMES, ALERTS)
"""The topics the stream role's agents read (the store role reads the others it reads alone;
``tests/unit/test_processes.py`` checks this against the app)."""


def name(spec: TopicSpec, prefix: str = "") -> str:
    """The topic's name on the broker (``prefix`` isolates tests and tenants)."""
    return f"{prefix}{spec.name}"


# Dead-letter record headers.
DLQ_HEADER_ID = "journeys.dlq.id"
DLQ_HEADER_SOURCE_KIND = "journeys.dlq.source_kind"
DLQ_HEADER_SOURCE = "journeys.dlq.source"
DLQ_HEADER_STAGE = "journeys.dlq.stage"
DLQ_HEADER_REASONS = "journeys.dlq.reasons"
DLQ_HEADER_REJECTED_AT = "journeys.dlq.rejected_at"

# Control records: a record on a stage's input topic with this header is a command to the
# stage, not data. ``forget``: drop the state of the record's key (device or person stage).
CONTROL_HEADER = "journeys.control"
CONTROL_FORGET = b"forget"
