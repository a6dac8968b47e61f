"""Two tenants on one broker and one machine (issue 20, item 6): the same app id, the same data
directory, the same message ids, device id and user id — the prefix alone keeps each tenant's
topics, consumer group, state, store and metrics its own."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import orjson

from tests.integration.test_serve import Serve, call
from tests.support import events as ev
from tests.support.tracker import Tracker

SHARED_IDS = {"shared-page-0", "shared-page-1", "shared-page-2", "shared-identify"}


def tenant_events(tenant: str) -> list[dict]:
    """Three anonymous pages of device d1, then user u1's identification — the same ids in both
    tenants; only the page paths and the email say whose they are."""
    pages = [ev.page(h, anon="d1", path=f"/{tenant}", mid=f"shared-page-{h}") for h in range(3)]
    return pages + [ev.identify(5, "d1", "u1", email=f"u1@{tenant}.example", mid="shared-identify")]


def timeline(tracker: Tracker, account: str) -> set[str]:
    return {r["event_id"] for r in json.loads(tracker.journeys("timeline", account, "--format", "json").stdout)}


def sql(tracker: Tracker, query: str) -> list[dict]:
    return json.loads(tracker.journeys("sql", query, "--format", "json").stdout)


def samples(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def metrics_of(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def test_two_tenants_with_the_same_app_id_data_dir_and_ids_never_see_each_other(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    # the case: default app id and default store for both, one data directory; only the prefix differs
    run = f"tenants{uuid.uuid4().hex[:8]}"  # topics outlive a run: each run its own
    data = tmp_path / "data"
    trackers = {}
    for index, tenant in enumerate(("acme", "globex")):
        tracker = Tracker(kafka_bootstrap, tmp_path, f"{run}{tenant}-",
                          extra_env={"JOURNEYS_APP_ID": "journeys", "JOURNEYS_DATA_DIR": str(data)}, index=index)
        del tracker.env["JOURNEYS_CLICKHOUSE_URL"]  # the default: the store under the data directory
        trackers[tenant] = tracker
    acme, globex = trackers["acme"], trackers["globex"]
    try:
        for tenant, tracker in trackers.items():
            tracker.start()
            tracker.produce([orjson.dumps(e) for e in tenant_events(tenant)])
        # each stores all four: neither tenant's dedupe saw the other's ids
        for tenant, tracker in trackers.items():
            tracker.wait_for_stored(events=4)
            tracker.wait_until(lambda t=tracker, n=tenant: timeline(t, f"domain:{n}.example") == SHARED_IDS, 60,
                               f"{tenant}'s stitched timeline")
        # device d1 and user u1 are acme's person in one tenant and globex's in the other: nothing crosses over
        assert timeline(acme, "domain:globex.example") == set()
        assert timeline(globex, "domain:acme.example") == set()
        for tenant, tracker in trackers.items():
            other = "globex" if tenant == "acme" else "acme"
            assert tracker.stats()["events"] == 4
            # each store holds exactly its own events (read with the CLI, through its worker)...
            rows = sql(tracker, "SELECT event_id, name, user_id, email FROM timeline FINAL ORDER BY event_id")
            assert {r["event_id"] for r in rows} == SHARED_IDS and len(rows) == 4, rows
            assert {r["name"] for r in rows if r["event_id"].startswith("shared-page")} == {f"/{tenant}"}, rows
            assert {r["email"] for r in rows if r["email"]} == {f"u1@{tenant}.example"}, rows
            # ... and only its own identities
            links = sql(tracker, "SELECT kind, src, dsts FROM identity_links FINAL ORDER BY kind, src")
            text = json.dumps(links)
            assert links and f"{tenant}.example" in text and f"{other}.example" not in text, links
            # every series its worker exports carries its tenant, none the other's
            # (the tenant's name: its prefix without the trailing "-")
            exported, name = metrics_of(tracker.port), tracker.tenant
            ingested = [float(line.rsplit(" ", 1)[1]) for line in samples(exported)
                        if line.startswith(f'journeys_events_in_total{{stage="ingest",tenant="{name}"}} ')]
            # at least once: a record read again after a rebalance counts again
            assert ingested and ingested[0] >= 4, [line for line in samples(exported) if "events_in" in line]
            assert all(f'tenant="{name}"' in line for line in samples(exported)), exported[:2000]
            assert f'tenant="{trackers[other].tenant}"' not in exported
        # one data directory, a store and tables per tenant, nothing at the untenanted place
        for tracker in trackers.values():
            assert (data / tracker.tenant / "store").is_dir()
            assert (data / tracker.tenant / "faust").is_dir()
        assert not (data / "store").exists() and not (data / "faust").exists()
        # without its worker, `journeys serve` of a tenant opens that tenant's store and labels its metrics
        acme.stop()
        serve = Serve(acme.env, tmp_path / "serve-acme.log").wait()
        try:
            assert call(serve.port, "/api/v1/stats", token=None)[1]["events"] == 4
            exported = call(serve.port, "/metrics", token=None)[1]
            name = acme.tenant
            assert samples(exported) and all(f'tenant="{name}"' in line for line in samples(exported))
            assert f'journeys_api_requests_total{{route="api-stats",status="200",tenant="{name}"}} 1.0' in exported, \
                [line for line in samples(exported) if "api_requests" in line]
        finally:
            serve.stop()
    finally:
        acme.stop()
        globex.stop()
