"""The store keeps ``event_resolution`` (what every report reads) current batch by batch.

What the store process does (streams/agents/store.py) after each batch it writes — re-resolve
a timeline batch's events, and the events a batch of changed links or overrides can move — in
either order, must leave the table equal to a full resolution done now.
"""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from bench.simulate import InProcessPipeline
from bench.synth import SynthConfig, generate
from schemas.identity import IdentityOverride
from sinks.clickhouse import ddl
from sinks.clickhouse.client import Store
from sinks.clickhouse.resolution import (
    after_link_rows, after_override_rows, after_timeline_rows, resolve_events, stored_resolution,
)  # fmt: skip
from sinks.clickhouse.rows import (
    LINK_COLUMNS, OVERRIDE_COLUMNS, TIMELINE_COLUMNS, link_row, override_row, timeline_row,
)  # fmt: skip

pytestmark = pytest.mark.integration


def test_the_store_keeps_the_resolution_current_batch_by_batch(tmp_path) -> None:
    """What the store process does (streams/agents/store.py): write each timeline batch and
    re-resolve its events, write each batch of changed links and re-resolve what they move —
    in either order; the table the reports read must equal a full resolution now, also after
    an unmerge and a merge."""
    synth = [orjson.dumps(s.obj) for s in generate(SynthConfig(events=1500, seed=9, shuffle_window=200))]
    pipeline = InProcessPipeline()
    store = Store(f"chdb://{tmp_path / 'store'}")
    ddl.migrate(store)

    def now_resolved() -> dict[str, tuple[str, ...]]:
        return {event_id: accounts for event_id, _, accounts in resolve_events(store)}

    written, versions = 0, {}
    for n, i in enumerate(range(0, len(synth), 97)):
        pipeline.feed_all(synth[i : i + 97])
        rows = [timeline_row(e) for e in pipeline.rows[written:]]
        written = len(pipeline.rows)
        links = [link_row(link) for key, link in pipeline.links.items() if versions.get(key) != link.version]
        versions = {key: link.version for key, link in pipeline.links.items()}
        steps = [("timeline", rows, TIMELINE_COLUMNS, after_timeline_rows),
                 ("identity_links", links, LINK_COLUMNS, after_link_rows)]
        for table, batch, columns, then in steps if n % 2 else reversed(steps):
            if batch:
                store.insert(table, batch, columns, dedup_token=f"{table}-{n}")
                then(store, batch)
    stored = stored_resolution(store)
    assert stored == now_resolved()
    assert sum(1 for accounts in stored.values() if accounts) > 1000

    merge = next(link for (kind, _), link in pipeline.links.items() if kind == "account_merge")
    for n, action in enumerate(("unmerge", "merge")):
        override = IdentityOverride(action=action, kind="account_merge", src=merge.src, dst=merge.dsts[0],
                                    reason="test", by="test", at=datetime.now(timezone.utc))
        row = override_row(override)
        store.insert("identity_overrides", [row], OVERRIDE_COLUMNS, dedup_token=f"override-{n}")
        after_override_rows(store, [row])
        now = stored_resolution(store)
        assert now == now_resolved(), action
        moved = any(merge.src in accounts for accounts in now.values())
        assert moved == (action == "unmerge"), action
    store.close()
