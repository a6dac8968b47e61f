"""The funnel, handoff, paths and attribution read ``account_summaries`` (migration 17: each
account's events in order with their reps, rep roles, UTM and lead sources) instead of every
touch of ``journey_events``, attribution its deals and acceptance its leads from columns
extracted on ``event_resolution``: the same answers, byte for byte, as before
(``tests/support/journey_events_reports.py``, the reports before the migration) — after an
unmerge and a merge, a late anonymous event stitched to its account retroactively, a privacy
forget, and on a store written before the migration; attribution for every model and split."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta, timezone

import pytest

from schemas.definitions import load
from sinks.clickhouse import analytics, attribution, ddl, privacy, resolution, retention
from sinks.clickhouse.client import Store
from streams import reports
from tests.integration.test_account_summaries import _store
from tests.support import journey_events_reports as before
from tests.support.overrides import first_account_merge, unmerge_then_merge

pytestmark = pytest.mark.integration
DEFS = load()
MODELS = (*attribution.MODELS, *DEFS.attribution.models)


def _digest(answer: object) -> bytes:
    return hashlib.sha256(repr(answer).encode()).digest()


def attribution_before(store: Store, model: str, split: str) -> list[dict]:
    """streams/reports.py's attribution before migration 17: every won deal's touches from
    journey_events, credited in Python by ``attribution.weights``."""
    cols, rows = before.won_journeys(store, qualified=DEFS.stage_for("qualified"),
                                     opportunity=DEFS.stage_for("opportunity"))
    journeys = [dict(zip(cols, r, strict=True)) for r in rows]
    custom = DEFS.attribution.models.get(model)
    if split == "role":
        return attribution.role_split(journeys, model, custom)
    by_channel = attribution.attribute(journeys, model, {n: ch.team for n, ch in DEFS.channels.items()}, custom)
    return attribution.team_split(by_channel) if split == "team" else by_channel


def sources_now(store: Store) -> dict[str, str]:
    """Each account's funnel source from the summaries, and the same from journey_events."""
    _, new = store.query(f"SELECT account_id, source FROM ({analytics.sources_sql(analytics.events_retention_days(store))})"
                         " WHERE source != ''", {"non_touch": analytics.non_touch_channels(store)})
    _, old = store.query(f"SELECT account_id, source FROM ({analytics.SOURCES}) WHERE source != ''")
    assert dict(new) == dict(old)
    return dict(sorted(new))


def assert_same(store: Store, models: tuple[str, ...] = ("w_shaped",)) -> dict[str, object]:
    """Every report on the summaries answers as the SQL over journey_events does; the answers."""
    sla, qualified = DEFS.sla.mql_first_touch_hours, DEFS.stage_for("qualified")
    answers: dict[str, object] = {"sources": sources_now(store)}
    for by in ("rep", "team"):
        new = analytics.handoff(store, sla, by=by, qualified=qualified)
        assert _digest(new) == _digest(before.handoff(store, sla, by=by, qualified=qualified)), by
        answers[f"handoff/{by}"] = new
    new = analytics.acceptance(store)
    # (the same SQL over the timeline's JSON, its top reasons ranked as now: topK left ties unordered)
    old = store.query(before.ACCEPTANCE_SQL.replace(
        "arrayStringConcat(arraySlice(topKIf(3)(reason, status = 'rejected' AND reason != ''), 1, 3), '; ')",
        analytics.TOP_REASONS))
    assert _digest(new) == _digest(old), (new, old)
    answers["acceptance"] = new
    new = analytics.paths(store, won=DEFS.stage_for("won"))
    assert _digest(new) == _digest(before.paths(store, won=DEFS.stage_for("won"))), new
    answers["paths"] = new
    for model in models:
        for split in attribution.SPLITS:
            new = reports.run("attribution", store, DEFS, {"model": model, "split": split})
            old = attribution_before(store, model, split)
            assert new == old, (model, split)
            answers[f"attribution/{model}/{split}"] = new
    return answers


@pytest.fixture()
def loaded(tmp_path):
    store, pipeline = _store(tmp_path, events=4000, seed=6)
    yield store, pipeline
    store.close()


def test_every_attribution_model_and_split_equals_the_python_weights(loaded) -> None:
    store, _ = loaded
    answers = assert_same(store, MODELS)
    assert any(answers[f"attribution/{m}/channel"] for m in MODELS)
    (deals,), = store.query("SELECT countIf(deal_action = 'closed_won') FROM event_resolution FINAL")[1]
    assert deals >= 5
    assert len(answers["sources"]) > 20 and any(answers[k] for k in answers if k.startswith("handoff"))


def test_the_reports_follow_an_unmerge_and_a_merge(loaded) -> None:
    store, pipeline = loaded
    first = assert_same(store)
    merge = first_account_merge(pipeline)
    answers = []
    for action in unmerge_then_merge(store, merge):
        answers.append(assert_same(store))
        (rows,), = store.query("SELECT length(utm_sources) FROM account_summaries FINAL WHERE account_id = {a:String}",
                               {"a": merge.src})[1] or [(0,)]
        assert (rows > 0) == (action == "unmerge"), action  # the domain account's summary came and went
    assert answers[0]["sources"] != first["sources"]  # the domain account counts on its own
    assert _digest(answers[1]) == _digest(first)  # (repr: a median of no touch is nan, never equal to itself)


