"""First receipt wins (streams/rules/dedupe.py, bug B4): which receipts of an id go on."""

from __future__ import annotations

from streams.rules.dedupe import expired, new_receipt, passes


def test_the_first_receipt_goes_on_and_a_re_send_stops():
    assert passes(None, "in/0@5")
    first = new_receipt("in/0@5", now_ms=1_000)
    assert not passes(first, "in/1@9")  # the same id in another inbound record: a re-send
    assert not passes(first, "collector/0@5")


def test_the_same_record_read_again_after_a_crash_goes_on_again():
    first = new_receipt("in/0@5", now_ms=1_000)
    assert passes(first, "in/0@5")  # its effects may have been lost in the crash: redo them


def test_ids_are_forgotten_after_the_retention():
    items = [("old", new_receipt("a", 1_000)), ("new", new_receipt("b", 5_000)), ("gone", None)]
    assert list(expired(items, cutoff_ms=2_000)) == ["old"]
    assert list(expired(items, cutoff_ms=1_000)) == []
