"""Bulk resolution (sinks/clickhouse/resolution.py) agrees with the per-account timeline query.

A small generated set goes through the identity rules in process (bench/simulate.py) into a
real chDB store; then, for every account not merged into another, ``timeline(account)`` must
hold exactly the events the bulk query resolves to it — before and after a manual unmerge.
"""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from bench.simulate import InProcessPipeline
from bench.synth import SynthConfig, generate
from schemas.identity import IdentityOverride
from sinks.clickhouse import queries
from sinks.clickhouse.client import Store
from sinks.clickhouse.resolution import canonical_accounts, resolve_events
from sinks.clickhouse.rows import OVERRIDE_COLUMNS, override_row

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    synth = list(generate(SynthConfig(events=1200, seed=7)))
    pipeline = InProcessPipeline().feed_all(orjson.dumps(s.obj) for s in synth)
    store = Store(f"chdb://{tmp_path_factory.mktemp('resolution')}")
    pipeline.store_into(store)
    yield store, synth, pipeline
    store.close()


def bulk_by_account(store: Store) -> tuple[dict[str, set[str]], dict[str, tuple[str, ...]]]:
    by_account: dict[str, set[str]] = {}
    by_event = {}
    for event_id, _, accounts in resolve_events(store):
        by_event[event_id] = accounts
        for account in accounts:
            by_account.setdefault(account, set()).add(event_id)
    return by_account, by_event


def assert_same_as_timelines(store: Store) -> dict[str, tuple[str, ...]]:
    by_account, by_event = bulk_by_account(store)
    accounts = canonical_accounts(store)
    assert set(by_account) <= accounts
    for account in sorted(accounts):
        cols, rows = queries.timeline(store, account, limit=100_000)
        ids = {row[cols.index("event_id")] for row in rows}
        assert ids == by_account.get(account, set()), f"{account}: timeline-only {ids - by_account.get(account, set())}, bulk-only {by_account.get(account, set()) - ids}"
    return by_event


def test_bulk_resolution_matches_the_timeline_query(loaded) -> None:
    store, synth, _ = loaded
    by_event = assert_same_as_timelines(store)
    assert set(by_event) == {s.event_id for s in synth}  # every stored event once
    # the set exercises every path: direct, through persons and through devices
    kinds = {s.event_type for s in synth if by_event[s.event_id]}
    assert {"page", "identify", "group", "conversation", "lead_status", "opportunity"} <= kinds
    anonymous = [s for s in synth if set(s.obj) >= {"anonymousId"} and "userId" not in s.obj
                 and "email" not in s.obj.get("properties", {})]
    assert any(by_event[s.event_id] for s in anonymous), "no event resolved through a device"
    assert any(not by_event[s.event_id] for s in anonymous), "no unattributed anonymous event"


def test_bulk_resolution_applies_unmerges_like_the_timeline_query(loaded) -> None:
    store, _, pipeline = loaded
    merge = next(link for (kind, _), link in pipeline.links.items() if kind == "account_merge")
    override = IdentityOverride(action="unmerge", kind="account_merge", src=merge.src, dst=merge.dsts[0],
                                reason="test", by="test", at=datetime.now(timezone.utc))
    store.insert("identity_overrides", [override_row(override)], OVERRIDE_COLUMNS, dedup_token="unmerge-1")
    assert merge.src in canonical_accounts(store)
    by_event = assert_same_as_timelines(store)
    assert any(merge.src in accounts for accounts in by_event.values())

