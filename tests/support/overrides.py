"""Manual unmerges and merges as ``journeys identity unmerge/merge`` records them, followed by
what the store process does after a batch of them (resolution.after_override_rows) — for the
integration tests that check the reports and the indexes follow an unmerge and a merge."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator

from schemas.identity import IdentityOverride
from sinks.clickhouse import resolution
from sinks.clickhouse.rows import OVERRIDE_COLUMNS, override_row


def first_account_merge(pipeline: Any) -> Any:
    """The first ``account_merge`` link (a domain account merged into a CRM account) an
    in-memory pipeline (bench.simulate.InProcessPipeline) made."""
    return next(link for (kind, _), link in pipeline.links.items() if kind == "account_merge")


def unmerge_then_merge(store: Any, merge: Any) -> Iterator[str]:
    """Unmerge the account merge ``merge`` by hand, then merge it back: each override stored and
    the events it can move re-resolved before the action (``"unmerge"``, then ``"merge"``) is
    yielded to the caller's checks."""
    for n, action in enumerate(("unmerge", "merge")):
        row = override_row(IdentityOverride(action=action, kind="account_merge", src=merge.src, dst=merge.dsts[0],
                                            reason="test", by="test", at=datetime.now(timezone.utc)))
        store.insert("identity_overrides", [row], OVERRIDE_COLUMNS, dedup_token=f"override-{n}")
        resolution.after_override_rows(store, [row])
        yield action
