"""Every API, UI and CLI read on the store runs under a time and a memory cap (issue #20: with
the embedded store a read holds the writer's connection, so an unbounded one stalls inserts).
On the real engine (chDB): a read over the cap stops with an error that names the setting."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sinks.clickhouse.client import QueryLimitExceeded, ReadOnlyStore, Store, read_limits


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("limits") / "store"
    s = Store(f"chdb://{path}")
    yield s
    s.close()


def test_a_read_past_its_time_cap_stops_and_says_which_setting(store: Store) -> None:
    reader = ReadOnlyStore(store, read_limits(0.5, 2048))
    began = time.monotonic()
    with pytest.raises(QueryLimitExceeded, match="JOURNEYS_API_QUERY_SECONDS=0.5"):
        reader.query("SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 1")
    assert time.monotonic() - began < 20  # stopped by the cap, not run to the end
    assert reader.query("SELECT 1")[1] == [(1,)]  # and the connection goes on


def test_a_read_past_its_memory_cap_stops_and_says_so(store: Store) -> None:
    reader = ReadOnlyStore(store, read_limits(30, 16))
    with pytest.raises(QueryLimitExceeded, match="more memory"):
        reader.query("SELECT length(groupArray(toString(number))) FROM numbers(50000000)")


def test_other_errors_stay_what_they_are_and_reads_stay_read_only(store: Store) -> None:
    reader = ReadOnlyStore(store, read_limits(30, 2048))
    with pytest.raises(Exception) as info:
        reader.query("SELECT * FROM no_such_table")
    assert not isinstance(info.value, QueryLimitExceeded)
    with pytest.raises(Exception, match="readonly|Cannot execute query in readonly mode"):
        reader.query("CREATE TABLE x (a UInt8) ENGINE = Memory")


def test_the_api_answers_a_capped_read_with_a_503_that_says_why(store: Store) -> None:
    import asyncio

    from faust.web.exceptions import ServiceUnavailable

    from streams.web import api

    class Handle:
        def reader(self) -> ReadOnlyStore:
            return ReadOnlyStore(store, read_limits(0.5, 2048))

    slow = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 1"
    with pytest.raises(ServiceUnavailable) as info:
        asyncio.run(api.read(Handle(), lambda reader: reader.query(slow)))
    assert info.value.code == 503 and "JOURNEYS_API_QUERY_SECONDS" in info.value.detail
    assert asyncio.run(api.read(Handle(), lambda reader: reader.query("SELECT 2")))[1] == [(2,)]


def test_a_read_answering_more_rows_than_its_cap_fails_and_says_so_never_cut_short(store: Store) -> None:
    reader = ReadOnlyStore(store, read_limits(30, 2048, 1000))
    with pytest.raises(QueryLimitExceeded, match="more than its result limit.*JOURNEYS_API_QUERY_ROWS=1000"):
        reader.query("SELECT number FROM numbers(1001)")
    assert len(reader.query("SELECT number FROM numbers(1000)")[1]) == 1000
    assert reader.query("SELECT count() FROM numbers(5000)")[1] == [(5000,)]  # rows read are not capped


def test_the_api_caps_come_from_the_settings(tmp_path: Path) -> None:
    from streams.settings import Settings
    from streams.web.serve import ReaderHandle

    limits = ReaderHandle(Settings(api_query_rows=250_000, api_query_memory_mb=64, api_query_seconds=5,
                                   clickhouse_url=f"chdb://{tmp_path / 'never-opened'}")).limits
    assert limits["max_result_rows"] == 250_000 and limits["result_overflow_mode"] == "throw"
    assert limits["max_memory_usage"] == 64 * 1024**2 and limits["max_execution_time"] == 5
