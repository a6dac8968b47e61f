"""Migration 6's lookup indexes (``identity_links_by_dst``, ``timeline_by_key``, alerts by account).

``queries.timeline`` finds links by destination and unattributed events by identifier through
candidate indexes filled by materialized views, then reads the current rows by primary key.
Checked on real chDB: the migration backfills a store written before it; the indexes follow
inserts (with insert dedup tokens); and the timeline of every account equals the reference
SQL (:data:`queries.RESOLVED_TIMELINE_SQL`, which reads no index) — also after manual
unmerges, after link rows are replaced by newer versions (stale index entries) and after an
unattributed event is replaced by a newer version naming another person.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from bench.simulate import InProcessPipeline
from bench.synth import SynthConfig, generate
from schemas.identity import IdentityLink, IdentityOverride
from schemas.timeline import TimelineEvent, utc_ms
from sinks.clickhouse import analytics, cluster, ddl, queries
from sinks.clickhouse.client import Store
from sinks.clickhouse.rows import (
    ALERT_COLUMNS,
    LINK_COLUMNS,
    OVERRIDE_COLUMNS,
    TIMELINE_COLUMNS,
    link_row,
    override_row,
    timeline_row,
)  # fmt: skip

pytestmark = pytest.mark.integration
T = datetime(2026, 5, 1, tzinfo=timezone.utc)
LINK_INDEX = "SELECT DISTINCT kind, dst, src FROM identity_links_by_dst ORDER BY ALL"
LINK_EXPECTED = "SELECT DISTINCT kind, dst, src FROM identity_links ARRAY JOIN dsts AS dst ORDER BY ALL"
KEY_INDEX = "SELECT DISTINCT key, event_id FROM timeline_by_key ORDER BY ALL"
KEY_EXPECTED = """
SELECT DISTINCT key, event_id FROM timeline
ARRAY JOIN arrayFilter(x -> x != '', if(user_id = '' AND email = '' AND contact_id = '',
                                        [anonymous_id], [user_id, email, contact_id])) AS key
