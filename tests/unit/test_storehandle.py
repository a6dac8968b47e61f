"""The store handle's reader on the embedded store: a session of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.storehandle import StoreHandle


def test_a_write_refused_through_the_reader_leaves_the_writer_writing(tmp_path: Path) -> None:
    handle = StoreHandle(f"chdb://{tmp_path}/store")
    try:
        writer, reader = handle.get(), handle.reader()
        writer.command("CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x")
        with pytest.raises(Exception, match="readonly"):
            reader.query("INSERT INTO t VALUES (1)")  # refused by ClickHouse (error 164)
        writer.insert("t", [(2,)], ["x"])  # before: error 164 here and on every later insert
        assert reader.query("SELECT x FROM t")[1] == [(2,)]  # the reader sees the writer's rows
        assert handle.reader().query("SELECT count() FROM t")[1] == [(1,)]  # one reader session, reused
    finally:
        handle.close()


def test_closing_the_reader_session_first_keeps_the_store_usable(tmp_path: Path) -> None:
    handle = StoreHandle(f"chdb://{tmp_path}/store")
    handle.reader().query("SELECT 1")
    handle.close()
    again = StoreHandle(f"chdb://{tmp_path}/store")
    try:
        again.get().command("CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = MergeTree ORDER BY x")
        again.get().insert("t", [(1,)], ["x"])
        assert again.reader().query("SELECT count() FROM t")[1] == [(1,)]
    finally:
        again.close()
