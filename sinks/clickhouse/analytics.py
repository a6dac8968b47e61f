"""The cross-team questions, answered from the same tables (shared by the CLI and the API).

One truth for every answer: touches are the events of the ``journey_events`` view, which resolves
each event to its account exactly as the timeline does (anonymous visits before a form fill,
people's aliases, domain accounts merged into CRM accounts, manual unmerges); the reports over
every account read them from ``account_summaries`` (one row per account, its events in order,
kept by the store with the resolution: resolution.summaries_sql) instead of grouping ~10M rows
per run, and drop events past the retention TTL themselves. :data:`TOUCHES`, :data:`SOURCES`
are the same over the view (tests/integration/test_summary_reports.py holds the reports to it).
Stage changes come from ``stage_changes_resolved``, the journey stage's changes on the canonical
account (a domain account merged into a CRM account counts once). Every function returns
``(columns, rows)``; docs/analytics.md shows the SQL for any ClickHouse client.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, Sequence

from sinks.clickhouse.ddl import FINAL_BY_PARTITION, journey_events_sql

FUNNEL_STAGES = ("engaged", "mql", "sal", "sql", "opportunity", "won")
"""The shipped definitions' funnel (``Definitions.funnel_stages()``); callers pass their own."""

# One row per touch (not identity calls or CRM status rows) and resolved account, each event once.
TOUCHES = """
  SELECT event_id, account_id, event_time, channel, side, team, rep_id, rep_role
  FROM journey_events
  WHERE is_touch
"""


def touches(where: str, prewhere: str = "") -> str:
    """:data:`TOUCHES` narrowed by ``where`` (only the touches a report can use are joined);
    ``prewhere``: a condition on the event alone (see :func:`ddl.journey_events_sql`), so that
    ``FINAL`` merges only the events it keeps."""
    source = f"({journey_events_sql(prewhere)})" if prewhere else "journey_events"
    return f"{TOUCHES.replace('FROM journey_events', 'FROM ' + source)}  AND ({where})\n"



def event_order(prefix: str = "") -> str:
    """A string that sorts as ``(event_time, event_id)`` does: the time in milliseconds as 8
    big-endian bytes (offset by 2^62, so every time this column holds is positive and its top byte
    is 0x40: ``reinterpretAsString`` drops no trailing zero byte), then the id. ``argMin``/``argMax``
    compare strings directly, where a tuple is compared as generic fields (at 10M events: the
    funnel's sources 4.6 s → 2.6 s of CPU). ``prefix``: a table alias and dot, if any."""
    return (f"concat(reverse(reinterpretAsString(toUInt64(toUnixTimestamp64Milli({prefix}event_time)"
            f" + 4611686018427387904))), {prefix}event_id)")


# Each account's source, whatever order its events were processed in: the CRM's lead source
# (newest lead-status row that names one), else the first touch's UTM source, else its channel.
# (``lead_source`` and ``utm_source`` are extracted from the properties when an event is resolved.)
# The SQL over journey_events (what :func:`sources_sql` answers from the summaries, tested equal).
SOURCES = f"""
  SELECT account_id,
         if(argMaxIf(lead_source, {event_order()}, lead_source != '') AS crm_source != '',
            crm_source,
            argMinIf(if(utm_source != '', utm_source, channel), {event_order()}, is_touch)) AS source
  FROM journey_events GROUP BY account_id
"""


def kept(days: int) -> str:
    """A lambda's condition that an event of ``account_summaries`` is still held: its time (the
    lambda's ``t``) within the retention TTL of ``days`` (0: none, and ``''``). Expired events
    stay in a summary until its account is written again; ClickHouse drops them from the event
    tables at merges, so a report on the summaries drops them itself."""
    return f" AND toDateTime(t) + toIntervalDay({days}) >= now()" if days else ""


def sources_sql(days: int) -> str:
    """:data:`SOURCES` from ``account_summaries`` (one row per account, its events in order): the
    last lead source, else the first touch's (channels not in ``{non_touch:Array(String)}``)
    UTM source or channel; events past a retention TTL of ``days`` left out."""
    times = ", times" if days else ""
    return f"""
  SELECT account_id,
         arrayLast((l{', t' if days else ''}) -> l != ''{kept(days)}, lead_sources{times}) AS crm_source,
         arrayFirstIndex((c{', t' if days else ''}) -> NOT has({{non_touch:Array(String)}}, c){kept(days)},
                         channels{times}) AS first_touch,
         if(crm_source != '', crm_source,
            if(first_touch = 0, '', if(utm_sources[first_touch] != '', utm_sources[first_touch],
                                       channels[first_touch]))) AS source
  FROM account_summaries FINAL
"""


