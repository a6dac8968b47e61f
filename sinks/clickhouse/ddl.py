"""Versioned, idempotent schema migrations — the same statements on chDB and on a server.

Each migration is a list of statements that are safe to re-run (``IF NOT EXISTS``), then an
optional backfill of new tables from existing data (safe to re-run too: see
:attr:`Migration.backfill`). ``schema_migrations`` records what was applied. Idempotency of
rows: tables are ReplacingMergeTree keyed by event id; analyst views read ``FINAL`` so a
replayed event is never visible twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from sinks.clickhouse.resolution import RESOLUTION_COLUMNS, resolve_sql, summaries_sql


class _Runs(Protocol):
    def command(self, sql: str, parameters: dict | None = None) -> object: ...

    def query(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]: ...


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    backfill: tuple[str, ...] = ()
    """``INSERT … SELECT`` statements run once after ``statements``, to fill new tables from existing
    data (on a cluster: through the Distributed tables). Safe to re-run: they fill
    ReplacingMergeTree tables keyed by every column, where a second run only adds duplicates."""
    single_node: bool = False
    """A change of a single node's table layout that a cluster does not take (no cluster variant:
    skipped there, see :mod:`sinks.clickhouse.cluster`)."""
    scratch: tuple[str, ...] = ()
    """Tables the migration creates and drops again (not objects to grant on)."""


log = logging.getLogger(__name__)

# Non-replicated MergeTree (chDB) dedups retried insert blocks only with this window set.
_DEDUP = "SETTINGS non_replicated_deduplication_window = 1000"

# timeline_by_key's rows for timeline rows naming no account: the ids queries.timeline looks such
# an event up by (person ids; the device id only when it names no person).
_BY_KEY = """SELECT key, event_id FROM timeline
            ARRAY JOIN arrayDistinct(arrayFilter(x -> x != '', if(user_id = '' AND email = '' AND contact_id = '',
                                                                  [anonymous_id], [user_id, email, contact_id]))) AS key
            WHERE account_id = ''"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "timeline and dead letters",
        (
            f"""
            CREATE TABLE IF NOT EXISTS timeline (
                event_id String,
                account_id String,
                event_time DateTime64(3, 'UTC'),
                received_at DateTime64(3, 'UTC'),
                event_type LowCardinality(String),
                name String,
                channel LowCardinality(String),
                side LowCardinality(String),
                anonymous_id String,
                user_id String,
                email String,
                contact_id String,
                group_id String,
                domain String,
                rep_id String,
                rep_role LowCardinality(String),
                source LowCardinality(String),
                properties String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (account_id, event_id)
            {_DEDUP}
            """,
            f"""
            CREATE TABLE IF NOT EXISTS dead_letters (
                dlq_id String,
                rejected_at DateTime64(3, 'UTC'),
                source_kind LowCardinality(String),
                source String,
                stage LowCardinality(String),
                reasons Array(String),
                payload String,
                replayed UInt8 DEFAULT 0
            ) ENGINE = ReplacingMergeTree
            ORDER BY dlq_id
            {_DEDUP}
            """,
            # Analysts read this: one row per event id, whatever was replayed.
            """
            CREATE VIEW IF NOT EXISTS timeline_v AS
            SELECT * EXCEPT version FROM timeline FINAL
            ORDER BY event_time, event_id
            LIMIT 1 BY event_id
            """,
        ),
    ),
    Migration(
        2,
        "identity links, overrides, resolved ids and lookup indexes on the timeline",
        (
            "ALTER TABLE timeline ADD COLUMN IF NOT EXISTS person_id String",
            "ALTER TABLE timeline ADD COLUMN IF NOT EXISTS journey_account_id String",
            "ALTER TABLE timeline ADD INDEX IF NOT EXISTS idx_anonymous_id anonymous_id TYPE bloom_filter GRANULARITY 4",
            "ALTER TABLE timeline ADD INDEX IF NOT EXISTS idx_user_id user_id TYPE bloom_filter GRANULARITY 4",
            "ALTER TABLE timeline ADD INDEX IF NOT EXISTS idx_email email TYPE bloom_filter GRANULARITY 4",
            "ALTER TABLE timeline ADD INDEX IF NOT EXISTS idx_contact_id contact_id TYPE bloom_filter GRANULARITY 4",
            f"""
            CREATE TABLE IF NOT EXISTS identity_links (
                kind LowCardinality(String),
                src String,
                dsts Array(String),
                valid_froms Array(DateTime64(3, 'UTC')),
                valid_tos Array(DateTime64(3, 'UTC')),
                rules Array(String),
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (kind, src)
            {_DEDUP}
            """,
            f"""
            CREATE TABLE IF NOT EXISTS identity_overrides (
                kind LowCardinality(String),
                src String,
                dst String,
                action LowCardinality(String),
                reason String,
                changed_by String,
                changed_at DateTime64(3, 'UTC'),
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (kind, src, dst)
            {_DEDUP}
            """,
        ),
    ),
    Migration(
        3,
        "journey state: stage changes and scores over time (account snapshot view)",
        (
            f"""
            CREATE TABLE IF NOT EXISTS stage_changes (
                change_id String,
                account_id String,
                from_stage LowCardinality(String),
                to_stage LowCardinality(String),
                at DateTime64(3, 'UTC'),
                rule String,
                definitions_version LowCardinality(String),
                event_id String,
                contact_id String,
                source LowCardinality(String),
                persona LowCardinality(String),
                valid UInt8,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (account_id, change_id)
            {_DEDUP}
            """,
            # Analysts read this: stage changes still valid after late events were replayed.
            """
            CREATE VIEW IF NOT EXISTS stage_changes_v AS
            SELECT * EXCEPT (valid, version) FROM stage_changes FINAL WHERE valid = 1
            """,
            f"""
            CREATE TABLE IF NOT EXISTS account_scores (
                account_id String,
                event_id String,
                at DateTime64(3, 'UTC'),
                stage LowCardinality(String),
                engagement Float64,
                fit Float64,
                total Float64,
                owner String,
                source LowCardinality(String),
                committee String,
                definitions_version LowCardinality(String)
            ) ENGINE = ReplacingMergeTree
            ORDER BY (account_id, event_id)
            {_DEDUP}
            """,
            """
            CREATE VIEW IF NOT EXISTS account_snapshot AS
            SELECT account_id,
                   argMax(stage, at) AS stage, argMax(total, at) AS score,
                   argMax(engagement, at) AS engagement, argMax(fit, at) AS fit,
                   argMax(owner, at) AS owner, argMax(source, at) AS source,
                   argMax(committee, at) AS committee, max(at) AS last_event_at,
                   argMax(definitions_version, at) AS definitions_version
            FROM account_scores FINAL
            GROUP BY account_id
            """,
        ),
    ),
    Migration(
        4,
        "alerts",
        (
            f"""
            CREATE TABLE IF NOT EXISTS alerts (
                alert_id String,
                rule LowCardinality(String),
                account_id String,
                at DateTime64(3, 'UTC'),
                owner String,
                summary String,
                definitions_version LowCardinality(String),
                path String,
                link String
            ) ENGINE = ReplacingMergeTree
            ORDER BY alert_id
            {_DEDUP}
            """,
        ),
    ),
    Migration(
        5,
        "timeline_v: the first receipt of an event id wins even across accounts",
        (
            """
            CREATE OR REPLACE VIEW timeline_v AS
            SELECT * FROM (
              SELECT * EXCEPT version FROM timeline FINAL ORDER BY event_id, version DESC LIMIT 1 BY event_id
            ) ORDER BY event_time, event_id
            """,
        ),
    ),
    Migration(
        6,
        "lookup indexes for one account's timeline: links by destination, unattributed events by identifier",
        (
            # Candidate indexes only (a link row's older versions leave stale entries, duplicates are
            # harmless): the timeline query looks candidates up here, then reads the current rows by
            # primary key and filters them exactly as before. Each is filled by a materialized view
            # on every insert (created before the backfill, so nothing inserted meanwhile is missed).
            """
            CREATE TABLE IF NOT EXISTS identity_links_by_dst (
                kind LowCardinality(String),
                dst String,
                src String
            ) ENGINE = ReplacingMergeTree
            ORDER BY (kind, dst, src)
            """,
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS identity_links_by_dst_mv TO identity_links_by_dst AS
            SELECT kind, dst, src FROM identity_links ARRAY JOIN dsts AS dst
            """,
            # Events naming no account, by the identifiers the timeline finds them by: their person
            # ids (user id, email, CRM contact id), or their device id when they name no person.
            """
            CREATE TABLE IF NOT EXISTS timeline_by_key (
                key String,
                event_id String
            ) ENGINE = ReplacingMergeTree
            ORDER BY (key, event_id)
            """,
            f"""
            CREATE MATERIALIZED VIEW IF NOT EXISTS timeline_by_key_mv TO timeline_by_key AS
            {_BY_KEY}
            """,
            # The alerts feed of one account (alert ids are hashes: its alerts are spread over the table).
            "ALTER TABLE alerts ADD INDEX IF NOT EXISTS idx_account_id account_id TYPE bloom_filter GRANULARITY 1",
            "ALTER TABLE alerts MATERIALIZE INDEX idx_account_id SETTINGS mutations_sync = 2",
        ),
        backfill=(
            """
            INSERT INTO identity_links_by_dst (kind, dst, src)
            SELECT kind, dst, src FROM identity_links ARRAY JOIN dsts AS dst
            """,
            f"""
            INSERT INTO timeline_by_key (key, event_id)
            {_BY_KEY}
            """,
        ),
    ),
)


# -- one resolution for every read (migration 7) ------------------------------------------------
# The bulk form of the timeline's query-time resolution (sinks/clickhouse/queries.py resolves one
# account with keyed look-ups; tests/integration/test_resolution.py holds both to the same answer):
# an event belongs to the account it names (or the one that account is merged into), else to the
# account its person belonged to at the event's time, else — anonymous — through the device's
# person at that time to that person's account then. Manual unmerges remove links first.
_LINKS_V = """
CREATE OR REPLACE VIEW identity_links_v AS
SELECT kind, src, dst, vf AS valid_from, vt AS valid_to
FROM (SELECT kind, src, dsts, valid_froms, valid_tos FROM identity_links FINAL)
ARRAY JOIN dsts AS dst, valid_froms AS vf, valid_tos AS vt
WHERE (kind, src, dst) NOT IN (SELECT kind, src, dst FROM identity_overrides FINAL WHERE action = 'unmerge')
"""

_MERGES_V = """
CREATE OR REPLACE VIEW account_merges_v AS
SELECT src AS account_id, min(dst) AS canonical_id FROM identity_links_v WHERE kind = 'account_merge' GROUP BY src
"""

# Every event with the accounts it resolves to now (one row per event and account).
_EVENT_ACCOUNTS_V = f"""
CREATE OR REPLACE VIEW event_accounts AS
SELECT event_id, arrayJoin(accounts) AS account_id FROM ({resolve_sql(scoped=False)})
"""

# The same answer kept as a table (the reports read it): the store process re-resolves the events
# of every timeline batch it writes and every event a batch of link changes can move
# (sinks/clickhouse/resolution.py); one row per event, the newest resolution wins.
_EVENT_RESOLUTION = f"""
CREATE TABLE IF NOT EXISTS event_resolution (
    event_id String,
    accounts Array(String),
    event_time DateTime64(3, 'UTC'),
    event_type LowCardinality(String),
    name String,
    channel LowCardinality(String),
    side LowCardinality(String),
    rep_id String,
    rep_role LowCardinality(String),
    person_id String,
    contact_id String,
    email String,
    anonymous_id String,
    user_id String,
    direct_account_id String,
    stream_account_id String,
    properties String,
    ingest_source LowCardinality(String),
    resolved_at DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(resolved_at)
ORDER BY event_id
{_DEDUP}
"""

# Stage changes on the canonical account: a domain account merged into a CRM account counts once.
_STAGE_CHANGES_RESOLVED_V = """
CREATE OR REPLACE VIEW stage_changes_resolved AS
SELECT if(m.canonical_id != '', m.canonical_id, sc.account_id) AS account_id, sc.account_id AS journey_account_id,
       sc.change_id AS change_id, sc.from_stage AS from_stage, sc.to_stage AS to_stage, sc.at AS at,
       sc.rule AS rule, sc.definitions_version AS definitions_version, sc.event_id AS event_id,
       sc.contact_id AS contact_id, sc.source AS source, sc.persona AS persona
FROM stage_changes_v AS sc LEFT JOIN account_merges_v AS m ON sc.account_id = m.account_id
SETTINGS join_use_nulls = 0
"""

# The analyst surface: one row per (event, resolved account), with the channel's team from the
# definitions (channel_definitions, written by the store process) and the stage at the time.
_JOURNEY_EVENTS_V = """
CREATE OR REPLACE VIEW journey_events AS
SELECT account_id, r.event_id AS event_id, r.event_time AS event_time,
       r.event_type AS event_type, r.name AS name, r.channel AS channel, r.side AS side,
       if(c.team != '', c.team, if(r.side = 'human', 'sales', if(r.side = 'digital', 'marketing', 'none'))) AS team,
       if(c.channel != '', c.touch = 1, r.channel NOT IN ('identity', 'crm')) AS is_touch,
       r.rep_id AS rep_id, r.rep_role AS rep_role, r.person_id AS person_id, r.contact_id AS contact_id,
       r.email AS email, r.anonymous_id AS anonymous_id, r.user_id AS user_id,
       r.direct_account_id AS direct_account_id, r.stream_account_id AS stream_account_id,
       JSONExtractString(r.properties, 'utm', 'source') AS utm_source,
       JSONExtractString(r.properties, 'utm', 'medium') AS utm_medium,
       JSONExtractString(r.properties, 'utm', 'name') AS utm_campaign,
       r.properties AS properties, r.ingest_source AS ingest_source
FROM (SELECT * FROM event_resolution FINAL) AS r
ARRAY JOIN r.accounts AS account_id
LEFT JOIN (SELECT * FROM channel_definitions FINAL) AS c ON c.channel = r.channel
SETTINGS join_use_nulls = 0
"""

MIGRATIONS = MIGRATIONS + (
    Migration(
        7,
        "one resolution for every read: event_accounts, journey_events, stage changes on canonical accounts",
        (
            f"""
            CREATE TABLE IF NOT EXISTS channel_definitions (
                channel String,
                side LowCardinality(String),
                team LowCardinality(String),
                touch UInt8,
                definitions_version String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY channel
            {_DEDUP}
            """,
            _EVENT_RESOLUTION, _LINKS_V, _MERGES_V, _EVENT_ACCOUNTS_V, _STAGE_CHANGES_RESOLVED_V, _JOURNEY_EVENTS_V,
        ),
        backfill=(f"INSERT INTO event_resolution ({', '.join(RESOLUTION_COLUMNS)}) {resolve_sql(scoped=False)}",),
    ),
)

MIGRATIONS = MIGRATIONS + (
    Migration(
        8,
        "contact scores: each contact's own engagement on its account",
        (
            f"""
            CREATE TABLE IF NOT EXISTS contact_scores (
                account_id String,
                contact_id String,
                persona LowCardinality(String),
                title String,
                score Float64,
                scored_at DateTime64(3, 'UTC'),
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (account_id, contact_id)
            {_DEDUP}
            """,
        ),
    ),
)

MIGRATIONS = MIGRATIONS + (
    Migration(
        9,
        "alert_deliveries: how each alert's delivery to each webhook ended",
        (
            # One row per (alert, receiver); a redelivered alert's newer row wins. ``receiver`` is
            # the redacted URL (sinks/webhook.py redact), never the URL itself.
            f"""
            CREATE TABLE IF NOT EXISTS alert_deliveries (
                alert_id String,
                receiver String,
                status LowCardinality(String),
                attempts UInt16,
                reason String,
                at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(at)
            ORDER BY (alert_id, receiver)
            {_DEDUP}
            """,
        ),
    ),
)


MIGRATIONS = MIGRATIONS + (
    Migration(
        10,
        "privacy requests: the audit of `journeys privacy forget` (a hash of the identifier, never the identifier)",
        (
            """
            CREATE TABLE IF NOT EXISTS privacy_requests (
                request_id String,
                kind LowCardinality(String),
                identifier_hash String,
                requested_by String,
                requested_at DateTime64(3, 'UTC'),
                rows_deleted Map(String, UInt64),
                rows_pseudonymised Map(String, UInt64),
                completed_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(completed_at)
            ORDER BY request_id
            """,
        ),
    ),
)

MIGRATIONS = MIGRATIONS + (
    Migration(
        11,
        "definitions comparisons: what `journeys definitions backfill` found, for the UI",
        (
            f"""
            CREATE TABLE IF NOT EXISTS definitions_comparisons (
                run_id String,
                computed_at DateTime64(3, 'UTC'),
                version String,
                recorded_version String,
                period_start DateTime64(3, 'UTC'),
                period_end DateTime64(3, 'UTC'),
                stage String,
                rank UInt16,
                recorded_accounts UInt64,
                accounts UInt64
            ) ENGINE = ReplacingMergeTree
            ORDER BY (run_id, stage)
            {_DEDUP}
            """,
        ),
    ),
)

# Migration 12: what the reports read from ``properties`` on every event, extracted once when a
# resolution is written (MATERIALIZED: computed on insert, not in ``SELECT *``), so a report
# reads a narrow column instead of parsing each event's JSON. journey_events reads them.
_EXTRACTED = (
    ("utm_source", "JSONExtractString(properties, 'utm', 'source')"),
    ("lead_source", "if(event_type = 'lead_status', JSONExtractString(properties, 'leadSource'), '')"),
)



# An event's versions share its event_time, so once event_resolution is partitioned by month
# (migration 13) they share a partition: FINAL need not merge across partitions, and a settled
# partition (one part) is read without merging at all (~0.9 s of CPU less per read of the 10M-event
# bench store, docs/benchmarks.md). Unpartitioned (before 13, on a cluster): one partition, no change.
FINAL_BY_PARTITION = " SETTINGS do_not_merge_across_partitions_select_final = 1"


def journey_events_sql(prewhere: str = "") -> str:
    """The ``journey_events`` view's query (migration 12 creates the view from it). A report that
    needs only some events renders it with ``prewhere``: a condition on columns of
    ``event_resolution`` that are the same in every version of an event's resolution (its type,
    side, channel — never ``accounts``), so ``FINAL`` merges only those rows."""
    narrow = f" PREWHERE {prewhere}" if prewhere else ""
    return _JOURNEY_EVENTS_V.split(" AS\n", 1)[1].replace(
        "JSONExtractString(r.properties, 'utm', 'source') AS utm_source", "r.utm_source AS utm_source",
    ).replace(
        "r.properties AS properties,", "r.lead_source AS lead_source, r.properties AS properties,",
    ).replace(
        "FROM (SELECT * FROM event_resolution FINAL) AS r",
        f"FROM (SELECT *, {', '.join(name for name, _ in _EXTRACTED)} FROM event_resolution FINAL{narrow}"
        f"{FINAL_BY_PARTITION}) AS r",
    )


_JOURNEY_EVENTS_V12 = "\nCREATE OR REPLACE VIEW journey_events AS\n" + journey_events_sql()

MIGRATIONS = MIGRATIONS + (
    Migration(
        12,
        "event_resolution: UTM and lead source extracted from properties once, for the reports",
        tuple(f"ALTER TABLE event_resolution ADD COLUMN IF NOT EXISTS {name} String MATERIALIZED {expr}"
              for name, expr in _EXTRACTED)
        # the rows resolved before: computed now (a mutation, waited for)
        + tuple(f"ALTER TABLE event_resolution MATERIALIZE COLUMN {name} SETTINGS mutations_sync = 2"
                for name, _ in _EXTRACTED)
        + (_JOURNEY_EVENTS_V12,),
    ),
)

COMPARISON_COLUMNS = ("run_id", "computed_at", "version", "recorded_version", "period_start", "period_end", "stage",
                      "rank", "recorded_accounts", "accounts")

# Migration 13: event_resolution partitioned by event month. Every report reads it with FINAL
# (the newest resolution of each event wins), and with event ids random every part overlapped the
# whole key range, so FINAL merged all 2 versions of all 10M events on every read: ~3 s before any
# report's own work (docs/benchmarks.md). An event's time never changes, so its versions stay in
# one partition; the partitions no insert touches any more settle into one part each (forced after
# an hour), which FINAL reads without merging. The copy keeps every version; EXCHANGE swaps the
# names atomically, and a re-run after a crash starts again from the table in place.
_RESOLUTION_PARTITIONED = (
    "DROP TABLE IF EXISTS event_resolution_v13",
    "CREATE TABLE event_resolution_v13 AS event_resolution\n"
    "ENGINE = ReplacingMergeTree(resolved_at) PARTITION BY toYYYYMM(event_time) ORDER BY event_id\n"
    "SETTINGS non_replicated_deduplication_window = 1000, min_age_to_force_merge_seconds = 3600, "
    "min_age_to_force_merge_on_partition_only = 1",
    "INSERT INTO event_resolution_v13 SELECT * FROM event_resolution",
    "EXCHANGE TABLES event_resolution AND event_resolution_v13",
    "DROP TABLE event_resolution_v13",
)

MIGRATIONS = MIGRATIONS + (
    Migration(13, "event_resolution partitioned by event month: FINAL reads settled months without merging",
              _RESOLUTION_PARTITIONED, single_node=True, scratch=("event_resolution_v13",)),
)

# Migration 14: one account's timeline read by account. ``event_resolution`` is ordered by event
# id, so the events of one account are scattered through it; the query-time timeline looks them up
# by key (queries.timeline) at ~0.2 s per account on 10M events. ``account_events`` holds one row
# per (resolved account, event), ordered by account, so a page is one range read. Materialized
# views fill it (and ``resolution_history``: each event's account sets) on every insert into
# ``event_resolution``; when a re-resolution moves an event away from an account, the store writes
# a tombstone (``deleted = 1``, newer than the row it hides) for every account the event's history
# has and its current resolution has not (resolution.TOMBSTONES_SQL) — from the history, so a
# store killed between the two writes writes them on its retry. ``deleted`` rows vanish under FINAL.
ACCOUNT_EVENT_COLUMNS = ("account_id", "event_id", "event_time", "event_type", "name", "channel", "side", "rep_id",
                         "rep_role", "person_id", "contact_id", "email", "anonymous_id", "user_id",
                         "direct_account_id", "ingest_source", "resolved_at")
_ACCOUNT_EVENT_SELECT = (f"SELECT {', '.join(ACCOUNT_EVENT_COLUMNS)}, 0 AS deleted "
                         "FROM event_resolution ARRAY JOIN accounts AS account_id")
_HISTORY_SELECT = "SELECT event_id, accounts, event_time, resolved_at FROM event_resolution"
# account_events' columns have event_resolution's types (its own ``account_id``: one of ``accounts``)
_RESOLUTION_TYPES = dict(line.strip().rstrip(",").split(" ", 1) for line in _EVENT_RESOLUTION.splitlines()
                         if line.startswith("    ") and not line.startswith("    )"))
_ACCOUNT_EVENT_DEFINITIONS = ["account_id String"] + [f"{c} {_RESOLUTION_TYPES[c]}" for c in ACCOUNT_EVENT_COLUMNS[1:]]

MIGRATIONS = MIGRATIONS + (
    Migration(
        14,
        "account_events: each account's resolved events by account (the timeline's read path)",
        (
            "\n            CREATE TABLE IF NOT EXISTS account_events (\n"
            + "".join(f"                {column},\n" for column in _ACCOUNT_EVENT_DEFINITIONS)
            + "                deleted UInt8 DEFAULT 0\n"
            "            ) ENGINE = ReplacingMergeTree(resolved_at, deleted)\n"
            "            ORDER BY (account_id, event_id)\n"
            "            SETTINGS index_granularity = 1024\n            ",
            """
            CREATE TABLE IF NOT EXISTS resolution_history (
                event_id String,
                accounts Array(String),
                event_time DateTime64(3, 'UTC'),
                resolved_at DateTime64(6, 'UTC')
            ) ENGINE = ReplacingMergeTree(resolved_at)
            ORDER BY (event_id, accounts)
            SETTINGS index_granularity = 1024
            """,
            f"""
            CREATE MATERIALIZED VIEW IF NOT EXISTS account_events_mv TO account_events AS
            {_ACCOUNT_EVENT_SELECT}
            """,
            f"""
            CREATE MATERIALIZED VIEW IF NOT EXISTS resolution_history_mv TO resolution_history AS
            {_HISTORY_SELECT}
            """,
        ),
        backfill=(
            f"INSERT INTO account_events ({', '.join(ACCOUNT_EVENT_COLUMNS)}, deleted) "
            + _ACCOUNT_EVENT_SELECT.replace("FROM event_resolution", "FROM event_resolution FINAL"),
            "INSERT INTO resolution_history (event_id, accounts, event_time, resolved_at) "
            + _HISTORY_SELECT + " FINAL",
        ),
    ),
)

# Migration 15: the journey_events view re-created from journey_events_sql(), whose FINAL now
# stays within each month partition of event_resolution (FINAL_BY_PARTITION).
MIGRATIONS = MIGRATIONS + (
    Migration(15, "journey_events: FINAL within each event month (settled months read without merging)",
              ("\nCREATE OR REPLACE VIEW journey_events AS\n" + journey_events_sql(),)),
)

# Migration 16: one summary row per account for the reports over every account. time-share
# grouped the 7.6M touches of 10M events by account on every run (~4 s of its 6 s); the store
# keeps each account's events as arrays instead (resolution.summaries_sql), written again for
# every account a re-resolution touches (resolution.refresh), so the report reads ~155k rows.
MIGRATIONS = MIGRATIONS + (
    Migration(
        16,
        "account_summaries: each account's events as arrays, kept with the resolution (the reports' read path)",
        (
            """
            CREATE TABLE IF NOT EXISTS account_summaries (
                account_id String,
                times Array(DateTime64(3, 'UTC')),
                sides Array(UInt8),
                channels Array(LowCardinality(String)),
                computed_at DateTime64(6, 'UTC')
            ) ENGINE = ReplacingMergeTree(computed_at)
            ORDER BY account_id
            """,
        ),
        backfill=(summaries_sql(scoped=False, version=16),),
    ),
)

# Migration 17: the rest of what the reports over every account read, in the summaries. The
# funnel grouped all 10M events of journey_events per account for its source (the CRM lead
# source, else the first touch's UTM source: ~4 s), attribution, handoff and paths every touch of
# the accounts they count (1-5 s). ``account_events`` takes the event's UTM and CRM lead source
# (event_resolution's extracted columns, through its materialized view; the rows that have one are
# written again, the same resolution — equal ``resolved_at``, the later insert wins), and
# ``account_summaries`` the reps, rep roles, UTM and lead sources of the account's events, as
# arrays in the order of the others; then every summary is written again.
ACCOUNT_EVENT_SOURCES = ("utm_source", "lead_source")
# What attribution reads of the opportunity records (its deals) and acceptance of the lead-status
# records, extracted once like migration 12's columns: their JSON was the whole properties column
# read (such records are spread over every granule) and parsed three or four times per record,
# ~0.7 s (deals) and ~1 s (acceptance, from the timeline) at 10M events. (type, column, its type,
# the field, the value on other events)
EXTRACTED_17 = (
    ("opportunity", "deal_id", "String", "JSONExtractString(properties, 'opportunityId')", "''"),
    ("opportunity", "deal_action", "LowCardinality(String)", "JSONExtractString(properties, 'action')", "''"),
    ("opportunity", "deal_currency", "LowCardinality(String)", "JSONExtractString(properties, 'currency')", "''"),
    ("opportunity", "deal_amount", "Float64", "toFloat64OrZero(trim(BOTH '\"' FROM JSONExtractRaw(properties, 'amount')))",
     "0"),
    ("lead_status", "lead_id", "String", "JSONExtractString(properties, 'leadId')", "''"),
    ("lead_status", "lead_status", "LowCardinality(String)", "JSONExtractString(properties, 'status')", "''"),
    ("lead_status", "lead_reason", "String", "JSONExtractString(properties, 'reason')", "''"),
)
_ACCOUNT_EVENT_SELECT_17 = _ACCOUNT_EVENT_SELECT.replace(
    ", 0 AS deleted", ", " + ", ".join(ACCOUNT_EVENT_SOURCES) + ", 0 AS deleted")

MIGRATIONS = MIGRATIONS + (
    Migration(
        17,
        "account_summaries: reps, rep roles, UTM and lead sources; deal and lead fields extracted (the reports read them)",
        tuple(f"ALTER TABLE account_events ADD COLUMN IF NOT EXISTS {name} String" for name in ACCOUNT_EVENT_SOURCES)
        + (f"ALTER TABLE account_events_mv MODIFY QUERY {_ACCOUNT_EVENT_SELECT_17}",)
        + tuple(f"ALTER TABLE event_resolution ADD COLUMN IF NOT EXISTS {name} {kind} "
                f"MATERIALIZED if(event_type = '{event_type}', {expr}, {empty})"
                for event_type, name, kind, expr, empty in EXTRACTED_17)
        # the rows resolved before: computed now (one mutation, waited for)
        + ("ALTER TABLE event_resolution " + ", ".join(f"MATERIALIZE COLUMN {c[1]}" for c in EXTRACTED_17)
           + " SETTINGS mutations_sync = 2",)
        + tuple(f"ALTER TABLE account_summaries ADD COLUMN IF NOT EXISTS {name} {kind}"
                for name, kind in (("rep_ids", "Array(String)"), ("rep_roles", "Array(LowCardinality(String))"),
                                   ("utm_sources", "Array(LowCardinality(String))"),
                                   ("lead_sources", "Array(LowCardinality(String))"))),
        backfill=(
            f"INSERT INTO account_events ({', '.join(ACCOUNT_EVENT_COLUMNS + ACCOUNT_EVENT_SOURCES)}, deleted) "
            + _ACCOUNT_EVENT_SELECT_17.replace("FROM event_resolution", "FROM event_resolution FINAL")
            + " WHERE utm_source != '' OR lead_source != ''",
            summaries_sql(scoped=False),
        ),
    ),
)

LATEST = MIGRATIONS[-1].version

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree ORDER BY version
"""


def applied(store: _Runs) -> list[int]:
    store.command(_LEDGER)
    _, rows = store.query("SELECT DISTINCT version FROM schema_migrations ORDER BY version")
    return [int(r[0]) for r in rows]


def migrate(store: _Runs) -> list[Migration]:
    """Apply every missing migration in order; return the ones applied (none if up to date)."""
    done = set(applied(store))
    ran = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        began = time.monotonic()
        log.info("schema migration %d (%s): %d statements, %d backfill steps", migration.version, migration.name,
                 len(migration.statements), len(migration.backfill))
        for statement in migration.statements:
            store.command(statement)
        for n, statement in enumerate(migration.backfill, 1):  # a backfill can take a minute on 10M events
            store.command(statement)
            log.info("schema migration %d: backfill step %d of %d done (%.1f s)", migration.version, n,
                     len(migration.backfill), time.monotonic() - began)
        store.command(
            "INSERT INTO schema_migrations (version, name) VALUES ({v:UInt32}, {n:String})",
            {"v": migration.version, "n": migration.name},
        )
        ran.append(migration)
        log.info("schema migration %d applied in %.1f s", migration.version, time.monotonic() - began)
    return ran


CHANNEL_COLUMNS = ("channel", "side", "team", "touch", "definitions_version", "version")


def channel_rows(channels: Mapping[str, Any], definitions_version: str, version: int) -> list[tuple]:
    """Rows of ``channel_definitions`` for the definitions' channel map (``Definitions.channels``):
    the analyst views take each channel's team and whether it is a touch from there. The store
    process writes them at start; ``version`` orders writers (the newest definitions win)."""
    return [(name, ch.side, ch.team, int(bool(ch.touch)), definitions_version, int(version))
            for name, ch in sorted(channels.items())]