def test_a_late_anonymous_visit_becomes_the_first_touch_and_source(loaded) -> None:
    """A device's anonymous visit stored after its person was identified — with a UTM source and
    earlier than every event of the account — is stitched to the account when it arrives: its
    summary starts with it, and the funnel's source (without a CRM lead source) is its UTM source."""
    store, _ = loaded
    assert_same(store)
    (account, device, first), = store.query(
        """SELECT e.account_id, e.anonymous_id, m.first FROM account_events AS e FINAL
           INNER JOIN (SELECT account_id, min(event_time) AS first FROM account_events FINAL GROUP BY account_id) AS m
             ON m.account_id = e.account_id
           WHERE e.anonymous_id != '' AND e.user_id = '' AND e.email = '' AND e.contact_id = ''
           ORDER BY e.account_id, e.event_id LIMIT 1""")[1]
    _, rows = store.query("SELECT account_id, event_id FROM timeline WHERE anonymous_id = {d:String} "
                          "AND account_id = '' AND user_id = '' AND email = '' AND contact_id = '' LIMIT 1", {"d": device})
    (direct, original), = rows
    late = original + "-late"
    store.command(
        "INSERT INTO timeline SELECT * REPLACE ({e:String} AS event_id, {t:DateTime64(3, 'UTC')} AS event_time, "
        "'{\"utm\": {\"source\": \"late-newsletter\"}}' AS properties) "
        "FROM (SELECT * FROM timeline FINAL WHERE account_id = {a:String} AND event_id = {o:String})",
        {"e": late, "t": first - timedelta(days=1), "a": direct, "o": original})
    resolution.refresh(store, [(direct, late)])
    (utm,), = store.query("SELECT utm_sources[1] FROM account_summaries FINAL WHERE account_id = {a:String}",
                          {"a": account})[1]
    assert utm == "late-newsletter"
    (crm,), = store.query("SELECT arrayLast(x -> x != '', lead_sources) FROM account_summaries FINAL "
                          "WHERE account_id = {a:String}", {"a": account})[1]
    assert assert_same(store)["sources"][account] == (crm or "late-newsletter")


def test_a_forgotten_persons_events_leave_the_reports(loaded) -> None:
    store, _ = loaded
    (email,), = store.query("SELECT email FROM account_events FINAL WHERE email != '' AND rep_id = '' "
                            "GROUP BY email ORDER BY count() DESC, email LIMIT 1")[1]
    privacy.forget(store, privacy.find(store, "email", email), lambda _: False, [])
    assert_same(store)


def test_migration_17_fills_a_store_written_before_it(loaded, caplog) -> None:
    store, _ = loaded
    answers = assert_same(store)
    # what a store had before migration 17: no sources on account_events, summaries without the new arrays
    store.command("ALTER TABLE account_events UPDATE utm_source = '', lead_source = '' WHERE 1 "
                  "SETTINGS mutations_sync = 2")
    store.command("TRUNCATE TABLE account_summaries")
    store.command(resolution.summaries_sql(scoped=False, version=16))
    store.command("DELETE FROM schema_migrations WHERE version = 17")
    (lost,), = store.query("SELECT countIf(notEmpty(arrayFilter(x -> x != '', utm_sources))) "
                           "FROM account_summaries FINAL")[1]
    assert lost == 0
    with caplog.at_level(logging.INFO, logger="sinks.clickhouse.ddl"):
        assert [m.version for m in ddl.migrate(store)] == [17]
    assert "schema migration 17: backfill step 2 of 2 done" in caplog.text  # a long upgrade says where it is
    assert _digest(assert_same(store)) == _digest(answers)


def test_events_past_the_retention_ttl_leave_the_reports(loaded) -> None:
    """The summaries keep expired events until their account is written again: the reports drop
    them themselves, and answer as the SQL over the tables once ClickHouse's merges removed them."""
    store, _ = loaded
    first = assert_same(store)
    (oldest, newest), = store.query("SELECT min(event_time), max(event_time) FROM account_events")[1]
    days = (datetime.now(timezone.utc) - (oldest + (newest - oldest) / 2).replace(tzinfo=timezone.utc)).days
    retention.apply(store, days, 0)
    for table, _ in retention.EVENT_TABLES:
        store.command(f"OPTIMIZE TABLE {table} FINAL")  # what a merge does with expired rows
    (stale,), = store.query("SELECT countIf(arrayExists(t -> toDateTime(t) + toIntervalDay({d:UInt32}) < now(), times)) "
                            "FROM account_summaries FINAL", {"d": days})[1]
    assert stale > 0  # the summaries still hold expired events
    assert _digest(assert_same(store)) != _digest(first)
