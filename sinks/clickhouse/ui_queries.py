"""The queries behind the analyst web UI: account search, one account's snapshot and scores.

The per-account queries filter on ``account_id``, the first key of the ``timeline`` and
``account_scores`` sort orders, so a journey page reads only that account's granules however
big the store is (``FINAL`` then merges only those: the latest update of each event wins).
Every function returns ``(columns, rows)`` like :mod:`.queries`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Protocol


class _Queries(Protocol):
    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]: ...


# Candidate accounts first (one scan with the three filters), then their facts by primary key.
SEARCH_SQL = """
SELECT account_id,
       anyIf(name, event_type = 'group' AND name != '') AS name,
       anyIf(domain, domain != '') AS domain,
       uniqExact(event_id) AS events,
       max(event_time) AS last_event
FROM timeline
WHERE account_id IN (
  SELECT DISTINCT account_id FROM timeline
  WHERE account_id != ''
    AND (account_id ILIKE {pattern:String} OR domain ILIKE {pattern:String}
         OR (event_type = 'group' AND name ILIKE {pattern:String}))
)
GROUP BY account_id
ORDER BY (lower(account_id) = lower({q:String}) OR lower(name) = lower({q:String})
          OR lower(domain) = lower({q:String})) DESC,
         last_event DESC, account_id
LIMIT {limit:UInt32}
"""

SEARCH_STATE_SQL = """
SELECT account_id, argMax(stage, at) AS stage, argMax(total, at) AS score
FROM account_scores FINAL WHERE account_id IN {ids:Array(String)} GROUP BY account_id
"""

# The account each found account is merged into now (manual unmerges respected).
SEARCH_MERGES_SQL = """
SELECT src, argMax(dst, vf) AS merged_into
FROM (SELECT src, dsts, valid_froms FROM identity_links FINAL
      WHERE kind = 'account_merge' AND src IN {ids:Array(String)})
ARRAY JOIN dsts AS dst, valid_froms AS vf
WHERE ('account_merge', src, dst) NOT IN (
  SELECT kind, src, dst FROM identity_overrides FINAL WHERE action = 'unmerge')
GROUP BY src
"""

SNAPSHOT_COLUMNS = ("account_id", "stage", "score", "engagement", "fit", "owner", "source", "committee",
                    "last_event_at", "definitions_version", "committees")
SNAPSHOT_SQL = """
SELECT account_id,
       argMax(stage, at) AS stage, argMax(total, at) AS score,
       argMax(engagement, at) AS engagement, argMax(fit, at) AS fit,
       argMax(owner, at) AS owner, argMax(source, at) AS source,
       argMax(committee, at) AS latest_committee, max(at) AS last_event_at,
       argMax(definitions_version, at) AS definitions_version,
       groupUniqArrayIf(committee, committee NOT IN ('', '{}')) AS committees
FROM account_scores FINAL
WHERE account_id = {a:String}
GROUP BY account_id
"""

PROFILE_SQL = """
SELECT anyIf(name, event_type = 'group' AND name != '') AS name, anyIf(domain, domain != '') AS domain
FROM timeline WHERE account_id = {a:String}
"""

SCORES_SQL = """
SELECT at, stage, total, engagement, fit, event_id
FROM (
  SELECT at, stage, total, engagement, fit, event_id
  FROM account_scores FINAL WHERE account_id = {a:String}
  ORDER BY at DESC, event_id DESC
  LIMIT {limit:UInt32}
)
ORDER BY at, event_id
"""


# Each contact's own score on the account and on the journeys merged into it (a domain account's
# contacts count on its CRM account), decayed from its latest scoring touch to now (or as_of).
CONTACTS_SQL = """
SELECT contact_id, any(persona) AS persona, any(title) AS title,
       round(sum(score * pow(0.5, greatest(0, dateDiff('millisecond', scored_at, {as_of:DateTime64(3, 'UTC')})) / {half_life_ms:Float64})), 2)
           AS score_now,
       round(max(score), 2) AS score_at_last_touch, max(scored_at) AS last_touch_at,
       score_now >= {engaged:Float64} AS engaged
FROM (
  SELECT account_id, contact_id, argMax(persona, version) AS persona, argMax(title, version) AS title,
         argMax(score, version) AS score, argMax(scored_at, version) AS scored_at
  FROM contact_scores
  WHERE account_id = {a:String}
     OR account_id IN (SELECT account_id FROM account_merges_v WHERE canonical_id = {a:String})
  GROUP BY account_id, contact_id
)
GROUP BY contact_id
ORDER BY score_now DESC, contact_id
LIMIT {limit:UInt32}
"""


def contacts(store: _Queries, account: str, half_life_days: float, engaged_points: float,
             limit: int = 500, as_of: datetime | None = None) -> tuple[list[str], list[tuple]]:
    """The account's contacts with their own engagement score now (decayed with the definitions'
    half-life) — or as of ``as_of`` —, persona and title, most engaged first; ``engaged``: at or
    above the committee's engaged-contact points."""
    return store.query(CONTACTS_SQL, {"a": account, "half_life_ms": half_life_days * 86_400_000,
                                      "engaged": engaged_points, "limit": limit,
                                      "as_of": as_of or datetime.now(timezone.utc)})


def like_pattern(text: str) -> str:
    """``%text%`` for ILIKE with the wildcards and the escape character in ``text`` escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(store: _Queries, q: str, limit: int = 20) -> tuple[list[str], list[tuple]]:
    """Accounts whose id, domain or group name contains ``q`` (any case), exact matches first,
    with their current stage and score and the account they were merged into, if any."""
    cols, rows = store.query(SEARCH_SQL, {"pattern": like_pattern(q), "q": q, "limit": limit})
    if not rows:
        return cols + ["stage", "score", "merged_into"], []
    ids = [r[0] for r in rows]
    _, states = store.query(SEARCH_STATE_SQL, {"ids": ids})
    _, merges = store.query(SEARCH_MERGES_SQL, {"ids": ids})
    state = {a: (stage, score) for a, stage, score in states}
    merged = dict(merges)
    return cols + ["stage", "score", "merged_into"], [
        r + state.get(r[0], ("", None)) + (merged.get(r[0], ""),) for r in rows]


def snapshot(store: _Queries, account_id: str) -> tuple[list[str], list[tuple]]:
    """The account's latest journey state (stage, scores, owner, committee JSON), every distinct
    non-empty committee it ever had (``committees``, JSON texts) and its name and domain from
    ``group`` events; no rows for an account the tracker has never seen."""
    _, rows = store.query(SNAPSHOT_SQL, {"a": account_id})
    _, profile = store.query(PROFILE_SQL, {"a": account_id})
    name, domain = profile[0] if profile else ("", "")
    cols = list(SNAPSHOT_COLUMNS) + ["name", "domain"]
    if not rows and not (name or domain):
        return cols, []
    row = rows[0] if rows else (account_id,) + (None,) * (len(SNAPSHOT_COLUMNS) - 1)
    return cols, [tuple(row) + (name, domain)]


def scores(store: _Queries, account_id: str, limit: int = 2000) -> tuple[list[str], list[tuple]]:
    """The account's scores after each event, oldest first (the latest ``limit`` points)."""
    return store.query(SCORES_SQL, {"a": account_id, "limit": limit})
