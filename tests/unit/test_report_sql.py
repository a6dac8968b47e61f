"""The reports' SQL pieces: one journey_events query (the view and the narrowed reads)."""

from __future__ import annotations

from sinks.clickhouse import analytics, ddl


def test_the_view_of_migration_12_is_journey_events_sql() -> None:
    [view] = [s for s in next(m for m in ddl.MIGRATIONS if m.version == 12).statements if "VIEW" in s]
    assert view.strip().endswith(ddl.journey_events_sql().strip())
    assert "r.utm_source AS utm_source" in view and "r.lead_source AS lead_source" in view
    assert "FROM event_resolution FINAL)" in view


def test_a_prewhere_narrows_the_resolved_rows_before_final_and_nothing_else() -> None:
    narrowed = ddl.journey_events_sql("side = 'human'")
    assert "FROM event_resolution FINAL PREWHERE side = 'human') AS r" in narrowed
    assert narrowed.replace(" PREWHERE side = 'human'", "") == ddl.journey_events_sql()


def test_touches_read_the_view_unless_narrowed() -> None:
    assert "FROM journey_events" in analytics.touches("account_id = 'a'")
    narrowed = analytics.touches("account_id = 'a'", prewhere="side = 'human'")
    assert "FROM journey_events" not in narrowed and "PREWHERE side = 'human'" in narrowed
    assert narrowed.rstrip().endswith("AND (account_id = 'a')")
