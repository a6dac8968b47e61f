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
SELECT e.event_id AS event_id, e.event_type AS event_type,
       arraySort(groupArrayIf(a.account_id, a.account_id != '')) AS accounts
FROM (SELECT event_id, any(event_type) AS event_type FROM timeline GROUP BY event_id) AS e
LEFT JOIN event_accounts AS a ON a.event_id = e.event_id
GROUP BY e.event_id, e.event_type
SETTINGS join_use_nulls = 0
"""
"""Every stored event with the accounts the ``event_accounts`` view (migration 7, the one bulk
implementation of the semantics above) resolves it to."""


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
