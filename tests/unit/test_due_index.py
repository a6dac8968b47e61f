"""The timer's index of due accounts (streams.rules.alerts.DueIndex)."""

from __future__ import annotations

from streams.rules.alerts import DueIndex


def test_only_accounts_due_by_now_are_ticked() -> None:
    index = DueIndex()
    index.note("acme", 1_000)
    index.note("globex", 5_000)
    index.note("initech", 0)  # nothing pending: not kept
    assert len(index) == 2
    assert index.due(999) == []
    assert index.due(1_000) == ["acme"]
    assert sorted(index.due(10_000)) == ["acme", "globex"]


def test_a_new_due_time_replaces_the_old_and_zero_removes_it() -> None:
    index = DueIndex()
    index.note("acme", 1_000)
    index.note("acme", 9_000)  # the tick fired its rule; the next one is later
    assert index.due(5_000) == []
    index.note("acme", 0)
    assert len(index) == 0 and index.due(10_000) == []
    index.note("acme", 1_000)
    index.clear()  # a rebalance: rebuilt from the table
    assert index.due(10_000) == []
