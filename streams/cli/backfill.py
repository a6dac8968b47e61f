"""``journeys definitions backfill``: replay stored events through another definitions version."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import Progress

from schemas.definitions import load
from schemas.timeline import TimelineEvent
from sinks.clickhouse import ddl
from sinks.clickhouse.client import is_embedded
from streams.cli import client
from streams.rules.journey import new_journey, on_journey_event
from streams.settings import Settings
from streams.storehandle import StoreHandle

# Each event on the account(s) the one resolution gives it (event_resolution: retroactive
# stitching, merges, unmerges — what every report reads), not the account the stream happened to
# know when it processed the event: an anonymous or early touch processed before its person's
# account was known has an empty journey_account_id in the timeline, and would be left out.
EVENTS_SQL = """
SELECT t.event_id AS event_id, t.event_type AS event_type, t.name AS name, t.channel AS channel, t.side AS side,
       t.event_time AS event_time, t.received_at AS received_at, t.anonymous_id AS anonymous_id,
       t.user_id AS user_id, t.email AS email, t.contact_id AS contact_id, t.account_id AS account_id,
       t.group_id AS group_id, t.domain AS domain, t.rep_id AS rep_id, t.rep_role AS rep_role, t.source AS source,
       t.properties AS properties, t.person_id AS person_id, r.account AS journey_account_id
FROM (
  SELECT event_id, account FROM event_resolution FINAL ARRAY JOIN accounts AS account
  WHERE event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)}
) AS r
INNER JOIN (
  SELECT * FROM timeline FINAL
  WHERE event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)}
  ORDER BY event_id, version DESC LIMIT 1 BY event_id
) AS t ON t.event_id = r.event_id
ORDER BY event_time, event_id, journey_account_id
"""


def run_backfill(settings: Settings, version_file: Path, start: datetime, end: datetime,
                 save: bool = True) -> list[dict[str, Any]]:
    """Recompute the period's stage entries under the version in ``version_file``; with ``save``,
    keep the comparison in ``definitions_comparisons`` (the UI's funnel page shows the latest)."""
    if is_embedded(settings.store_url) and client.stats(settings) is not None:
        raise click.ClickException("a worker holds the embedded store; stop it first (or use a ClickHouse server)")
    defs = load(version_file)
    recorded_version = load(settings.definitions).version

    def compute(store) -> list[dict[str, Any]]:
        cols, rows = store.query(EVENTS_SQL, {"start": start, "end": end})
        _, recorded = store.query(
            "SELECT to_stage, uniqExact(account_id) FROM stage_changes_resolved "  # canonical accounts, as recomputed
            
            "WHERE at >= {start:DateTime64(3)} AND at < {end:DateTime64(3)} GROUP BY to_stage",
            {"start": start, "end": end},
        )
        states: dict[str, dict] = {}
        entered: dict[str, set[str]] = {}
        with Progress(console=Console(stderr=True)) as progress:  # stdout is the result (json, csv)
            task = progress.add_task(f"recomputing under {defs.version}", total=len(rows))
            for row in rows:
                data = dict(zip(cols, row))
                data["properties"] = orjson.loads(data["properties"] or "{}")
                for name in ("event_time", "received_at"):  # the client hands DateTime64 back naive (UTC)
                    if data[name].tzinfo is None:
                        data[name] = data[name].replace(tzinfo=timezone.utc)
                entry = TimelineEvent.model_validate(data)
                account = entry.journey_account_id
                state = states.setdefault(account, new_journey())
                for change in on_journey_event(state, entry, account, defs).stage_changes:
                    entered.setdefault(change.to_stage, set()).add(account)
                progress.advance(task)
        before = {stage: int(n) for stage, n in recorded}
        return [
            {"stage": s.name, "recorded_accounts": before.get(s.name, 0),
             f"accounts_under_{defs.version}": len(entered.get(s.name, ())),
             "difference": len(entered.get(s.name, ())) - before.get(s.name, 0)}
            for s in defs.stages
        ]

    rows = client.direct(settings, compute)
    if save:
        run_id = uuid.uuid4().hex
        now = datetime.now(timezone.utc)
        ranks = {s.name: s.rank for s in defs.stages}
        table = [(run_id, now, defs.version, recorded_version, start, end, r["stage"], ranks[r["stage"]],
                  r["recorded_accounts"], r[f"accounts_under_{defs.version}"]) for r in rows]
        handle = StoreHandle(settings.store_url)
        try:
            handle.get().insert("definitions_comparisons", table, ddl.COMPARISON_COLUMNS)
        finally:
            handle.close()
    return rows