# Each canonical account's ICP fit: the highest of its own and its merged accounts' latest fit.
SNAP = """
  SELECT if(m.canonical_id != '', m.canonical_id, s.account_id) AS account_id, max(s.fit) AS fit
  FROM account_snapshot AS s LEFT JOIN account_merges_v AS m ON s.account_id = m.account_id
  GROUP BY account_id
"""

GROUPS = {
    "source": "source",
    "persona": "persona",
    "segment": "if(fit >= 25, 'icp', 'non-icp')",
    "period": "toString(toStartOfMonth(first_at))",
}


class _Queries(Protocol):
    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]: ...


def stage_history(store: _Queries, account_id: str) -> tuple[list[str], list[tuple]]:
    return store.query(
        """
        SELECT at, from_stage, to_stage, rule, definitions_version, event_id, contact_id
        FROM stage_changes_resolved WHERE account_id = {a:String} ORDER BY at, to_stage
        """,
        {"a": account_id},
    )


def identity_history(store: _Queries, identifier: str) -> tuple[list[str], list[tuple]]:
    """Every link naming ``identifier`` as source or destination, over time: devices → persons,
    person aliases, persons → accounts (job changes are intervals), domain → CRM account merges;
    with the manual override of each link, if any (who, why, when). Overrides of links the
    stream never made are listed too (``rule`` = ``override``)."""
    return store.query(
        """
        WITH links AS (
            SELECT kind, src, dst, valid_from, valid_to, rule
            FROM (SELECT kind, src, dsts, valid_froms, valid_tos, rules FROM identity_links FINAL
                  WHERE src = {id:String}
                     OR (kind, src) IN (SELECT kind, src FROM identity_links_by_dst WHERE dst = {id:String}))
            ARRAY JOIN dsts AS dst, valid_froms AS valid_from, valid_tos AS valid_to, rules AS rule
            WHERE src = {id:String} OR dst = {id:String}
        ), overrides AS (
            SELECT kind, src, dst, action, reason, changed_by, changed_at FROM identity_overrides FINAL
            WHERE src = {id:String} OR dst = {id:String}
        )
        SELECT * FROM (
        SELECT l.kind AS kind, l.src AS src, l.dst AS dst,
               if(toUnixTimestamp64Milli(l.valid_from) <= 0, NULL, l.valid_from) AS valid_from,
               if(toYear(l.valid_to) >= 2299, NULL, l.valid_to) AS valid_to, l.rule AS rule,
               o.action AS override, o.reason AS reason, o.changed_by AS changed_by,
               if(o.action = '', NULL, o.changed_at) AS changed_at
        FROM links AS l LEFT JOIN overrides AS o ON l.kind = o.kind AND l.src = o.src AND l.dst = o.dst
        UNION ALL
        SELECT kind, src, dst, NULL, NULL, 'override', action, reason, changed_by, changed_at
        FROM overrides WHERE (kind, src, dst) NOT IN (SELECT kind, src, dst FROM links)
        ) ORDER BY kind, src, valid_from NULLS FIRST, dst
        SETTINGS join_use_nulls = 0
        """,
        {"id": identifier},
    )


def definitions_comparisons(store: _Queries, runs: int = 5) -> tuple[list[str], list[tuple]]:
    """The latest ``journeys definitions backfill`` runs: per stage, accounts entering it as
    recorded and under the other version, newest run first."""
    return store.query(
        """
        SELECT run_id, computed_at, version, recorded_version, period_start, period_end, stage,
               recorded_accounts, accounts, toInt64(accounts) - toInt64(recorded_accounts) AS difference
        FROM definitions_comparisons FINAL
        WHERE run_id IN (SELECT run_id FROM definitions_comparisons GROUP BY run_id
                         ORDER BY max(computed_at) DESC LIMIT {runs:UInt32})
        ORDER BY computed_at DESC, run_id, rank, stage
        """,
        {"runs": runs},
    )


