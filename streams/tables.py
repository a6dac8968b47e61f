"""Faust tables of the stream stages, declared one way, with one memory budget for RocksDB.

Every table partition is its own RocksDB database, and Faust sizes each one for a big machine:
64 MiB write buffers (×3) and a 2 GiB block cache *per database*. A worker holds five tables ×
its partitions, so its memory kept climbing under a steady load (``make soak``) as the buffers
and caches of each database filled. Capping them per database only moved the ceiling (still
≈ 16 MiB × databases, reached after hours).

Here, as Kafka Streams' ``BoundedMemoryRocksDBConfig`` does, every database of the process
shares **one** LRU block cache, and memtables are charged to that same cache through one
write-buffer manager, so RocksDB's memory is capped by a single figure whatever the number of
partitions: ``JOURNEYS_TABLE_MEMORY_MB`` (index and filter blocks are cached there too).
``journeys_table_memory_bytes`` (``/metrics``) shows the usage; docs/operations.md, "Sizing".
"""

from __future__ import annotations

import threading
from typing import Any

import faust
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb

MIB = 1024 * 1024
DEFAULT_MEMORY_BYTES = 64 * MIB
"""The budget of a process whose first table names none (the setting's default is the same)."""
SCHEME = "rocksdb+bounded"
"""The store URL scheme of :class:`BoundedRocksDBStore` (registered with Faust below)."""


class SharedMemory:
    """The process's one block cache and write-buffer manager (created on first use)."""

    _lock = threading.Lock()
    _made: tuple[Any, Any, int] | None = None

    @classmethod
    def get(cls, total_bytes: int) -> tuple[Any, Any]:
        import rocksdict

        with cls._lock:
            if cls._made is None:
                cache = rocksdict.Cache(total_bytes)
                # memtables may use half the budget; their memory counts against the cache
                wbm = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(total_bytes // 2, False, cache)
                cls._made = (cache, wbm, total_bytes)
            elif cls._made[2] != total_bytes:  # one setting per process: a second would not be honoured
                raise ValueError(f"the tables' RocksDB budget is already {cls._made[2]} bytes in this "
                                 f"process; {total_bytes} asked (one JOURNEYS_TABLE_MEMORY_MB per process)")
            return cls._made[0], cls._made[1]

    @classmethod
    def budget(cls, default: int) -> int:
        """The process's budget once set (a table without its own shares it), else ``default``."""
        with cls._lock:
            return cls._made[2] if cls._made is not None else default

    @classmethod
    def usage(cls) -> dict[str, int]:
        """Bytes in use: ``cache`` (blocks + memtables charged to it), ``memtables``, ``pinned``."""
        if cls._made is None:
            return {}
        cache, wbm, _ = cls._made
        return {"cache": int(cache.get_usage()), "memtables": int(wbm.get_usage()),
                "pinned": int(cache.get_pinned_usage())}


class BoundedRocksDBOptions(faust_rocksdb.RocksDBOptions):
    """Faust's rocksdict options, with the shared cache and write-buffer manager."""

    def as_options(self) -> Any:
        import rocksdict

        cache, wbm = SharedMemory.get(int(self.extra_options["memory_bytes"]))
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(wbm)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(cache)
        table.set_cache_index_and_filter_blocks(True)  # table readers' memory is in the budget too
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class BoundedRocksDBStore(faust_rocksdb.Store):
    """Faust's RocksDB store (rocksdict driver) on :class:`BoundedRocksDBOptions`."""

    def __init__(self, url: Any, app: faust.App, table: Any, **kwargs: Any) -> None:
        options = dict(kwargs.pop("options", None) or {})
        if "memory_bytes" not in options:  # e.g. a table declared without tables.table(): share the budget
            options["memory_bytes"] = SharedMemory.budget(DEFAULT_MEMORY_BYTES)
        super().__init__(url, app, table, options=dict(options, driver="rocksdict"), **kwargs)
        self.rocksdb_options = BoundedRocksDBOptions(**{k: v for k, v in options.items() if k != "driver"},
                                                     use_rocksdict=True)


STORES.aliases.setdefault(SCHEME, f"{__name__}:BoundedRocksDBStore")


def store_url(settings: Any, name: str) -> str:
    """Table ``name``'s store: any ``rocksdb:`` URL becomes the bounded store; others as given.

    The table name is the URL's path (a bare ``scheme:`` URL is falsy to yarl, and Faust would
    fall back to the app's store), so partition directories keep Faust's names (``journeys-0``…).
    """
    url = settings.table_store
    if not url.startswith("rocksdb:"):
        return url
    return f"{SCHEME}:{name}" if name else f"{SCHEME}://"  # the app's default: Faust appends the name


def rocksdb_options(settings: Any) -> dict[str, int]:
    """Options of every table partition's database (the bounded store only)."""
    return {
        "write_buffer_size": int(settings.table_write_buffer_mb * MIB),
        "max_write_buffer_number": 2,
        "memory_bytes": int(settings.table_memory_mb * MIB),
    }


def table(app: faust.App, settings: Any, name: str, help: str) -> faust.TableT:
    """A changelogged table keyed by ``str`` (values: JSON-able dicts, ``None`` when absent)."""
    url = store_url(settings, name)
    options = rocksdb_options(settings) if url.startswith(SCHEME) else None
    return app.Table(name, default=None, partitions=settings.topic_partitions, key_type=str, help=help,
                     store=url, options=options)
