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
    gc_tuning.tune()

    class Node:
        other: Any = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone: list[int] = []
    ref = weakref.ref(a, lambda _: gone.append(1))
    del a, b
    gc.collect()
    assert ref() is None and gone == [1]