def funnel(store: _Queries, by: str = "source", mode: str = "any",
           stages: Sequence[str] = FUNNEL_STAGES, qualified: str = "mql") -> tuple[list[str], list[tuple]]:
    """Accounts reaching each stage per group; ``strict`` counts only in-order progress.
    ``stages``: names as the definitions validate them (a-z, 0-9, _): they become columns.
    ``qualified``: the stage whose contact's persona is the account's (persona grouping)."""
    bad = [s for s in stages if not s.replace("_", "").isalnum() or not s.isascii()]
    if bad or not stages:
        raise ValueError(f"funnel stages must be names of letters, digits and _: {bad or 'none given'}")
    if by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}")
    if mode not in ("any", "strict"):
        raise ValueError("mode must be 'any' or 'strict'")
    steps = ", ".join(f"to_stage = '{s}'" for s in stages)
    reached = (
        ", ".join(f"countIf(level >= {i + 1}) AS {s}" for i, s in enumerate(stages))
        if mode == "strict"
        else ", ".join(f"countIf(has(reached, '{s}')) AS {s}" for s in stages)
    )
    # the fit of each account (account_scores, a row per scored event) only when grouping by it
    snap = (f"LEFT JOIN ({SNAP}) AS snap ON p.account_id = snap.account_id" if by == "segment" else "")
    fit = "snap.fit" if by == "segment" else "0"
    sql = f"""
    WITH per_account AS (
      SELECT sc.account_id,
             windowFunnel(toUInt64(1e12))(toDateTime(sc.at), {steps}) AS level,
             groupUniqArray(sc.to_stage) AS reached,
             min(sc.at) AS first_at,
             argMin(sc.source, sc.at) AS first_source,
             anyIf(sc.persona, sc.to_stage = {{qualified:String}} AND sc.persona != '') AS mql_persona
      FROM stage_changes_resolved AS sc
      GROUP BY sc.account_id
    )
    SELECT {GROUPS[by]} AS group_key, count() AS accounts, {reached}
    FROM (
      SELECT p.*, if(src.source != '', src.source, if(p.first_source != '', p.first_source, 'unknown')) AS source,
             if(p.mql_persona = '', 'unknown', p.mql_persona) AS persona, {fit} AS fit
      FROM per_account AS p
      LEFT JOIN ({sources_sql(events_retention_days(store))}) AS src ON p.account_id = src.account_id
      {snap}
    )
    GROUP BY group_key ORDER BY accounts DESC, group_key
    SETTINGS join_use_nulls = 0
    """
    return store.query(sql, {"qualified": qualified, "non_touch": non_touch_channels(store)})


# The three most frequent rejection reasons, most frequent first, ties by name (``topK`` left
# ties in the order it met the rows: an answer that could change with the storage order).
TOP_REASONS = """arrayStringConcat(arrayMap(x -> x.2, arraySlice(arraySort(x -> (-x.1, x.2),
           arrayMap(r -> (countEqual(rejections, r), r), arrayDistinct(
             groupArrayIf(reason, status = 'rejected' AND reason != '') AS rejections))), 1, 3)), '; ')"""

ACCEPTANCE_SQL = f"""
WITH leads AS (
  -- each lead-status record once (event_resolution: one row per event id, the first receipt's
  -- fields), what it says extracted when it was resolved (ddl.EXTRACTED_17); only these rows are
  -- merged by FINAL (an event's type is the same in every version of its resolution)
  SELECT lead_id, lead_status AS status, lead_reason AS reason, lead_source
  FROM event_resolution FINAL PREWHERE event_type = 'lead_status'{FINAL_BY_PARTITION}
)
SELECT if(lead_source = '', 'unknown', lead_source) AS source,
       uniqExactIf(lead_id, status = 'mql') AS mqls,
       uniqExactIf(lead_id, status = 'accepted') AS accepted,
       uniqExactIf(lead_id, status = 'rejected') AS rejected,
       round(accepted / nullIf(accepted + rejected, 0), 4) AS acceptance_rate,
       {TOP_REASONS} AS top_rejection_reasons
FROM leads GROUP BY source ORDER BY mqls DESC, source
"""


def acceptance(store: _Queries) -> tuple[list[str], list[tuple]]:
    """MQL acceptance rate and rejection reasons by lead source."""
    return store.query(ACCEPTANCE_SQL)


