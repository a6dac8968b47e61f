"""Migration 12: the UTM and lead sources the reports read are extracted from ``properties`` when
an event is resolved (materialized columns of ``event_resolution``), not parsed at every read.

Checked on real chDB: a store resolved before the migration gets them for every row (the
migration materializes them), equal to what the reports parsed from the JSON before; a
re-resolution (what the store process writes after each batch) computes the same; and the
account sources the funnel groups by are the ones the JSON-parsing query gave.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench.simulate import InProcessPipeline
from bench.synth import SynthConfig, generate
from schemas.definitions import load
from sinks.clickhouse import analytics, ddl, resolution
from sinks.clickhouse.client import Store
from streams import reports
from tests.integration.test_timeline_indexes import migrate_until, write

pytestmark = pytest.mark.integration
DEFS = load()

# What the funnel read before migration 12: each account's source parsed from the JSON properties.
SOURCES_FROM_JSON = """
  SELECT account_id,
         if(argMaxIf(JSONExtractString(properties, 'leadSource'), (event_time, event_id),
                     event_type = 'lead_status' AND JSONExtractString(properties, 'leadSource') != '') AS ls != '',
            ls,
            argMinIf(if(JSONExtractString(properties, 'utm', 'source') != '', JSONExtractString(properties, 'utm', 'source'),
                        channel), (event_time, event_id), is_touch)) AS source
  FROM journey_events GROUP BY account_id ORDER BY account_id
"""
EXTRACTED = """
  SELECT countIf(utm_source != JSONExtractString(properties, 'utm', 'source')
                 OR lead_source != if(event_type = 'lead_status', JSONExtractString(properties, 'leadSource'), '')),
         countIf(utm_source != ''), countIf(lead_source != ''), count()
  FROM event_resolution
"""
AGGREGATE = {"funnel": {"by": "source"}, "acceptance": {}, "handoff": {"by": "rep"}, "time-share": {}, "paths": {},
             "stage-durations": {}, "attribution": {"model": "w_shaped"}}


def test_migration_12_extracts_the_sources_of_a_store_resolved_before_it(tmp_path: Path) -> None:
    pipeline = InProcessPipeline().feed_all(orjson.dumps(s.obj) for s in generate(SynthConfig(events=2500, seed=5)))
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        migrate_until(store, 11)
        write(store, pipeline, "v11")
        # resolved as a store at version 11 did (refresh_all also writes account_events' tombstones: migration 14)
        store.command(resolution._INSERT + resolution.resolve_sql(scoped=False))
        store.insert("channel_definitions", ddl.channel_rows(DEFS.channels, DEFS.version, 1), ddl.CHANNEL_COLUMNS)
        before = store.query(SOURCES_FROM_JSON)[1]
        assert len(before) > 20

        assert [m.version for m in ddl.migrate(store)] == [m.version for m in ddl.MIGRATIONS if m.version >= 12]
        (wrong, utm, leads, rows), = store.query(EXTRACTED)[1]
        assert wrong == 0 and rows > 2000
        assert utm > 10 and leads > 10  # the synthetic journeys have both
        assert store.query(SOURCES_FROM_JSON)[1] == before
        assert store.query(f"SELECT * FROM ({analytics.SOURCES}) ORDER BY account_id")[1] == before
        answers = {name: reports.run(name, store, DEFS, p) for name, p in AGGREGATE.items()}
        assert answers["attribution"] and answers["time-share"] and answers["acceptance"]  # no stage changes here

        # resolved again (newer rows, columns computed on insert): the same everywhere
        resolution.refresh_all(store)
        (wrong, utm_again, leads_again, rows_again), = store.query(EXTRACTED)[1]
        assert (wrong, utm_again, leads_again, rows_again) == (0, 2 * utm, 2 * leads, 2 * rows)
        assert {name: reports.run(name, store, DEFS, p) for name, p in AGGREGATE.items()} == answers
        assert ddl.migrate(store) == []
    finally:
        store.close()
