"""The embedded engine's jemalloc gets its options before chDB is loaded (a fresh process each:
jemalloc reads them once per process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

OPEN_AND_READ = """
import sys
from sinks.clickhouse.client import Store
stats = Store("chdb://" + sys.argv[1]).query("SELECT stats FROM system.jemalloc_stats")[1][0][0]
print(next(line.strip() for line in stats.splitlines() if line.strip().startswith("opt.dirty_decay_ms")))
"""


def _decay(tmp_path: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "JE_MALLOC_CONF"}
    out = subprocess.run([sys.executable, "-c", OPEN_AND_READ, str(tmp_path / "store")], cwd=ROOT,
                         env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.strip()


def test_the_store_opens_chdb_with_freed_pages_returned_within_a_second(tmp_path: Path) -> None:
    assert _decay(tmp_path) == "opt.dirty_decay_ms: 1000 (arenas.dirty_decay_ms: 1000)"


def test_the_operators_je_malloc_conf_wins(tmp_path: Path) -> None:
    assert _decay(tmp_path, JE_MALLOC_CONF="dirty_decay_ms:2500") == \
        "opt.dirty_decay_ms: 2500 (arenas.dirty_decay_ms: 2500)"


def test_configure_changes_nothing_once_chdb_is_loaded(monkeypatch) -> None:
    from sinks.clickhouse import engine_malloc

    monkeypatch.delenv("JE_MALLOC_CONF", raising=False)
    monkeypatch.setitem(sys.modules, "chdb", sys.modules.get("chdb") or object())
    assert engine_malloc.configure() is None
    assert "JE_MALLOC_CONF" not in os.environ