def handoff(store: _Queries, sla_hours: float, by: str = "rep", qualified: str = "mql") -> tuple[list[str], list[tuple]]:
    """MQL → first 1:1 sales touch latency and SLA compliance, by team (rep role) or rep."""
    key = {"rep": "rep_id", "team": "rep_role"}.get(by)
    if key is None:
        raise ValueError("by must be 'rep' or 'team'")
    days = events_retention_days(store)
    sql = f"""
    WITH mqls AS (
      SELECT account_id, min(at) AS mql_at FROM stage_changes_resolved WHERE to_stage = {{qualified:String}}
      GROUP BY account_id
    ),
    -- each account's events in order (account_summaries): the 1:1 touches at or after the MQL
    first_touch AS (
      SELECT m.account_id AS account_id, m.mql_at AS mql_at,
             arrayMap((c, s, t) -> s = 2 AND t >= m.mql_at AND NOT has({{non_touch:Array(String)}}, c){kept(days)},
                      e.channels, e.sides, e.times) AS hits,
             arrayFirstIndex(x -> x, hits) AS first_hit,
             e.times[first_hit] AS touched_at, e.rep_ids[first_hit] AS rep_id, e.rep_roles[first_hit] AS rep_role,
             arrayCount(x -> x, hits) AS human_touches
      -- every MQL, its account's summary if any (the MQLs are the join's table: a CTE is computed
      -- again where it is named, so no IN (SELECT … FROM mqls) here)
      FROM (SELECT account_id, times, sides, channels, rep_ids, rep_roles FROM account_summaries FINAL) AS e
      RIGHT JOIN mqls AS m ON e.account_id = m.account_id
    )
    SELECT if(human_touches = 0, '(no sales touch yet)', {key}) AS {by},
           count() AS mqls,
           countIf(human_touches > 0) AS touched,
           round(quantileExactIf(0.5)(dateDiff('second', mql_at, touched_at) / 3600, human_touches > 0), 2)
             AS median_hours,
           round(maxIf(dateDiff('second', mql_at, touched_at) / 3600, human_touches > 0), 2) AS max_hours,
           countIf(human_touches > 0 AND dateDiff('second', mql_at, touched_at) <= {{sla:Float64}} * 3600)
             AS within_sla,
           round(within_sla / count(), 4) AS sla_compliance
    FROM first_touch GROUP BY {by} ORDER BY mqls DESC, {by}
    SETTINGS join_use_nulls = 0
    """
    return store.query(sql, {"sla": sla_hours, "qualified": qualified, "non_touch": non_touch_channels(store)})


def non_touch_channels(store: _Queries) -> list[str]:
    """The channels whose events are not touches, as ``journey_events.is_touch`` says: those the
    definitions mark ``touch: false``, and ``identity``/``crm`` unless the definitions name them."""
    _, rows = store.query("SELECT channel, touch FROM channel_definitions FINAL")
    defined = {str(channel): int(touch) for channel, touch in rows}
    return sorted({c for c, touch in defined.items() if touch != 1} | ({"identity", "crm"} - set(defined)))


_EVENTS_TTL_DAYS = re.compile(r"\bTTL toDateTime\(event_time\) \+ toIntervalDay\((\d+)\)")


def events_retention_days(store: _Queries) -> int:
    """The retention TTL (days) on ``account_events`` (retention.py sets it; 0: none). Expired
    rows leave the tables at merges; a report over ``account_summaries`` drops them itself."""
    _, rows = store.query("SELECT create_table_query FROM system.tables WHERE database = currentDatabase() "
                          "AND name IN ('account_events', 'account_events_local')")
    days = [int(m.group(1)) for query, in rows if (m := _EVENTS_TTL_DAYS.search(str(query)))]
    return min(days) if days else 0