WHERE account_id = '' ORDER BY ALL
"""


def migrate_until(store: Store, version: int) -> None:
    """Apply the migrations up to ``version`` only, as ``ddl.migrate`` does (a store of that age)."""
    ddl.applied(store)
    for migration in ddl.MIGRATIONS:
        if migration.version <= version:
            for statement in migration.statements + migration.backfill:
                store.command(statement)
            store.command("INSERT INTO schema_migrations (version, name) VALUES ({v:UInt32}, {n:String})",
                          {"v": migration.version, "n": migration.name})


def write(store: Store, pipeline: InProcessPipeline, token: str) -> None:
    """The pipeline's rows and links, in a few blocks with insert dedup tokens like the sink's."""
    rows = [timeline_row(e) for e in pipeline.rows]
    for i in range(0, len(rows), 500):
        store.insert("timeline", rows[i: i + 500], TIMELINE_COLUMNS, dedup_token=f"{token}-timeline-{i}")
    links = [link_row(link) for link in pipeline.links.values()]
    store.insert("identity_links", links, LINK_COLUMNS, dedup_token=f"{token}-links")


def all_accounts(store: Store) -> list[str]:
    _, rows = store.query("""
        SELECT DISTINCT a FROM (
          SELECT account_id AS a FROM timeline WHERE account_id != ''
          UNION ALL SELECT arrayJoin(dsts) FROM identity_links WHERE kind IN ('person_account', 'account_merge')
          UNION ALL SELECT src FROM identity_links WHERE kind = 'account_merge')
        ORDER BY a""")
    return [r[0] for r in rows]


def reference(store: Store, account: str) -> list[tuple]:
    _, rows = store.query(queries.RESOLVED_TIMELINE_SQL, {"account": account, "limit": 100_000})
    return rows


def assert_timelines_match_reference(store: Store) -> int:
    """Every account's timeline equals the reference SQL's; returns the number of events compared."""
    compared = 0
    for account in all_accounts(store):
        cols, rows = queries.timeline(store, account, limit=100_000)
        assert cols == queries.TIMELINE_OUT_COLUMNS
        assert rows == reference(store, account), account
        compared += len(rows)
    return compared


@pytest.fixture(scope="module")
def pipeline() -> InProcessPipeline:
    return InProcessPipeline().feed_all(orjson.dumps(s.obj) for s in generate(SynthConfig(events=1500, seed=3)))


def test_migration_6_backfills_a_store_written_before_it(tmp_path: Path, pipeline: InProcessPipeline) -> None:
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        migrate_until(store, 5)
        write(store, pipeline, "v5")
        assert [m.version for m in ddl.migrate(store)] == [m.version for m in ddl.MIGRATIONS if m.version >= 6]
        assert ddl.migrate(store) == []
        _, links = store.query(LINK_EXPECTED)
        _, keys = store.query(KEY_EXPECTED)
        assert len(links) > 200 and len(keys) > 500
        assert store.query(LINK_INDEX)[1] == links
        assert store.query(KEY_INDEX)[1] == keys
        assert assert_timelines_match_reference(store) > 1000
        # the backfill is safe to run again: only duplicates, which change no answer
        for statement in next(m for m in ddl.MIGRATIONS if m.version == 6).backfill:
            store.command(statement)
        assert store.query(LINK_INDEX)[1] == links and store.query(KEY_INDEX)[1] == keys
        account = all_accounts(store)[0]
        assert queries.timeline(store, account, limit=100_000)[1] == reference(store, account)
    finally:
        store.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, pipeline: InProcessPipeline):
    store = Store(f"chdb://{tmp_path_factory.mktemp('indexes')}")
    ddl.migrate(store)
    write(store, pipeline, "live")
    yield store
    store.close()


def test_indexes_follow_inserts_and_retried_blocks(loaded: Store, pipeline: InProcessPipeline) -> None:
    _, links = loaded.query(LINK_EXPECTED)
    _, keys = loaded.query(KEY_EXPECTED)
    assert loaded.query(LINK_INDEX)[1] == links and len(links) > 200
    assert loaded.query(KEY_INDEX)[1] == keys and len(keys) > 500
    before = {a: queries.timeline(loaded, a, limit=100_000) for a in all_accounts(loaded)[:20]}
    write(loaded, pipeline, "live")  # a retried batch (same dedup tokens)
    (raw,), = loaded.query("SELECT count() FROM timeline")[1]
    assert raw == len(pipeline.rows)
    assert loaded.query(KEY_INDEX)[1] == keys
    write(loaded, pipeline, "replayed")  # a replay (new tokens): duplicate rows everywhere
    assert loaded.query(LINK_INDEX)[1] == links and loaded.query(KEY_INDEX)[1] == keys
    for account, answer in before.items():
        assert queries.timeline(loaded, account, limit=100_000) == answer


def test_timelines_equal_the_reference_after_unmerges_and_newer_versions(loaded: Store) -> None:
    assert assert_timelines_match_reference(loaded) > 1000
    _, [(person, dsts, version)] = loaded.query(
        "SELECT src, dsts, version FROM identity_links FINAL "
        "WHERE kind = 'person_account' AND length(dsts) = 1 "
        "AND src IN (SELECT user_id FROM timeline WHERE account_id = '') ORDER BY src LIMIT 1")
    old_account = dsts[0]
    had = {r[queries.TIMELINE_OUT_COLUMNS.index("event_id")]
           for r in queries.timeline(loaded, old_account, limit=100_000)[1]}
    assert had
    # the person moves to another account (a newer version of the link row): the index still
    # names the old account as a candidate, the current row decides
    moved = IdentityLink(kind="person_account", src=person, dsts=("acct-moved",), valid_from_ms=(0,),
                         valid_to_ms=(utc_ms(T + timedelta(days=3650)),), rules=("test",), version=version + 1)
    loaded.insert("identity_links", [link_row(moved)], LINK_COLUMNS, dedup_token="moved")
    assert loaded.query("SELECT count() > 0 FROM identity_links_by_dst WHERE kind = 'person_account' "
                        "AND src = {p:String} AND dst = {a:String}", {"p": person, "a": old_account})[1] == [(1,)]
    # an unmerge of one account merge and of one device link
    for kind in ("account_merge", "device"):
        _, [(m_src, m_dst)] = loaded.query(
            "SELECT src, dsts[1] FROM identity_links FINAL WHERE kind = {k:String} ORDER BY src LIMIT 1", {"k": kind})
        override = IdentityOverride(action="unmerge", kind=kind, src=m_src, dst=m_dst, reason="test", by="test",
                                    at=T)
        loaded.insert("identity_overrides", [override_row(override)], OVERRIDE_COLUMNS, dedup_token=f"unmerge-{kind}")
    # an event resolved through a device, replaced by a newer version naming the moved person instead
    cols = queries.TIMELINE_OUT_COLUMNS
    named = [cols.index(c) for c in ("direct_account_id", "user_id", "email", "contact_id")]
    device_account, row = next((account, row) for account in all_accounts(loaded) if account != "acct-moved"
                               for row in queries.timeline(loaded, account, limit=100_000)[1]
                               if not any(row[i] for i in named))
    event_id = row[cols.index("event_id")]
    _, [(received,)] = loaded.query("SELECT received_at FROM timeline FINAL WHERE account_id = '' "
                                    "AND event_id = {e:String}", {"e": event_id})
    newer = TimelineEvent(event_id=event_id, event_type="page", name="renamed", channel="web", side="digital",
                          event_time=T, received_at=received.replace(tzinfo=timezone.utc) - timedelta(seconds=1),
                          user_id=person)
    loaded.insert("timeline", [timeline_row(newer)], TIMELINE_COLUMNS, dedup_token="newer")
    assert assert_timelines_match_reference(loaded) > 1000
    _, rows = queries.timeline(loaded, "acct-moved", limit=100_000)
    assert event_id in {r[cols.index("event_id")] for r in rows}
    assert event_id not in {r[cols.index("event_id")] for r in queries.timeline(loaded, device_account, 100_000)[1]}
    assert {r[cols.index("event_id")] for r in queries.timeline(loaded, old_account, limit=100_000)[1]} != had


def test_alerts_of_one_account_use_the_account_index(loaded: Store) -> None:
    rows = [(f"alert-{i}", "channel_bounce", f"acct-{i % 50}", T + timedelta(minutes=i), "rep", "s", "v1", "[]", "")
            for i in range(3000)]
    loaded.insert("alerts", rows, ALERT_COLUMNS, dedup_token="alerts")
    cols, found = analytics.alerts(loaded, account="acct-7", limit=1000)
    assert sorted(r[cols.index("alert_id")] for r in found) == sorted(f"alert-{i}" for i in range(7, 3000, 50))
    _, plan = loaded.query("EXPLAIN indexes = 1 SELECT alert_id FROM alerts FINAL WHERE account_id = 'acct-7'")
    assert any("idx_account_id" in line[0] for line in plan)


def test_cluster_variant_reads_and_writes_local_tables_and_backfills_once() -> None:
    six = next(m for m in ddl.MIGRATIONS if m.version == 6)
    statements = cluster.migration_statements(six, "c1")
    views = [s for s in statements if s.startswith("CREATE MATERIALIZED VIEW")]
    assert len(views) == 2
    assert all(" TO identity_links_by_dst_local AS" in v or " TO timeline_by_key_local AS" in v for v in views)
    assert all("FROM identity_links_local" in v or "FROM timeline_local" in v for v in views)
    backfill = cluster.backfill_statements(six)
    assert len(backfill) == 2 and all("ON CLUSTER" not in s and "_local" not in s for s in backfill)
    assert all(s.endswith("SETTINGS distributed_foreground_insert = 1") for s in backfill)
    assert cluster.script("c1").count("INSERT INTO timeline_by_key") == 1


def test_timeline_pages_walk_every_event_once_in_order_under_a_row_cap(loaded: Store) -> None:
    """The timeline query is bounded by SQL ``LIMIT`` and pages by keyset (event_time, event_id):
    walking an account's pages gives its whole resolved timeline (the reference SQL's), each
    event once, in order; each page is read under a result-row cap far below the account's size,
    which reading the whole account and slicing in Python would break."""
    from sinks.clickhouse.client import QueryLimitExceeded, ReadOnlyStore, read_limits

    sizes = {a: len(queries.timeline(loaded, a, limit=100_000)[1]) for a in all_accounts(loaded)}
    walked = 0
    for account in sorted(sizes, key=lambda a: -sizes[a])[:5]:
        full = reference(loaded, account)
        assert len(full) > 40, (account, len(full))
        capped = ReadOnlyStore(loaded, {**read_limits(30, 2048), "max_result_rows": 30})
        with pytest.raises(QueryLimitExceeded):  # the cap is real: the account has more rows than that
            capped.query(queries.RESOLVED_TIMELINE_SQL, {"account": account, "limit": 100_000})
        pages, after = [], None
        while True:
            cols, rows, after = queries.timeline_page(capped, account, 7, after)
            assert len(rows) <= 7 and (after is None or len(rows) == 7)
            pages.append(rows)
            if after is None:
                break
        assert len(pages) == -(-len(full) // 7) or (len(full) % 7 == 0 and len(pages) == len(full) // 7 + 1)
        flat = [r for page in pages for r in page]
        assert flat == full  # every event once, in (event_time, event_id) order, as resolved
        assert len({r[cols.index("event_id")] for r in flat}) == len(flat)
        assert queries.timeline(loaded, account, limit=7)[1] == full[:7]  # the first page as before
        walked += len(flat)
    assert walked > 200
    with pytest.raises(ValueError, match="after must be a cursor"):
        queries.timeline(loaded, "acct", after="not a cursor")
