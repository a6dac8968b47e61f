"""Faust tables of the stream stages, declared one way, with bounded RocksDB memory.

Every table partition is its own RocksDB database, and Faust's defaults are sized for one big
table on a big machine: 64 MiB write buffers (×3) and a 2 GiB block cache *per database*. With
five tables × the partitions a worker holds, a worker's memory kept climbing by ~180 MB per
10 minutes under a steady half-benchmark load (`make soak`) as the buffers filled. The
settings below cap each database (``JOURNEYS_TABLE_WRITE_BUFFER_MB``,
``JOURNEYS_TABLE_BLOCK_CACHE_MB``); see docs/operations.md, "Sizing".
"""

from __future__ import annotations

from typing import Any

import faust

MIB = 1024 * 1024


def rocksdb_options(settings: Any) -> dict[str, int]:
    """RocksDB options for every table partition (ignored by the memory:// store)."""
    return {
        "write_buffer_size": int(settings.table_write_buffer_mb * MIB),
        "max_write_buffer_number": 2,
        "block_cache_size": int(settings.table_block_cache_mb * MIB),
        "block_cache_compressed_size": int(settings.table_block_cache_mb * MIB),
    }


def table(app: faust.App, settings: Any, name: str, help: str) -> faust.TableT:
    """A changelogged table keyed by ``str`` (values: JSON-able dicts, ``None`` when absent)."""
    options = rocksdb_options(settings) if settings.table_store.startswith("rocksdb") else None
    return app.Table(name, default=None, partitions=settings.topic_partitions, key_type=str, help=help,
                     options=options)