def time_share(store: _Queries) -> tuple[list[str], list[tuple]]:
    """Digital self-service vs 1:1 share of each stage: touches and time.

    Time of a touch = the gap to the account's next touch (capped at 7 days), credited to the
    side of the touch that opened the gap; the stage is the account's stage at the touch (the
    newest stage change at or before it; of changes at the same instant, the first by
    ``(journey_account_id, change_id)``).
    """
    # Each account's events come ordered by (event_time, event_id) from account_summaries (one
    # row per account, kept by the store with the resolution: resolution.summaries_sql), so no
    # touch is grouped or sorted here; the touches are kept with a mask on their channels. The
    # stage at each touch: the account's stage changes (one per instant) and its touches merged
    # in one sorted array of numbers, each change's stage carried forward onto the touches after
    # it (arrayFill) — an ASOF join per account, without joining 7.6M rows at 10M events.
    # What keeps it cheap (docs/benchmarks.md, time-share at 10M: 2.0 → 1.2 s of CPU):
    # - the stage changes of one canonical account are grouped as numbers: the tie rule's order
    #   (journey_account_id, change_id) is stage_changes' own key, so a row_number over it ranks
    #   them (read in order) instead of two GROUP BYs with string argMins;
    # - a change or touch is one Int64: its time in ms * 2^16, plus its stage number (changes,
    #   < 65535: stage names are a handful) or 65535 (touches, so a change at the same instant
    #   comes first); a plain numeric sort merges them, a sentinel change (stage 0) first;
    # - accounts per stage: a touch that is its account's first in the stage counts it
    #   (arrayEnumerateUniq), instead of a uniqExact over every touch.
    days = events_retention_days(store)
    expired = f" AND toDateTime(t) + toIntervalDay({days}) >= now()" if days else ""
    sql = f"""
    WITH (SELECT arraySort(groupUniqArrayIf(to_stage, to_stage != '')) FROM stage_changes_v) AS names,
    per_account AS (
      SELECT account_id,
             arrayMap((c, t) -> NOT has({{non_touch:Array(String)}}, c){expired}, channels, times) AS keep,
             arrayFilter((t, k) -> k, times, keep) AS ts,
             arrayFilter((s, k) -> k, sides, keep) AS ss
      FROM account_summaries FINAL
      WHERE notEmpty(ts)
    ),
    changes AS (  -- stage_changes_resolved, ranked by the tie rule: one change per account and instant
      SELECT account_id,
             arraySort(groupArray((toUnixTimestamp64Milli(at), change_no, toUInt16(indexOf(names, to_stage)))))
               AS sorted,
             arrayFilter((x, i) -> i = 1 OR x.1 != sorted[i - 1].1, sorted, arrayEnumerate(sorted)) AS firsts,
             arrayMap(x -> x.1 * 65536 + x.3, firsts) AS keys
      FROM (SELECT if(m.canonical_id != '', m.canonical_id, c.account_id) AS account_id, c.at AS at,
                   c.to_stage AS to_stage, c.change_no AS change_no
            FROM (SELECT account_id, at, to_stage, row_number() OVER (ORDER BY account_id, change_id) AS change_no
                  FROM stage_changes_v) AS c
            LEFT JOIN account_merges_v AS m ON c.account_id = m.account_id)
      GROUP BY account_id
    ),
    staged AS (
      SELECT p.ss AS ss,
             arrayMap((t, n) -> least(dateDiff('second', t, n), 7 * 86400), p.ts,
                      arrayPushBack(arrayPopFront(p.ts), p.ts[-1])) AS gaps,
             arrayMap(k -> bitAnd(k, 65535),
                      arraySort(arrayConcat([toInt64(-9223372036854775808)], c.keys,
                                            arrayMap(t -> toUnixTimestamp64Milli(t) * 65536 + 65535, p.ts))))
               AS merged,
             arrayFilter((s, m) -> m = 65535, arrayFill(s -> s != 65535, merged), merged) AS stage_nos,
             arrayEnumerateUniq(stage_nos) AS nth
      FROM per_account AS p LEFT JOIN changes AS c ON p.account_id = c.account_id
    )
    SELECT if(stage_no = 0, '(before engaged)', names[stage_no]) AS stage, accounts, digital_touches, human_touches,
           round(digital_touches / touches, 4) AS digital_touch_share,
           round(digital_s / nullIf(total_s, 0), 4) AS digital_time_share,
           round(human_s / nullIf(total_s, 0), 4) AS human_time_share
    FROM (
      SELECT stage_no, countIf(n = 1) AS accounts,
             countIf(side = 1) AS digital_touches, countIf(side = 2) AS human_touches, count() AS touches,
             sumIf(gap_s, side = 1) AS digital_s, sumIf(gap_s, side = 2) AS human_s, sum(gap_s) AS total_s
      FROM staged ARRAY JOIN stage_nos AS stage_no, ss AS side, gaps AS gap_s, nth AS n
      GROUP BY stage_no
    )
    WHERE throwIf(length(names) > 65534, 'time-share: more than 65534 stage names') = 0
    ORDER BY stage
    SETTINGS join_use_nulls = 0
    """
    return store.query(sql, {"non_touch": non_touch_channels(store)})


