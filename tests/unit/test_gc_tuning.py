"""The worker's collector settings (streams/gc_tuning.py; measured in docs/benchmarks.md):
what is alive when the app is built is frozen, and the young generation waits for far more
allocations than CPython's 700 — while cycles made afterwards are still collected."""

from __future__ import annotations

import gc
import weakref
from typing import Any, Iterator

import pytest

from streams import gc_tuning


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_freezes_what_is_alive_and_raises_the_thresholds(restored: None) -> None:
    alive = [object(), {"a": [1]}]
    gc_tuning.tune()
    assert gc.get_freeze_count() > 1000  # the modules, the app: not walked by any collection again
    assert gc.get_threshold() == (gc_tuning.GEN0_THRESHOLD, gc_tuning.GEN1_THRESHOLD, gc_tuning.GEN2_THRESHOLD)
    assert gc.get_threshold()[0] > 700
    assert not any(o is alive for o in gc.get_objects())  # frozen: in no generation a collection walks
    del alive


def test_cycles_made_after_tuning_are_still_collected(restored: None) -> None:
    """Without an explicit ``gc.collect()``: the collector still runs on its own once enough
    containers were allocated (it would not if tuning disabled it or set a zero threshold)."""
    gc_tuning.tune()

    class Node:
        other: Any = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone: list[int] = []
    ref = weakref.ref(a, lambda _: gone.append(1))
    del a, b
    kept = [[i] for i in range(3 * gc_tuning.GEN0_THRESHOLD)]  # net allocations: young collections run
    assert ref() is None and gone == [1]
    del kept


def test_a_command_gets_the_thresholds_for_its_block_only(restored: None) -> None:
    gc.set_threshold(700, 10, 10)
    with gc_tuning.fewer_collections():
        assert gc.get_threshold() == (gc_tuning.GEN0_THRESHOLD, gc_tuning.GEN1_THRESHOLD, gc_tuning.GEN2_THRESHOLD)
        assert gc.get_freeze_count() == 0  # nothing frozen: the process outlives the command
    assert gc.get_threshold() == (700, 10, 10)


def test_the_import_command_runs_with_fewer_collections(monkeypatch: Any, tmp_path: Any) -> None:
    """``journeys import`` produces under :func:`gc_tuning.fewer_collections` (seen from inside
    the import's work), and the process's thresholds are back afterwards."""
    from click.testing import CliRunner

    from streams.cli import importing, ingest_commands
    from streams.settings import Settings

    seen: list[tuple[int, int, int]] = []

    def fake_import(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold())
        raise importing.KafkaError("no broker in this test")

    monkeypatch.setattr(importing, "run_import", fake_import)
    monkeypatch.setattr("streams.admin.ensure_topics", lambda settings: None)
    monkeypatch.setattr(ingest_commands, "settings_of", lambda ctx: Settings(data_dir=tmp_path))
    events = tmp_path / "e.ndjson"
    events.write_bytes(b'{"type": "track", "event": "x", "anonymousId": "a"}\n')
    before = gc.get_threshold()
    result = CliRunner().invoke(ingest_commands.import_file, [str(events)])
    assert seen == [(gc_tuning.GEN0_THRESHOLD, gc_tuning.GEN1_THRESHOLD, gc_tuning.GEN2_THRESHOLD)], result.output + repr(result.exception)
    assert gc.get_threshold() == before
