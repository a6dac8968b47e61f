"""Faust's fixed start-up waits are gone from the worker (streams/faust_startup.py): the table
manager starts without its 1 s sleep, and the fetcher polls for its first assignment every
0.05 s instead of every second; a store's revocation collects garbage only when it closed a
database. Each measured on a restart (docs/benchmarks.md); here, what
each one does and that the worker's app uses them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.stores import rocksdb
from faust.transport.consumer import Consumer
from faust.types import TP

from streams import faust_startup
from streams.app import create_app
from streams.settings import Settings


def test_the_worker_app_uses_both(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, roles="stream"))
    assert isinstance(app.tables, faust_startup.PromptTableManager)
    assert Consumer._wait_next_records is faust_startup._wait_next_records
    assert rocksdb.Store.revoke_partitions is faust_startup._revoke_partitions


def test_the_table_manager_starts_without_sleeping() -> None:
    calls: list[str] = []

    async def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s")

    async def update_channels() -> None:
        calls.append("channels")

    async def recovery_start() -> None:
        calls.append("recovery")

    manager: Any = SimpleNamespace(should_stop=False, sleep=no_sleep, _update_channels=update_channels,
                                   recovery=SimpleNamespace(start=recovery_start))
    asyncio.run(faust_startup.PromptTableManager.on_start(manager))
    assert calls == ["channels", "recovery"]


def _consumer(active: set[Any], slept: list[float], fetched: list[float]) -> Any:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def getmany(active_partitions: set[Any], timeout: float) -> dict[Any, list[Any]]:
        fetched.append(timeout)
        return {tp: ["record"] for tp in active_partitions}

    return SimpleNamespace(flow_active=True, not_waiting_next_records=asyncio.Event(), app=SimpleNamespace(client_only=False),
                           _get_active_partitions=lambda: active, _getmany=getmany, sleep=sleep)


def test_without_an_assignment_the_fetcher_polls_every_50_ms() -> None:
    slept: list[float] = []
    fetched: list[float] = []
    records, active = asyncio.run(faust_startup._wait_next_records(_consumer(set(), slept, fetched), 1.0))
    assert (records, active, slept, fetched) == ({}, set(), [faust_startup.ASSIGNMENT_POLL_S], [])
    assert faust_startup.ASSIGNMENT_POLL_S < 1.0  # Faust's own: a second


def test_with_an_assignment_it_fetches_as_faust_does() -> None:
    slept: list[float] = []
    fetched: list[float] = []
    consumer = _consumer({"tp0"}, slept, fetched)
    records, active = asyncio.run(faust_startup._wait_next_records(consumer, 1.0))
    assert (records, active, slept, fetched) == ({"tp0": ["record"]}, {"tp0"}, [], [1.0])
    assert consumer.not_waiting_next_records.is_set()


def _store(dbs: dict[int, Any]) -> Any:
    return SimpleNamespace(_dbs=dbs, logger=SimpleNamespace(info=lambda *a: None))


def _table(topic: str) -> Any:
    return SimpleNamespace(changelog_topic=SimpleNamespace(topics={topic}))


def test_a_revocation_that_closes_nothing_does_not_collect(monkeypatch: Any) -> None:
    collected: list[int] = []
    monkeypatch.setattr(faust_startup.gc, "collect", lambda: collected.append(1))
    store = _store({0: "db0"})
    faust_startup._revoke_partitions(store, _table("t-changelog"), set())  # the first assignment
    faust_startup._revoke_partitions(store, _table("t-changelog"), {TP("other-changelog", 0), TP("t-changelog", 3)})
    assert (collected, store._dbs) == ([], {0: "db0"})


def test_a_revocation_that_closes_a_database_collects(monkeypatch: Any) -> None:
    collected: list[int] = []
    monkeypatch.setattr(faust_startup.gc, "collect", lambda: collected.append(1))
    store = _store({0: "db0", 1: "db1"})
    faust_startup._revoke_partitions(store, _table("t-changelog"), {TP("t-changelog", 0)})
    assert (collected, store._dbs) == ([1], {1: "db1"})