def paths(store: _Queries, limit: int = 20, won: str = "won", lost: str = "lost") -> tuple[list[str], list[tuple]]:
    """The most common channel paths (consecutive repeats collapsed) of won vs lost deals."""
    days = events_retention_days(store)
    sql = f"""
    WITH outcomes AS (
      SELECT account_id, argMax(to_stage, at) AS outcome FROM stage_changes_resolved
      WHERE to_stage IN ({{won:String}}, {{lost:String}}) GROUP BY account_id
    ),
    seqs AS (  -- each account's touches in order (account_summaries)
      SELECT account_id,
             arrayFilter((c, t) -> NOT has({{non_touch:Array(String)}}, c){kept(days)}, channels, times) AS chans
      FROM account_summaries FINAL
      WHERE account_id IN (SELECT account_id FROM outcomes) AND notEmpty(chans)
    )
    SELECT o.outcome AS outcome,
           arrayStringConcat(arrayFilter((c, i) -> i = 1 OR c != s.chans[i - 1], s.chans,
                             arrayEnumerate(s.chans)), ' > ') AS path,
           count() AS accounts
    FROM outcomes AS o INNER JOIN seqs AS s ON o.account_id = s.account_id
    GROUP BY outcome, path ORDER BY outcome DESC, accounts DESC, path LIMIT {{limit:UInt32}}
    """
    return store.query(sql, {"limit": limit, "won": won, "lost": lost, "non_touch": non_touch_channels(store)})


def _deals_sql() -> str:
    """The ``deals`` (each won deal: account, revenue, currency, won and creation times) and
    ``milestones`` (each account's first MQL and opportunity stage change) of a WITH clause."""
    return f"""deals AS (  -- one pass over the opportunity rows: each won deal with its creation time
      SELECT account_id, deal_id,
             argMaxIf(amount, event_time, action = 'closed_won') AS revenue,
             argMaxIf(currency, event_time, action = 'closed_won') AS currency,
             maxIf(event_time, action = 'closed_won') AS won_at,
             minIf(event_time, action = 'created') AS created_at
      FROM (
        -- the opportunity records of journey_events (each on its resolved accounts), their fields
        -- extracted when resolved (ddl.EXTRACTED_17); only they are merged by FINAL (an event's
        -- type is its first receipt's in every version of its resolution: rows.first_wins_version)
        SELECT account_id, event_time, deal_id, deal_action AS action, deal_currency AS currency, deal_amount AS amount
        FROM (SELECT accounts, event_time, deal_id, deal_action, deal_currency, deal_amount FROM event_resolution FINAL
              PREWHERE event_type = 'opportunity'{FINAL_BY_PARTITION})
        ARRAY JOIN accounts AS account_id
      )
      GROUP BY account_id, deal_id
      HAVING countIf(action = 'closed_won') > 0
    ),
    milestones AS (
      SELECT account_id, minIf(at, to_stage = {{qualified:String}}) AS mql_at,
             minIf(at, to_stage = {{opportunity:String}}) AS opp_at
      FROM stage_changes_resolved GROUP BY account_id
    )
    """


ATTRIBUTION_KEYS = {
    "channel": ("channel", "team"),
    "role": ("role",),
}
"""What :func:`attribution_credit` sums the credit by."""


_DECAY_WEIGHTS = """arrayMap(t -> pow(0.5, dateDiff('millisecond', t, won_at) / 1000 / 86400 / {half_life:Float64}), ts)
               AS decayed, arraySum(decayed) AS decayed_total, arrayMap(r -> r / decayed_total, decayed)"""
_POSITION_WEIGHTS = """arrayMap(i -> if(i = 1, {w_first:Float64}, 0) + if(i = lead, {w_lead:Float64}, 0)
                              + if(i = opp, {w_opportunity:Float64}, 0) + if(i = n, {w_last:Float64}, 0)
                              + if(if(others > 0, NOT milestone[i], milestone[i]),
                                   leftover / if(others > 0, others, milestones), 0),
                         range(1, n + 1))"""


