"""The reports as they were before migration 17 (the oracles of ``test_summary_reports.py``):
handoff, paths and attribution's won journeys grouped from every touch of ``journey_events``
(the funnel's sources: :data:`analytics.SOURCES`), acceptance parsed from the timeline's JSON."""

from __future__ import annotations

from typing import Any

from sinks.clickhouse.analytics import TOUCHES, event_order, touches
from sinks.clickhouse.ddl import journey_events_sql

_Queries = Any


def handoff(store: _Queries, sla_hours: float, by: str = "rep", qualified: str = "mql") -> tuple[list[str], list[tuple]]:
    """MQL → first 1:1 sales touch latency and SLA compliance, by team (rep role) or rep."""
    key = {"rep": "rep_id", "team": "rep_role"}.get(by)
    if key is None:
        raise ValueError("by must be 'rep' or 'team'")
    sql = f"""
    WITH mqls AS (
      SELECT account_id, min(at) AS mql_at FROM stage_changes_resolved WHERE to_stage = {{qualified:String}}
      GROUP BY account_id
    ),
    first_touch AS (
      SELECT m.account_id AS account_id, m.mql_at AS mql_at,
             minIf(t.event_time, t.side = 'human' AND t.event_time >= m.mql_at) AS touched_at,
             argMinIf(t.rep_id, {event_order('t.')}, t.side = 'human' AND t.event_time >= m.mql_at) AS rep_id,
             argMinIf(t.rep_role, {event_order('t.')}, t.side = 'human' AND t.event_time >= m.mql_at)
               AS rep_role,
             countIf(t.side = 'human' AND t.event_time >= m.mql_at) AS human_touches
      FROM mqls AS m
      LEFT JOIN ({touches("account_id IN (SELECT account_id FROM mqls)", prewhere="side = 'human'")}) AS t
        ON t.account_id = m.account_id
      GROUP BY m.account_id, m.mql_at
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
    """
    return store.query(sql, {"sla": sla_hours, "qualified": qualified})



def paths(store: _Queries, limit: int = 20, won: str = "won", lost: str = "lost") -> tuple[list[str], list[tuple]]:
    """The most common channel paths (consecutive repeats collapsed) of won vs lost deals."""
    sql = f"""
    WITH outcomes AS (
      SELECT account_id, argMax(to_stage, at) AS outcome FROM stage_changes_resolved
      WHERE to_stage IN ({{won:String}}, {{lost:String}}) GROUP BY account_id
    ),
    seqs AS (
      SELECT account_id,
             arrayMap(x -> x.2, arraySort(x -> (x.1, x.3), groupArray((event_time, channel, event_id)))) AS chans
      FROM ({touches("account_id IN (SELECT account_id FROM outcomes)")}) GROUP BY account_id
    )
    SELECT o.outcome AS outcome,
           arrayStringConcat(arrayFilter((c, i) -> i = 1 OR c != s.chans[i - 1], s.chans,
                             arrayEnumerate(s.chans)), ' > ') AS path,
           count() AS accounts
    FROM outcomes AS o INNER JOIN seqs AS s ON o.account_id = s.account_id
    GROUP BY outcome, path ORDER BY outcome DESC, accounts DESC, path LIMIT {{limit:UInt32}}
    """
    return store.query(sql, {"limit": limit, "won": won, "lost": lost})



def won_journeys(store: _Queries, qualified: str = "mql", opportunity: str = "opportunity") -> tuple[list[str], list[tuple]]:
    """Per won deal (opportunity closed won): its account, revenue and currency, milestone times
    and the account's ordered touches up to the close (for attribution). Every won deal counts,
    an account's second deal included; amounts stay in their own currency."""
    sql = f"""
    WITH deals AS (  -- one pass over the opportunity rows: each won deal with its creation time
      SELECT account_id, deal_id,
             argMaxIf(amount, event_time, action = 'closed_won') AS revenue,
             argMaxIf(currency, event_time, action = 'closed_won') AS currency,
             maxIf(event_time, action = 'closed_won') AS won_at,
             minIf(event_time, action = 'created') AS created_at
      FROM (
        SELECT account_id, event_time, JSONExtractString(properties, 'opportunityId') AS deal_id,
               JSONExtractString(properties, 'action') AS action, JSONExtractString(properties, 'currency') AS currency,
               toFloat64OrZero(trim(BOTH '"' FROM JSONExtractRaw(properties, 'amount'))) AS amount
        -- only the opportunity records are merged by FINAL (an event's type is its first receipt's in
        -- every version of its resolution: rows.first_wins_version)
        FROM ({journey_events_sql("event_type = 'opportunity'")})
      )
      GROUP BY account_id, deal_id
      HAVING countIf(action = 'closed_won') > 0
    ),
    milestones AS (
      SELECT account_id, minIf(at, to_stage = {{qualified:String}}) AS mql_at,
             minIf(at, to_stage = {{opportunity:String}}) AS opp_at
      FROM stage_changes_resolved GROUP BY account_id
    )
    SELECT d.account_id AS account_id, d.deal_id AS deal_id, d.revenue AS revenue, d.currency AS currency,
           d.won_at AS won_at, nullIf(m.mql_at, toDateTime64(0, 3, 'UTC')) AS mql_at,
           nullIf(if(d.created_at > toDateTime64(0, 3, 'UTC'), d.created_at, m.opp_at), toDateTime64(0, 3, 'UTC')) AS opp_at,
           arraySort(x -> (x.1, x.6), groupArray((t.event_time, t.channel, t.side, t.team, t.rep_role, t.event_id)))
             AS touches
    FROM ({TOUCHES}) AS t
    INNER JOIN deals AS d ON t.account_id = d.account_id  -- the won deals (few) are the join's table
    LEFT JOIN milestones AS m ON m.account_id = d.account_id
    WHERE t.event_time <= d.won_at
    GROUP BY d.account_id, d.deal_id, d.revenue, d.currency, d.won_at, m.mql_at, d.created_at, m.opp_at
    ORDER BY d.account_id, d.deal_id
    SETTINGS join_use_nulls = 0
    """
    return store.query(sql, {"qualified": qualified, "opportunity": opportunity})



ACCEPTANCE_SQL = """
WITH leads AS (
  SELECT JSONExtractString(properties, 'leadId') AS lead_id,
         JSONExtractString(properties, 'status') AS status,
         JSONExtractString(properties, 'reason') AS reason,
         JSONExtractString(properties, 'leadSource') AS lead_source
  -- PREWHERE: only lead-status rows are merged by FINAL (an event id's type is its first receipt's)
  FROM timeline FINAL PREWHERE event_type = 'lead_status' LIMIT 1 BY event_id
)
SELECT if(lead_source = '', 'unknown', lead_source) AS source,
       uniqExactIf(lead_id, status = 'mql') AS mqls,
       uniqExactIf(lead_id, status = 'accepted') AS accepted,
       uniqExactIf(lead_id, status = 'rejected') AS rejected,
       round(accepted / nullIf(accepted + rejected, 0), 4) AS acceptance_rate,
       arrayStringConcat(arraySlice(topKIf(3)(reason, status = 'rejected' AND reason != ''), 1, 3), '; ')
         AS top_rejection_reasons
FROM leads GROUP BY source ORDER BY mqls DESC, source
"""
