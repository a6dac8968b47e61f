"""The reports' SQL pieces: one journey_events query (the view and the narrowed reads)."""

from __future__ import annotations

from sinks.clickhouse import analytics, ddl


def test_the_latest_journey_events_view_is_journey_events_sql() -> None:
    views = [s for m in ddl.MIGRATIONS for s in m.statements if "VIEW journey_events AS" in s]
    [m15] = [s for s in next(m for m in ddl.MIGRATIONS if m.version == 15).statements]
    assert views[-1] == m15 and m15.strip().endswith(ddl.journey_events_sql().strip())
    assert "r.utm_source AS utm_source" in m15 and "r.lead_source AS lead_source" in m15


def test_final_stays_within_each_event_month_of_the_resolution() -> None:
    # versions of an event share its event_time, hence its partition (migration 13): nothing to
    # merge across partitions, and a settled partition is read without merging
    for sql in (ddl.journey_events_sql(), ddl.journey_events_sql("side = 'human'")):
        inner = sql.split("FROM event_resolution FINAL", 1)[1].split(") AS r", 1)[0]
        assert inner.endswith(" SETTINGS do_not_merge_across_partitions_select_final = 1")
    assert "do_not_merge_across_partitions" not in ddl.journey_events_sql().split(") AS r", 1)[1]


def test_a_prewhere_narrows_the_resolved_rows_before_final_and_nothing_else() -> None:
    narrowed = ddl.journey_events_sql("side = 'human'")
    assert ("FROM event_resolution FINAL PREWHERE side = 'human' SETTINGS do_not_merge_across_partitions_select_final"
            " = 1) AS r") in narrowed
    assert narrowed.replace(" PREWHERE side = 'human'", "") == ddl.journey_events_sql()


def test_touches_read_the_view_unless_narrowed() -> None:
    assert "FROM journey_events" in analytics.touches("account_id = 'a'")
    narrowed = analytics.touches("account_id = 'a'", prewhere="side = 'human'")
    assert "FROM journey_events" not in narrowed and "PREWHERE side = 'human'" in narrowed
    assert narrowed.rstrip().endswith("AND (account_id = 'a')")
