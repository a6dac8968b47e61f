"""The store keeps ``event_resolution`` (what every report reads) current batch by batch.

What the store process does (streams/agents/store.py) after each batch it writes — re-resolve
a timeline batch's events, and the events a batch of changed links or overrides can move — in
either order, must leave the table equal to a full resolution done now.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from bench.simulate import InProcessPipeline
from bench.synth import SynthConfig, generate
from schemas.identity import IdentityOverride
from sinks.clickhouse import ddl, queries
from sinks.clickhouse.client import Store
from sinks.clickhouse.resolution import (
    _INSERT,
    _scope,
    affected,
    after_link_rows,
    after_timeline_rows,
    indexed_resolution,
    merged,
    refresh,
    resolve_events,
    resolve_sql,
    stored_resolution,
    timeline_pairs,
)  # fmt: skip
from sinks.clickhouse.rows import (
    LINK_COLUMNS,
    OVERRIDE_COLUMNS,
    TIMELINE_COLUMNS,
    link_row,
    override_row,
    timeline_row,
)  # fmt: skip
from tests.support.overrides import first_account_merge, unmerge_then_merge

pytestmark = pytest.mark.integration


def test_the_store_keeps_the_resolution_current_batch_by_batch(tmp_path) -> None:
    """What the store process does (streams/agents/store.py): write each timeline batch and
    re-resolve its events, write each batch of changed links and re-resolve what they move —
    in either order; the table the reports read must equal a full resolution now, also after
    an unmerge and a merge."""
    synth = [orjson.dumps(s.obj) for s in generate(SynthConfig(events=1500, seed=9, shuffle_window=200))]
    pipeline = InProcessPipeline()
    store = Store(f"chdb://{tmp_path / 'store'}")
    ddl.migrate(store)

    def now_resolved() -> dict[str, tuple[str, ...]]:
        return {event_id: accounts for event_id, _, accounts in resolve_events(store)}

    written, versions = 0, {}
    for n, i in enumerate(range(0, len(synth), 97)):
        pipeline.feed_all(synth[i : i + 97])
        rows = [timeline_row(e) for e in pipeline.rows[written:]]
        written = len(pipeline.rows)
        links = [link_row(link) for key, link in pipeline.links.items() if versions.get(key) != link.version]
        versions = {key: link.version for key, link in pipeline.links.items()}
        steps = [("timeline", rows, TIMELINE_COLUMNS, after_timeline_rows),
                 ("identity_links", links, LINK_COLUMNS, after_link_rows)]
        for table, batch, columns, then in steps if n % 2 else reversed(steps):
            if batch:
                store.insert(table, batch, columns, dedup_token=f"{table}-{n}")
                then(store, batch)
    stored = stored_resolution(store)
    assert stored == now_resolved()
    assert sum(1 for accounts in stored.values() if accounts) > 1000
    assert_indexed(store)

    merge = first_account_merge(pipeline)
    for action in unmerge_then_merge(store, merge):
        now = stored_resolution(store)
        assert now == now_resolved(), action
        moved = any(merge.src in accounts for accounts in now.values())
        assert moved == (action == "unmerge"), action
        assert_indexed(store)  # the moved events left one account's timeline and joined the other's
        shown = {row[10] for row in queries.account_timeline(store, merge.src, limit=100_000)[1]}
        assert bool(shown & {e for e, accounts in now.items() if merge.src in accounts}) == (action == "unmerge")
        # merged, the account's timeline is the one its events count under: the canonical account's
        merged_into = queries.canonical_account(store, merge.src)
        assert merged_into == min((d for d in merge.dsts if action == "merge" or d != merge.dsts[0]), default=""), action
        if merged_into:
            assert shown == {e for e, accounts in now.items() if merged_into in accounts} != set(), action
    store.close()


def assert_indexed(store: Store) -> None:
    """``account_events`` (what the timeline reads) holds each event under exactly the accounts
    ``event_resolution`` (what the reports read) resolves it to, and the timeline of every
    account shows exactly those events."""
    resolved = {e: accounts for e, accounts in stored_resolution(store).items() if accounts}
    assert indexed_resolution(store) == resolved
    by_account: dict[str, set[str]] = {}
    for event_id, accounts in resolved.items():
        for account in accounts:
            by_account.setdefault(account, set()).add(event_id)
    for account, events in by_account.items():
        cols, rows = queries.account_timeline(store, account, limit=100_000)
        assert {row[cols.index("event_id")] for row in rows} == events, account
    # and account_summaries (what time-share reads) holds every account's events as account_events does
    kept = store.query("SELECT account_id, arraySort(times) FROM account_summaries FINAL WHERE notEmpty(times) "
                       "ORDER BY account_id")[1]
    now = store.query("SELECT account_id, arraySort(groupArray(event_time)) FROM account_events FINAL "
                      "GROUP BY account_id ORDER BY account_id")[1]
    assert kept == now


def test_a_store_killed_between_the_resolution_and_its_tombstones_completes_them_on_retry(tmp_path) -> None:
    """A re-resolution writes ``event_resolution`` (and, through materialized views, the new
    ``account_events`` rows), then the tombstones of the accounts an event left. Killed between
    the two, the batch is retried: the retry's refresh must still hide the events from the
    accounts they left, although ``event_resolution`` already holds the new answer."""
    synth = [orjson.dumps(s.obj) for s in generate(SynthConfig(events=600, seed=5))]
    pipeline = InProcessPipeline().feed_all(synth)
    store = Store(f"chdb://{tmp_path / 'store'}")
    pipeline.store_into(store)
    assert_indexed(store)
    merge = next(link for (kind, _), link in pipeline.links.items() if kind == "account_merge")
    row = override_row(IdentityOverride(action="unmerge", kind="account_merge", src=merge.src, dst=merge.dsts[0],
                                        reason="test", by="test", at=datetime.now(timezone.utc)))
    store.insert("identity_overrides", [row], OVERRIDE_COLUMNS, dedup_token="override-kill")
    pairs = sorted(set(affected(store, [("account_merge", merge.src, (merge.dsts[0],))])))
    store.command(_INSERT + resolve_sql(scoped=True), _scope(store, pairs))  # killed here: no tombstones
    moved = {e for e, accounts in stored_resolution(store).items() if merge.src in accounts}
    assert moved, "the unmerge moved no event"
    assert {e for e, accounts in indexed_resolution(store).items() if merge.dsts[0] in accounts} & moved, \
        "without tombstones the canonical account still shows the moved events (what the retry must fix)"
    refresh(store, pairs)  # the retry
    assert_indexed(store)
    store.close()


def test_the_pages_of_one_account_come_from_one_resolution(tmp_path) -> None:
    """An account ``account_events`` holds is paged from it to its end: a page past its last
    indexed event is empty, even while the timeline holds a newer event the store has not
    resolved yet (a query-time page there would mix two resolutions in one walk). An account
    it holds nothing for is still answered at query time, on every page."""
    synth = [orjson.dumps(s.obj) for s in generate(SynthConfig(events=400, seed=3))]
    pipeline = InProcessPipeline().feed_all(synth)
    store = Store(f"chdb://{tmp_path / 'store'}")
    pipeline.store_into(store)
    cols, rows = queries.account_timeline(store, "acct-late", limit=10)
    assert rows == []  # unknown everywhere
    indexed = indexed_resolution(store)
    account = max({a for accounts in indexed.values() for a in accounts},
                  key=lambda a: sum(a in accounts for accounts in indexed.values()))
    cols, rows = queries.account_timeline(store, account, limit=100_000)
    assert rows
    at, ev = cols.index("event_time"), cols.index("event_id")
    end = queries.cursor_of(rows[-1][at], rows[-1][ev])
    # a newer event of the account, stored but not resolved yet (no refresh after the insert)
    template = next(e for e in pipeline.rows if e.account_id == account)
    last_at = rows[-1][at].replace(tzinfo=timezone.utc)
    late = template.model_copy(update={"event_id": "zz-late-event", "event_time": last_at + timedelta(hours=1)})
    store.insert("timeline", [timeline_row(late)], TIMELINE_COLUMNS, dedup_token="late")
    assert "zz-late-event" in {r[ev] for r in queries.timeline(store, account, 100_000)[1]}, \
        "the query-time path sees the late event (what a per-page fallback would have shown)"
    assert queries.account_timeline(store, account, limit=10, after=end)[1] == []
    # an account with nothing indexed is answered at query time, first page and later pages alike
    store.insert("timeline", [timeline_row(late.model_copy(update={"event_id": "zz-other", "account_id": "acct-new",
                                                                    "journey_account_id": "acct-new"}))],
                 TIMELINE_COLUMNS, dedup_token="other")
    first = queries.account_timeline(store, "acct-new", limit=10)[1]
    assert [r[ev] for r in first] == ["zz-other"]
    before = queries.cursor_of(first[0][at] - timedelta(seconds=1), "")
    assert [r[ev] for r in queries.account_timeline(store, "acct-new", limit=10, after=before)[1]] == ["zz-other"]
    store.close()


def test_the_scoped_keymap_equals_the_sql_derivation(tmp_path) -> None:
    """``resolution.keymap`` (Python, the scoped refresh's) and ``_DERIVED`` (SQL, the full
    resolution's) give the same keys and merges on real chDB, aliases either way, a device's
    interval cut by its person's, a device without an account, a merge with two targets."""
    from sinks.clickhouse.resolution import _DERIVED, _KINDS, keymap

    links = [("person_account", "u1", "A", 10, 100), ("person_account", "u1", "B", 100, 200),
             ("person_account", "u2", "A", 0, 50), ("person_alias", "e@x.co", "u1", 0, 999),
             ("person_alias", "u1", "u9", 0, 999), ("person_alias", "u2", "e@x.co", 0, 999),
             ("device", "d1", "e@x.co", 50, 150), ("device", "d2", "nobody", 0, 10), ("device", "d3", "u9", 0, 60),
             ("account_merge", "B", "Z", 0, 1), ("account_merge", "B", "C", 0, 1), ("account_merge", "Q", "R", 0, 1)]
    given = {kind: (f"SELECT l.1 AS src, l.2 AS dst, fromUnixTimestamp64Milli(l.3, 'UTC') AS vf, "
                    f"fromUnixTimestamp64Milli(l.4, 'UTC') AS vt FROM (SELECT arrayJoin({{{kind}:Array(Tuple("
                    f"String, String, Int64, Int64))}}) AS l)") for kind in _KINDS}
    sql = (f"WITH dev_links AS ({given['device']}), alias_links AS ({given['person_alias']}), "
           f"members AS (SELECT src AS person, dst AS acct, vf, vt FROM ({given['person_account']})),"
           + _DERIVED.format(merges=given["account_merge"]))
    store = Store(f"chdb://{tmp_path / 'store'}")
    params = {kind: [(s, d, f, t) for k, s, d, f, t in links if k == kind] for kind in _KINDS}
    _, keys = store.query(sql + " SELECT DISTINCT kind, key, acct, toUnixTimestamp64Milli(vf), "
                          "toUnixTimestamp64Milli(vt) FROM keymap", params)
    _, merges = store.query(sql + " SELECT acct, canon FROM merges", params)
    expected = keymap(links)
    assert sorted((str(k), str(s), str(a), int(f), int(t)) for k, s, a, f, t in keys) == expected["keymap"]
    assert sorted((str(a), str(c)) for a, c in merges) == expected["merges"]
    assert len(expected["keymap"]) > 8


def test_a_timeline_batch_is_re_resolved_without_reading_its_rows_back(tmp_path) -> None:
    """The keys a stored batch's events resolve through come from the rows in hand
    (``timeline_pairs``): the same scope as reading them back from ``timeline`` — which on 10M
    events read nearly every granule of the table — and no such read is made."""
    synth = [orjson.dumps(s.obj) for s in generate(SynthConfig(events=800, seed=13))]
    pipeline = InProcessPipeline().feed_all(synth)
    store = Store(f"chdb://{tmp_path / 'store'}")
    ddl.migrate(store)
    rows = [timeline_row(e) for e in pipeline.rows]
    store.insert("timeline", rows, TIMELINE_COLUMNS, dedup_token="batch")
    store.insert("identity_links", [link_row(link) for link in pipeline.links.values()], LINK_COLUMNS,
                 dedup_token="links")
    pairs = timeline_pairs(store, rows)
    anonymous = [pair for pair in pairs if not pair[0]]
    assert len(anonymous) > 100 and set(pairs.keys) == set(anonymous)
    assert any(k.startswith("d:") for keys in pairs.keys.values() for k in keys)
    assert any(k.startswith("p:") for keys in pairs.keys.values() for k in keys)
    chunk = sorted(set(pairs))
    read_back = _scope(store, chunk)
    seen: list[str] = []
    query = store.query

    def recording(sql: str, parameters: dict | None = None):
        seen.append(sql)
        return query(sql, parameters)

    store.query = recording  # type: ignore[method-assign]
    in_hand = _scope(store, chunk, pairs.keys)
    store.query = query  # type: ignore[method-assign]
    assert in_hand == read_back
    assert seen and not any("FROM timeline PREWHERE" in sql for sql in seen)
    # one event's keys left out: that one is read back, and the scope is the same again
    partial = dict(pairs.keys)
    partial.pop(anonymous[0])
    assert _scope(store, chunk, partial) == read_back
    # and merged with pairs of other sinks (links), the keys are kept
    both = merged([pairs, [("", "not-stored")]])
    assert both.keys == pairs.keys and len(both) == len(pairs) + 1
    store.close()
