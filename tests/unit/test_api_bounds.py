"""Bounded parameters of the JSON API (issue #20, item 5): a ``limit`` out of range or a timeline
cursor that is not one answers 400 with the reason, before any query runs; in range, the same
handlers answer 200. On the real engine (chDB, migrated, read-only with the API's caps)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from schemas.definitions import load
from sinks.clickhouse import ddl
from sinks.clickhouse.client import ReadOnlyStore, Store, read_limits
from streams.web import api
from streams.web.routes import Context

REPORT_LIMITS = {  # report → (its other required parameters, the largest limit)
    "paths": ({}, 1000), "alerts": ({}, 10_000), "search": ({"q": "acme"}, 200),
    "scores": ({"account": "acme-corp"}, 20_000), "contacts": ({"account": "acme-corp"}, 10_000),
    "definitions-comparisons": ({}, 100),
}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("bounds") / "store"
    store = Store(f"chdb://{path}")
    ddl.migrate(store)
    handle = SimpleNamespace(reader=lambda: ReadOnlyStore(store, read_limits(30, 2048, 100_000)))
    yield Context(handle, SimpleNamespace(current=load()))
    store.close()


@pytest.mark.parametrize("name", sorted(REPORT_LIMITS))
def test_report_limits_out_of_range_are_a_400_with_the_reason(ctx: Context, name: str) -> None:
    params, high = REPORT_LIMITS[name]
    for bad in ("0", str(high + 1), "-1", "1e3", "", "9" * 5000, "²"):
        reply = asyncio.run(api.report(ctx, {**params, "limit": bad}, name=name))
        assert reply.status == 400, (name, bad, reply.value)
        assert reply.value["error"] == f"limit must be an integer between 1 and {high}", reply.value
    for good in ("1", str(high)):
        assert asyncio.run(api.report(ctx, {**params, "limit": good}, name=name)).status == 200, (name, good)


def test_timeline_limit_and_cursor_out_of_range_are_a_400_with_the_reason(ctx: Context) -> None:
    for bad in ("0", "100001", "-5", "ten", "9" * 5000, "²", "１０"):
        reply = asyncio.run(api.timeline(ctx, {"limit": bad}, account_id="acme-corp"))
        assert reply.status == 400 and reply.value == {"error": "limit must be an integer between 1 and 100000"}
    for bad in ("not-a-cursor", "yesterday|evt-1", "|evt-1"):
        reply = asyncio.run(api.timeline(ctx, {"after": bad}, account_id="acme-corp"))
        assert reply.status == 400 and reply.value["error"].startswith("after must be a cursor"), reply.value
    reply = asyncio.run(api.timeline(ctx, {"limit": "100000", "after": "2026-10-01T10:00:00.000Z|evt-1"},
                                     account_id="acme-corp"))
    assert reply.status == 200 and reply.value == {"account_id": "acme-corp", "events": []}
