"""Two tenants on one broker (issue 20, item 6): the same app id, the same event ids, the same
device id — each tenant's prefix keeps its topics, consumer group, state and store its own."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import orjson

from tests.support import events as ev
from tests.support.tracker import Tracker


def tenant_events(user: str, email: str) -> list[dict]:
    """Three anonymous pages of device d1, then its identification — same ids in both tenants."""
    pages = [ev.page(h, anon="d1", mid=f"shared-page-{h}") for h in range(3)]
    return pages + [ev.identify(5, "d1", user, email=email, mid="shared-identify")]


def timeline(tracker: Tracker, account: str) -> set[str]:
    return {r["event_id"] for r in json.loads(tracker.journeys("timeline", account, "--format", "json").stdout)}


def test_two_tenants_with_the_same_app_id_and_ids_never_see_each_other(kafka_bootstrap: str, tmp_path: Path) -> None:
    # the case: the default app id for both, only the prefix differs
    run = f"tenants{uuid.uuid4().hex[:8]}"  # topics outlive a run: each run its own
    for tenant in ("acme", "globex"):
        (tmp_path / tenant).mkdir()
    acme = Tracker(kafka_bootstrap, tmp_path / "acme", f"{run}-acme-",
                   extra_env={"JOURNEYS_APP_ID": "journeys"}, index=0)
    globex = Tracker(kafka_bootstrap, tmp_path / "globex", f"{run}-globex-",
                     extra_env={"JOURNEYS_APP_ID": "journeys"}, index=0)
    try:
        acme.start()
        globex.start()
        acme.produce([orjson.dumps(e) for e in tenant_events("alice", "alice@acme.example")])
        globex.produce([orjson.dumps(e) for e in tenant_events("bob", "bob@globex.example")])
        # each stores all four: neither tenant's dedupe saw the other's ids
        acme.wait_for_stored(events=4)
        globex.wait_for_stored(events=4)
        shared = {"shared-page-0", "shared-page-1", "shared-page-2", "shared-identify"}
        acme.wait_until(lambda: timeline(acme, "domain:acme.example") == shared, 60, "acme's stitched timeline")
        globex.wait_until(lambda: timeline(globex, "domain:globex.example") == shared, 60,
                          "globex's stitched timeline")
        # device d1 is alice in one tenant and bob in the other: no identity crosses over
        assert timeline(acme, "domain:globex.example") == set()
        assert timeline(globex, "domain:acme.example") == set()
        assert acme.stats()["events"] == 4 and globex.stats()["events"] == 4
    finally:
        acme.stop()
        globex.stop()