def attribution_weights_sql(days: int, decay: bool = False) -> str:
    """Each won deal (``deals``, ``milestones`` of :func:`_deals_sql`) with its touches up to the
    close and their weights under the model of the ``plan`` parameters (``attribution.Plan``):
    the same shares as ``attribution.weights``, computed per deal in SQL (``ws``; ``decay``: the
    time-decay model's, else the position-based ones'). The touches
    come from ``account_summaries`` (each account's events in ``(event_time, event_id)`` order),
    without the channels in ``{non_touch:Array(String)}`` and events past a retention TTL of
    ``days``; a deal without a touch up to its close counts nowhere."""
    weights = _DECAY_WEIGHTS if decay else _POSITION_WEIGHTS
    return f"""
    journeys AS (
      SELECT d.account_id AS account_id, d.deal_id AS deal_id, d.revenue AS revenue, d.currency AS currency,
             d.won_at AS won_at, nullIf(m.mql_at, toDateTime64(0, 3, 'UTC')) AS mql_at,
             nullIf(if(d.created_at > toDateTime64(0, 3, 'UTC'), d.created_at, m.opp_at),
                    toDateTime64(0, 3, 'UTC')) AS opp_at,
             arrayMap((c, t) -> t <= d.won_at AND NOT has({{non_touch:Array(String)}}, c){kept(days)},
                      e.channels, e.times) AS keep,
             arrayFilter((t, k) -> k, e.times, keep) AS ts, arrayFilter((c, k) -> k, e.channels, keep) AS cs,
             arrayFilter((s, k) -> k, e.sides, keep) AS ss, arrayFilter((r, k) -> k, e.rep_roles, keep) AS rs,
             length(ts) AS n
      -- the won deals (few) are the join's table: every summary streams past them once (a CTE is
      -- computed again where it is named: no IN (SELECT … FROM deals) here)
      FROM (SELECT account_id, times, channels, sides, rep_roles FROM account_summaries FINAL) AS e
      INNER JOIN deals AS d ON e.account_id = d.account_id
      LEFT JOIN milestones AS m ON m.account_id = d.account_id
      WHERE n > 0
    ),
    weighted AS (
      SELECT *,
             -- the last touch at or before each milestone (0: none; lead_creation falls back to the first)
             if(mql_at IS NULL, 0, arrayLastIndex(t -> t <= mql_at, ts)) AS lead_found,
             if(lead_found = 0 AND {{lead_falls_back:Bool}}, 1, lead_found) AS lead,
             if(opp_at IS NULL, 0, arrayLastIndex(t -> t <= opp_at, ts)) AS opp,
             arrayMap(i -> (i = 1 AND {{w_first:Float64}} > 0) OR (i = lead AND {{w_lead:Float64}} > 0)
                           OR (i = opp AND {{w_opportunity:Float64}} > 0) OR (i = n AND {{w_last:Float64}} > 0),
                      range(1, n + 1)) AS milestone,
             arrayCount(x -> x, milestone) AS milestones,
             n - milestones AS others,
             -- the rest and the shares of milestones that never happened, shared by the others
             -- (by the milestones when there is no other touch)
             {{w_rest:Float64}} + (if(lead = 0, {{w_lead:Float64}}, 0) + if(opp = 0, {{w_opportunity:Float64}}, 0)) AS leftover,
             {weights} AS ws
      FROM journeys
    )"""


def attribution_credit(store: _Queries, plan: Sequence[Any], half_life_days: float, by: str = "channel",
                       qualified: str = "mql", opportunity: str = "opportunity") -> tuple[list[str], list[tuple]]:
    """Won revenue credited per currency and ``by`` (:data:`ATTRIBUTION_KEYS`: channel and team, or
    role) under the model ``plan`` (``attribution.Plan``): each touch's weight (the same as
    ``attribution.weights``) × its deal's revenue, added up per key (``credit``) one after the
    other in the order of the deals (by account and deal id) and of their touches — the order the
    sum of :func:`attribution.attribute` takes, so the same float (the last of ``arrayCumSum``'s
    running sums, added left to right from 0 as ``attribute`` does; ``arraySum`` and ``sum`` may
    add in another order, ``arrayFold`` took 3 s) —, keys in the order they
    first appear (``first_at``). Shipping each touch's credit to Python instead (780k floats at
    10M events) took about half of the report. The team of a touch is the channel's
    in the definitions (``channel_definitions``), else by its side, as ``journey_events`` says;
    its role: the rep's role for a 1:1 touch, else the team (``attribution.Touch.role``)."""
    if by not in ATTRIBUTION_KEYS:
        raise ValueError(f"by must be one of {', '.join(ATTRIBUTION_KEYS)}")
    first, lead, opp, last, rest, falls_back, decay = plan
    keys = ", ".join(ATTRIBUTION_KEYS[by])
    sql = f"""
    WITH (SELECT groupArray(channel) FROM channel_definitions FINAL WHERE team != '') AS teamed,
         (SELECT groupArray(team) FROM channel_definitions FINAL WHERE team != '') AS teams,
    {_deals_sql()},
    {attribution_weights_sql(events_retention_days(store), decay=bool(decay))}
    SELECT currency, {keys}, min(at) AS first_at,
           -- each touch's credit added one after the other in the order of the deals (by account
           -- and deal id) and their touches: the float attribution.attribute's running sum gives
           arrayCumSum(arrayMap(x -> x.2, arraySort(x -> x.1, groupArray((at, w * revenue)))))[-1] AS credit
    FROM (
      SELECT currency, revenue, w, channel, bitShiftLeft(deal_no, 32) + i AS at,
             transform(toString(channel), teamed, teams, multiIf(side = 2, 'sales', side = 1, 'marketing', 'none'))
               AS team,
             if(side = 2 AND rep_role != '', rep_role, team) AS role
      FROM (SELECT *, row_number() OVER (ORDER BY account_id, deal_id) AS deal_no FROM weighted)
      ARRAY JOIN ws AS w, cs AS channel, ss AS side, rs AS rep_role, arrayEnumerate(ws) AS i
    )
    GROUP BY currency, {keys} ORDER BY first_at
    SETTINGS join_use_nulls = 0
    """
    return store.query(sql, {"qualified": qualified, "opportunity": opportunity, "non_touch": non_touch_channels(store),
                             "w_first": first, "w_lead": lead, "w_opportunity": opp, "w_last": last, "w_rest": rest,
                             "lead_falls_back": falls_back, "half_life": half_life_days})


