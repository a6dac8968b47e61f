"""Pure row mapping: timeline entries and dead letters → ClickHouse rows."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

import orjson

from schemas.alerts import AlertDelivery, AlertRecord
from schemas.identity import IdentityLink, IdentityOverride
from schemas.journey import JourneyUpdate
from schemas.timeline import TimelineEvent, utc_ms

TIMELINE_COLUMNS = (
    "event_id", "account_id", "event_time", "received_at", "event_type", "name", "channel",
    "side", "anonymous_id", "user_id", "email", "contact_id", "group_id", "domain", "rep_id",
    "rep_role", "source", "properties", "version", "person_id", "journey_account_id",
)  # fmt: skip

STAGE_CHANGE_COLUMNS = ("change_id", "account_id", "from_stage", "to_stage", "at", "rule",
                        "definitions_version", "event_id", "contact_id", "source", "persona", "valid", "version")
SCORE_COLUMNS = ("account_id", "event_id", "at", "stage", "engagement", "fit", "total", "owner", "source",
                 "committee", "definitions_version")
CONTACT_SCORE_COLUMNS = ("account_id", "contact_id", "persona", "title", "score", "scored_at", "version")
ALERT_COLUMNS = ("alert_id", "rule", "account_id", "at", "owner", "summary", "definitions_version", "path", "link")
ALERT_DELIVERY_COLUMNS = ("alert_id", "receiver", "status", "attempts", "reason", "at")
LINK_COLUMNS = ("kind", "src", "dsts", "valid_froms", "valid_tos", "rules", "version")
OVERRIDE_COLUMNS = ("kind", "src", "dst", "action", "reason", "changed_by", "changed_at", "version")

DEAD_LETTER_COLUMNS = ("dlq_id", "rejected_at", "source_kind", "source", "stage", "reasons", "payload")

_FAR_FUTURE_MS = 1 << 48


def first_wins_version(received_at: datetime) -> int:
    """ReplacingMergeTree keeps the highest version: the earliest receipt of an id wins."""
    return _FAR_FUTURE_MS - utc_ms(received_at)


def timeline_row(e: TimelineEvent) -> tuple[Any, ...]:
    return (
        e.event_id, e.account_id, e.event_time, e.received_at, e.event_type, e.name, e.channel,
        e.side, e.anonymous_id, e.user_id, e.email, e.contact_id, e.group_id, e.domain,
        e.rep_id, e.rep_role, e.source, orjson.dumps(e.properties).decode(),
        first_wins_version(e.received_at), e.person_id, e.journey_account_id,
    )  # fmt: skip


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def link_row(link: IdentityLink) -> tuple[Any, ...]:
    return (
        link.kind, link.src, list(link.dsts), [_dt(v) for v in link.valid_from_ms],
        [_dt(v) for v in link.valid_to_ms], list(link.rules), link.version,
    )  # fmt: skip


def override_row(o: IdentityOverride) -> tuple[Any, ...]:
    return (o.kind, o.src, o.dst, o.action, o.reason, o.by, o.at, utc_ms(o.at))


def dead_letter_row(
    dlq_id: str,
    rejected_at: datetime,
    source_kind: str,
    source: str,
    stage: str,
    reasons: Sequence[str],
    payload: bytes,
) -> tuple[Any, ...]:
    return (
        dlq_id, rejected_at, source_kind, source, stage, list(reasons),
        payload.decode("utf-8", errors="backslashreplace"),
    )  # fmt: skip


def journey_rows(u: JourneyUpdate) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """One account_scores row and the stage_changes rows of a journey update."""
    score = (u.account_id, u.event_id, u.at, u.stage, u.engagement, u.fit, u.total, u.owner, u.source,
             orjson.dumps(u.committee).decode(), u.definitions_version)
    changes = [
        (c.change_id, c.account_id, c.from_stage, c.to_stage, c.at, c.rule, c.definitions_version,
         c.event_id, c.contact_id, c.source, c.persona, 1, u.version)
        for c in u.stage_changes
    ] + [
        (change_id, u.account_id, "", "", _dt(0), f"retracted: {u.reason or 'a late event changed the path'}",
         u.definitions_version, u.event_id, "", "", "", 0, u.version)
        for change_id in u.retracted_changes
    ]
    return score, changes


def contact_rows(u: JourneyUpdate) -> list[tuple[Any, ...]]:
    """The contact_scores rows of a journey update: one per contact its events touched."""
    return [(u.account_id, c.contact_id, c.persona, c.title, c.score, c.scored_at, u.version) for c in u.contacts]


def alert_row(a: AlertRecord) -> tuple[Any, ...]:
    path = orjson.dumps([p.model_dump(mode="json") for p in a.path]).decode()
    return (a.alert_id, a.rule, a.account_id, a.at, a.owner, a.summary, a.definitions_version, path, a.link)


def alert_delivery_row(d: AlertDelivery) -> tuple[Any, ...]:
    return (d.alert_id, d.receiver, d.status, d.attempts, d.reason, d.at)
