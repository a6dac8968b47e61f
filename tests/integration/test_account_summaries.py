"""``account_summaries`` (one row per account, kept by the store with the resolution) and the
reports that read it instead of every event: the same answers as the SQL over ``journey_events``
(the oracle below, the report as it was before migration 16), after re-resolutions (unmerge and
merge), a privacy forget, the retention TTL, and for a store written before the migration."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import orjson
import pytest

from bench.simulate import InProcessPipeline
from bench.synth import SynthConfig, generate
from bench.timeline_query import _STAGE_CHANGES_SQL
from schemas.definitions import load
from sinks.clickhouse import analytics, ddl, privacy, retention
from sinks.clickhouse.client import Store
from tests.support.overrides import first_account_merge, unmerge_then_merge

pytestmark = pytest.mark.integration

# time-share as it was computed before account_summaries (every touch of journey_events grouped
# per account, an ASOF join on the stage changes), with one change per account and instant (the
# first by (journey_account_id, change_id)): an ASOF join picks any of several equal ones.
TIME_SHARE_ORACLE = f"""
WITH per_account AS (
  SELECT account_id, rowNumberInAllBlocks() AS account_no,
         arrayMap(x -> (x.1, x.3),
                  arraySort(groupArray((event_time, event_id,
                                        toUInt8(multiIf(side = 'digital', 1, side = 'human', 2, 0)))))) AS ts,
         arrayMap(x -> x.1, ts) AS times
  FROM ({analytics.TOUCHES}) GROUP BY account_id
),
touches AS (
  SELECT account_id, account_no, t.1 AS event_time, t.2 AS side,
         least(dateDiff('second', t.1, next_at), 7 * 86400) AS gap_s
  FROM per_account ARRAY JOIN ts AS t, arrayPushBack(arrayPopFront(times), times[-1]) AS next_at
),
staged AS (
  SELECT t.account_no AS account_no, t.side AS side, t.gap_s AS gap_s,
         if(s.to_stage = '', '(before engaged)', s.to_stage) AS stage
  FROM touches AS t
  ASOF LEFT JOIN (SELECT account_id, at, argMin(to_stage, (journey_account_id, change_id)) AS to_stage
                  FROM stage_changes_resolved GROUP BY account_id, at) AS s
    ON t.account_id = s.account_id AND t.event_time >= s.at
)
SELECT stage, uniqExact(account_no) AS accounts,
       countIf(side = 1) AS digital_touches, countIf(side = 2) AS human_touches,
       round(digital_touches / count(), 4) AS digital_touch_share,
       round(sumIf(gap_s, side = 1) / nullIf(sum(gap_s), 0), 4) AS digital_time_share,
       round(sumIf(gap_s, side = 2) / nullIf(sum(gap_s), 0), 4) AS human_time_share
FROM staged GROUP BY stage ORDER BY stage
"""

# every account's events from account_events now, as the summaries must hold them
SUMMARIES_NOW = """
SELECT account_id, arrayMap(x -> x.1, e), arrayMap(x -> x.3, e), arrayMap(x -> x.4, e)
FROM (SELECT account_id, arraySort(groupArray((event_time, event_id,
                                               toUInt8(multiIf(side = 'digital', 1, side = 'human', 2, 0)),
                                               channel))) AS e
      FROM account_events FINAL GROUP BY account_id)
ORDER BY account_id
"""
SUMMARIES_KEPT = ("SELECT account_id, times, sides, channels FROM account_summaries FINAL WHERE notEmpty(times) "
                  "ORDER BY account_id")

# a second change at the same instant as some accounts' first ones (a later change id): the tie rule
_TIES_SQL = """
INSERT INTO stage_changes (change_id, account_id, from_stage, to_stage, at, rule, definitions_version, event_id,
                           contact_id, source, persona, valid, version)
SELECT concat(change_id, '/tie'), account_id, to_stage, 'won', at, rule, definitions_version, event_id, contact_id,
       source, persona, 1, 1
