"""The worker's glibc settings do what they say (each case runs in a fresh interpreter: mallopt is
process-wide and one-way)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streams.malloc import glibc_usage

pytestmark = pytest.mark.skipif(not glibc_usage(), reason="needs glibc >= 2.33 (mallinfo2)")

PROBE = """
import sys
from streams.malloc import _Mallinfo2, _libc, set_mmap_threshold
print(set_mmap_threshold(int(sys.argv[1])))
info = _libc().mallinfo2
info.restype = _Mallinfo2
before = info().hblkhd
blocks = [bytearray(20 * 1024) for _ in range(50)]  # 20 KiB each: under glibc's default threshold
print(info().hblkhd - before)
del blocks
print(info().hblkhd - before)
"""


def probe(kib: int) -> tuple[str, int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(kib)], check=True, capture_output=True, text=True)
    applied, held, after = out.stdout.split()
    return applied, int(held), int(after)


def test_blocks_over_the_threshold_are_mapped_and_returned_when_freed():
    applied, held, after = probe(16)
    assert applied == "True"
    assert held >= 50 * 20 * 1024  # each block has its own mapping...
    assert after <= 0  # ...and gives it back when freed


def test_zero_leaves_glibcs_default():
    applied, held, _ = probe(0)
    assert applied == "False"
    assert held < 20 * 1024  # 20 KiB blocks come from the heap
