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


def test_a_refill_from_the_table_never_overrides_what_the_stage_noted_meanwhile() -> None:
    """The table is walked as it was when the refill began: a state the stage wrote since then
    is newer than the one the walk reads."""
    index = DueIndex()
    index.note("stale", 1_000)
    refill = index.refill()
    assert index.due(10_000) == []  # emptied at once
    index.note("acme", 7_000)  # the stage: an MQL now waits for its hand-off
    index.note("globex", 0)  # the stage: globex's pending rule was settled
    index.restore("acme", 0)  # the walk: acme as it was, nothing due — older than the note
    index.restore("globex", 2_000)  # older too
    index.restore("initech", 3_000)  # not written meanwhile: the walk's is the newest
    index.restore("umbrella", 0)
    index.refilled(refill)
    assert sorted(index.due(10_000)) == ["acme", "initech"]
    index.restore("globex", 2_000)  # outside a refill, a restore is a plain note
    assert sorted(index.due(10_000)) == ["acme", "globex", "initech"]


def test_a_cancelled_refill_does_not_end_the_one_that_replaced_it() -> None:
    """A second rebalance cancels the first refill; the cancelled walk still runs its ``finally``
    (``refilled``) after the new refill began: the new one must go on keeping the stage's notes."""
    index = DueIndex()
    first = index.refill()
    second = index.refill()
    index.refilled(first)  # the cancelled walk ends
    index.note("acme", 7_000)  # the stage, during the second refill
    index.restore("acme", 0)  # the second walk's older read
    index.refilled(second)
    assert index.due(10_000) == ["acme"]