FROM stage_changes FINAL WHERE cityHash64(account_id) % 3 = 0 AND from_stage = ''
"""


def _store(tmp_path, events: int = 2500, seed: int = 5) -> tuple[Store, InProcessPipeline]:
    pipeline = InProcessPipeline().feed_all(orjson.dumps(s.obj) for s in generate(SynthConfig(events=events, seed=seed)))
    store = Store(f"chdb://{tmp_path / 'store'}")
    pipeline.store_into(store)
    defs = load()
    store.insert("channel_definitions", ddl.channel_rows(defs.channels, defs.version, 1), ddl.CHANNEL_COLUMNS)
    store.command(_STAGE_CHANGES_SQL.replace("journey_account_id", "account_id"))
    store.command(_TIES_SQL)
    return store, pipeline


def assert_same(store: Store) -> tuple[list[str], list[tuple]]:
    """The summaries hold what account_events holds, and time-share answers as the oracle does
    (byte for byte, as bench.timeline_query hashes it); the answer."""
    assert store.query(SUMMARIES_KEPT)[1] == store.query(SUMMARIES_NOW)[1]
    new, old = analytics.time_share(store), store.query(TIME_SHARE_ORACLE)
    assert hashlib.sha256(repr(new).encode()).digest() == hashlib.sha256(repr(old).encode()).digest(), (new, old)
    return new


def test_time_share_from_the_summaries_equals_the_old_sql_through_an_unmerge_and_a_merge(tmp_path) -> None:
    store, pipeline = _store(tmp_path)
    try:
        before = assert_same(store)
        (tied,), = store.query("SELECT count() FROM stage_changes WHERE change_id LIKE '%/tie'")[1]
        assert tied > 5 and len(before[1]) >= 4  # several stages, ties between changes at one instant
        merge = first_account_merge(pipeline)
        answers = []
        for action in unmerge_then_merge(store, merge):
            (moved,), = store.query("SELECT count() FROM account_summaries FINAL WHERE account_id = {a:String} "
                                    "AND notEmpty(times)", {"a": merge.src})[1]
            assert moved == (action == "unmerge"), action  # the merged account's summary came and went
            answers.append(assert_same(store))
        assert answers[1] == before
    finally:
        store.close()


def test_a_forgotten_persons_events_leave_the_summaries(tmp_path) -> None:
    store, _ = _store(tmp_path, events=1500, seed=9)
    try:
        (email, n), = store.query("SELECT email, count() FROM account_events FINAL WHERE email != '' "
                                  "GROUP BY email ORDER BY count() DESC, email LIMIT 1")[1]
        assert n > 3
        subject = privacy.find(store, "email", email)
        privacy.forget(store, subject, lambda _: False, [])
        (left,), = store.query("SELECT count() FROM account_events FINAL WHERE email = {e:String}", {"e": email})[1]
        assert left == 0
        assert_same(store)
    finally:
        store.close()


class _CrashesOnTimelineDelete:
    """The store, killed when the forget reaches the timeline (the events' derived rows gone)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def query(self, sql, parameters=None):
        return self._store.query(sql, parameters)

    def command(self, sql, parameters=None):
        if sql.startswith("DELETE FROM timeline WHERE"):
            raise RuntimeError("killed")
        return self._store.command(sql, parameters)


def test_a_forget_retried_after_a_crash_leaves_the_summaries_without_the_person(tmp_path) -> None:
    store, _ = _store(tmp_path, events=1500, seed=9)
    try:
        (email,), = store.query("SELECT email FROM account_events FINAL WHERE email != '' "
                                "GROUP BY email ORDER BY count() DESC, email LIMIT 1")[1]
        subject = privacy.find(store, "email", email)
        with pytest.raises(RuntimeError, match="killed"):
            privacy.forget(_CrashesOnTimelineDelete(store), subject, lambda _: False, [])
        (left,), = store.query("SELECT count() FROM account_events FINAL WHERE email = {e:String}", {"e": email})[1]
        assert left == 0  # the account_events rows went before the crash
        privacy.forget(store, subject, lambda _: False, [])  # the request redelivered
        assert_same(store)
    finally:
        store.close()


def test_events_past_the_retention_ttl_leave_time_share(tmp_path) -> None:
    store, _ = _store(tmp_path, events=1500, seed=3)
    try:
        (oldest, newest), = store.query("SELECT min(event_time), max(event_time) FROM account_events")[1]
        now = datetime.now(timezone.utc)
        days = (now - (oldest + (newest - oldest) / 2).replace(tzinfo=timezone.utc)).days  # about half expire
        before = analytics.time_share(store)
        retention.apply(store, days, 0)
        for table, _ in retention.EVENT_TABLES:
            store.command(f"OPTIMIZE TABLE {table} FINAL")  # what a merge does with expired rows
        (kept,), = store.query("SELECT count() FROM account_events")[1]
        assert 0 < kept and analytics.events_retention_days(store) == days
        after = analytics.time_share(store)
        assert after == store.query(TIME_SHARE_ORACLE) and after != before
    finally:
        store.close()


def test_migration_16_fills_the_summaries_of_a_store_written_before_it(tmp_path) -> None:
    store, _ = _store(tmp_path, events=1200, seed=4)
    try:
        answer = assert_same(store)
        store.command("TRUNCATE TABLE account_summaries")
        store.command("DELETE FROM schema_migrations WHERE version = 16")
        assert analytics.time_share(store)[1] == []  # nothing to read: what the migration must fill
        assert [m.version for m in ddl.migrate(store)] == [16]
        assert assert_same(store) == answer
    finally:
        store.close()


_CHANGE = """
INSERT INTO stage_changes (change_id, account_id, from_stage, to_stage, at, rule, definitions_version, event_id,
                           contact_id, source, persona, valid, version)
VALUES ({id:String}, {a:String}, '', {to:String}, {at:DateTime64(3, 'UTC')}, 'test', 'test', '', '', 'test', '', 1, 1)
"""


def test_time_share_stages_touches_as_the_old_sql_at_the_edges(tmp_path) -> None:
    """The cases time-share's encoding has to get right (changes and touches as one sorted
    array of numbers, changes ranked by (journey_account_id, change_id)): a change at a touch's
    instant (the touch is in the new stage), changes of a merged domain account and of its CRM
    account at one instant (the first journey account by id wins, whatever the change ids say),
    a change to stage '' (counted with the touches before any change, each account once), a
    touch before 1970, and an invalidated change (ignored)."""
    store, _ = _store(tmp_path, events=1500, seed=8)
    try:
        (merged, canonical), = store.query(
            "SELECT account_id, canonical_id FROM account_merges_v WHERE canonical_id IN "
            "(SELECT account_id FROM account_summaries FINAL WHERE countEqual(sides, 1) > 4) ORDER BY account_id LIMIT 1")[1]
        (times,), = store.query("SELECT arrayFilter((t, c) -> c NOT IN ('identity', 'crm'), times, channels) "
                                "FROM account_summaries FINAL WHERE account_id = {a:String}", {"a": canonical})[1]
        first, second = sorted({merged, canonical})  # the tie rule's order of journey accounts
        at = times[2]
        for change_id, account, stage in (("b", first, "sal"), ("a", second, "won"), ("c", first, "mql")):
            store.command(_CHANGE, {"id": change_id, "a": account, "to": stage, "at": at})
        store.command(_CHANGE, {"id": "blank", "a": canonical, "to": "", "at": times[-1]})
        store.command(_CHANGE.replace(", 1, 1)", ", 0, 2)"), {"id": "gone", "a": canonical, "to": "lost", "at": times[0]})
        (other,), = store.query("SELECT account_id FROM account_summaries FINAL WHERE notEmpty(times) AND account_id "
                                "NOT IN {a:Array(String)} ORDER BY account_id LIMIT 1", {"a": [merged, canonical]})[1]
        store.command("INSERT INTO account_summaries (account_id, times, sides, channels, computed_at) SELECT "
                      "account_id, arrayConcat([toDateTime64('1969-12-31 23:59:59.999', 3, 'UTC')], times), "
                      "arrayConcat([toUInt8(1)], sides), arrayConcat(['web'], channels), now64(6) "
                      "FROM account_summaries FINAL WHERE account_id = {a:String}", {"a": other})
        answer = dict((r[0], r[1:]) for r in analytics.time_share(store)[1])
        assert store.query(TIME_SHARE_ORACLE.replace(  # the oracle reads the summaries' touches here too
            f"FROM ({analytics.TOUCHES}) GROUP BY account_id",
            "FROM (SELECT account_id, t AS event_time, leftPad(toString(i), 9, '0') AS event_id, "
            "multiIf(sides[i] = 1, 'digital', sides[i] = 2, 'human', '') AS side FROM account_summaries FINAL "
            "ARRAY JOIN times AS t, arrayEnumerate(times) AS i WHERE channels[i] NOT IN ('identity', 'crm')) "
            "GROUP BY account_id"))[1] == \
            [(stage, *row) for stage, row in sorted(answer.items())]
        assert "sal" in answer and "won" not in answer  # the change of the first journey account by id
    finally:
        store.close()