def stage_durations(store: _Queries) -> tuple[list[str], list[tuple]]:
    """Time accounts spend in each stage (until their next stage change; open stays excluded)."""
    return store.query(
        """
        SELECT to_stage AS stage, count() AS stays, round(avg(hours), 1) AS avg_hours,
               round(quantileExact(0.5)(hours), 1) AS median_hours, round(max(hours), 1) AS max_hours
        FROM (
          SELECT account_id, to_stage,
                 dateDiff('second', at, leadInFrame(at, 1, at) OVER (PARTITION BY journey_account_id ORDER BY at, to_stage
                   ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)) / 3600 AS hours,
                 row_number() OVER (PARTITION BY journey_account_id ORDER BY at DESC, to_stage DESC) AS from_last
          FROM stage_changes_resolved
        )
        WHERE from_last > 1
        GROUP BY stage ORDER BY stage
        """
    )


def alerts(store: _Queries, account: str = "", rule: str = "", limit: int = 200,
           failed: bool = False) -> tuple[list[str], list[tuple]]:
    """The alerts feed, newest first, optionally for one account and/or one rule, with how its
    webhook deliveries ended: ``delivery`` is ``delivered``, ``failed``, ``failed N of M``, or empty
    (no receiver, or not delivered yet); ``delivery_errors`` names each failed receiver and why.
    ``failed``: only alerts some receiver did not take."""
    return store.query(
        """
        WITH picked AS (
          SELECT * FROM alerts FINAL
          WHERE ({account:String} = '' OR account_id = {account:String}) AND ({rule:String} = '' OR rule = {rule:String})
            AND (NOT {failed:Bool} OR alert_id IN (SELECT alert_id FROM alert_deliveries FINAL WHERE status = 'failed'))
          ORDER BY at DESC, alert_id LIMIT {limit:UInt32}
        )
        SELECT a.at AS at, a.rule AS rule, a.account_id AS account_id, a.owner AS owner, a.summary AS summary,
               a.definitions_version AS definitions_version, a.link AS link, a.alert_id AS alert_id, a.path AS path,
               multiIf(d.failed = 0 AND d.delivered = 0, '', d.failed = 0, 'delivered', d.delivered = 0, 'failed',
                       concat('failed ', toString(d.failed), ' of ', toString(d.failed + d.delivered))) AS delivery,
               d.delivered AS delivered, d.failed AS failed, d.errors AS delivery_errors
        FROM picked AS a
        LEFT JOIN (
          SELECT alert_id, countIf(status = 'delivered') AS delivered, countIf(status = 'failed') AS failed,
                 arrayStringConcat(arraySort(groupArrayIf(concat(receiver, ' (', reason, ')'), status = 'failed')), '; ')
                   AS errors
          FROM alert_deliveries FINAL
          WHERE alert_id IN (SELECT alert_id FROM picked)  -- by primary key: only the alerts shown
          GROUP BY alert_id
        ) AS d ON d.alert_id = a.alert_id
        ORDER BY at DESC, alert_id
        SETTINGS join_use_nulls = 0
        """,
        {"account": account, "rule": rule, "limit": limit, "failed": failed},
    )
