"""The ClickHouse layer on the real embedded engine (chDB)."""

from datetime import datetime, timedelta, timezone

import pytest

from schemas.timeline import TimelineEvent
from sinks.clickhouse import ddl, queries
from sinks.clickhouse.client import Store
from sinks.clickhouse.rows import TIMELINE_COLUMNS, timeline_row

pytestmark = pytest.mark.integration
T = datetime(2026, 10, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(f"chdb://{tmp_path_factory.mktemp('store')}")
    yield s
    s.close()


def event(i: int, account: str = "acme", received: datetime = T, name: str = "") -> TimelineEvent:
    return TimelineEvent(event_id=f"e{i}", event_type="page", name=name or f"p{i}", channel="web",
                         side="digital", event_time=T + timedelta(minutes=i), received_at=received,
                         account_id=account)


def test_migrations_twice_are_a_no_op(store: Store) -> None:
    assert [m.version for m in ddl.migrate(store)] == [m.version for m in ddl.MIGRATIONS]
    assert ddl.migrate(store) == []
    assert ddl.applied(store) == [m.version for m in ddl.MIGRATIONS]


def test_replays_are_never_visible_twice_and_first_receipt_wins(store: Store) -> None:
    ddl.migrate(store)
    rows = [timeline_row(event(i)) for i in range(5)]
    store.insert("timeline", rows, TIMELINE_COLUMNS, dedup_token="b1")
    store.insert("timeline", rows, TIMELINE_COLUMNS, dedup_token="b1")  # retried block: deduplicated
    store.insert("timeline", rows[:2], TIMELINE_COLUMNS, dedup_token="b2")  # replayed subset: new block
    # the same id days later with another payload: the first receipt wins
    late = event(0, received=T + timedelta(days=3), name="changed")
    store.insert("timeline", [timeline_row(late)], TIMELINE_COLUMNS, dedup_token="b3")
    cols, rows_out = queries.timeline(store, "acme")
    recs = queries.records(cols, rows_out)
    assert [r["event_id"] for r in recs] == [f"e{i}" for i in range(5)]
    assert recs[0]["name"] == "p0"
    _, [(n, u)] = store.query("SELECT count(), uniqExact(event_id) FROM timeline_v")
    assert n == u == 5
