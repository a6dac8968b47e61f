"""Bulk query-time resolution: every stored event → the account(s) it resolves to now.

The same semantics as :data:`sinks.clickhouse.queries.RESOLVED_TIMELINE_SQL`, for all accounts
at once (stitching reports, exports, audits):

1. an event naming an account directly (CRM id, group, email domain) belongs to it;
2. an event of a person (userId, email or CRM contact id, with aliases in both directions)
   belongs to the account the person was a member of at the event's time;
3. an anonymous event belongs, through the device's person at that time, to that person's
   account at that time.

Account merges are applied one level, as the timeline query does: an event whose account
``D`` is merged into ``C`` (``account_merge D → C``) resolves to ``C``. Manual unmerges
(``identity_overrides``) remove links first. ``accounts`` is sorted and empty for an
unattributed event; more than one entry means the event shows in several canonical timelines.

Invariant (tested): for every account ``A`` that is not itself merged into another,
``timeline(A)`` holds exactly the events whose ``accounts`` contain ``A``.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol


class _Queries(Protocol):
    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]: ...


RESOLVED_EVENTS_SQL = """
WITH
  links AS (
    SELECT kind, src, dst, vf, vt
    FROM (SELECT kind, src, dsts, valid_froms, valid_tos FROM identity_links FINAL)
    ARRAY JOIN dsts AS dst, valid_froms AS vf, valid_tos AS vt
    WHERE (kind, src, dst) NOT IN (
      SELECT kind, src, dst FROM identity_overrides FINAL WHERE action = 'unmerge')
  ),
  merges AS (SELECT src AS acct, dst AS canon FROM links WHERE kind = 'account_merge'),
  members AS (SELECT src AS person, dst AS acct, vf, vt FROM links WHERE kind = 'person_account'),
  people AS (
    SELECT person, acct, vf, vt FROM members
    UNION ALL SELECT l.src, m.acct, m.vf, m.vt FROM links l INNER JOIN members m ON l.dst = m.person
      WHERE l.kind = 'person_alias'
    UNION ALL SELECT l.dst, m.acct, m.vf, m.vt FROM links l INNER JOIN members m ON l.src = m.person
      WHERE l.kind = 'person_alias'
  ),
  devices AS (
    SELECT l.src AS device, p.acct AS acct, greatest(l.vf, p.vf) AS vf, least(l.vt, p.vt) AS vt
    FROM links l INNER JOIN people p ON l.dst = p.person WHERE l.kind = 'device'
  ),
  events AS (
    SELECT event_id, event_type, account_id, event_time, anonymous_id, user_id, email, contact_id
    FROM timeline FINAL
    ORDER BY event_id, version DESC
    LIMIT 1 BY event_id
  ),
  direct AS (SELECT event_id, account_id AS acct FROM events WHERE account_id != ''),
  by_person AS (
    SELECT t.event_id AS event_id, p.acct AS acct FROM (
      SELECT event_id, event_time, arrayDistinct(arrayFilter(x -> x != '', [user_id, email, contact_id])) AS pkeys
      FROM events WHERE account_id = '' AND notEmpty(pkeys)
    ) AS t
    ARRAY JOIN t.pkeys AS pkey
    INNER JOIN people p ON pkey = p.person
    WHERE t.event_time >= p.vf AND t.event_time < p.vt
  ),
  by_device AS (
    SELECT t.event_id AS event_id, d.acct AS acct FROM (
      SELECT event_id, event_time, anonymous_id FROM events
      WHERE account_id = '' AND user_id = '' AND email = '' AND contact_id = '' AND anonymous_id != ''
    ) AS t
    INNER JOIN devices d ON t.anonymous_id = d.device
    WHERE t.event_time >= d.vf AND t.event_time < d.vt
  ),
  raw AS (SELECT * FROM direct UNION ALL SELECT * FROM by_person UNION ALL SELECT * FROM by_device),
  resolved AS (
    SELECT r.event_id AS event_id, if(m.canon != '', m.canon, r.acct) AS account
    FROM raw r LEFT JOIN merges m ON r.acct = m.acct
  )
SELECT e.event_id, e.event_type, arraySort(arrayFilter(x -> x != '', groupUniqArray(r.account))) AS accounts
FROM events e LEFT JOIN resolved r ON e.event_id = r.event_id
GROUP BY e.event_id, e.event_type
SETTINGS join_use_nulls = 0
"""


def resolve_events(store: _Queries) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """``(event_id, event_type, accounts)`` for every stored event (each once)."""
    _, rows = store.query(RESOLVED_EVENTS_SQL)
    for event_id, event_type, accounts in rows:
        yield str(event_id), str(event_type), tuple(accounts)


def canonical_accounts(store: _Queries) -> set[str]:
    """Accounts that are not merged into another one (the ones the invariant above holds for)."""
    _, rows = store.query(
        """
        SELECT DISTINCT account FROM (
          SELECT account_id AS account FROM timeline WHERE account_id != ''
          UNION ALL SELECT arrayJoin(dsts) FROM identity_links FINAL WHERE kind IN ('person_account', 'account_merge')
        )
        WHERE account NOT IN (
          SELECT src FROM identity_links FINAL WHERE kind = 'account_merge' AND (kind, src, dsts[1]) NOT IN (
            SELECT kind, src, dst FROM identity_overrides FINAL WHERE action = 'unmerge'))
        """
    )
    return {str(r[0]) for r in rows}
