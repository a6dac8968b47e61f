"""The guard of the batch steps (``streams.steps.run_batch``): a key whose handling raises is
rolled back and handled again one record at a time; only the failing record is dead-lettered."""

from __future__ import annotations

import copy
from typing import Any

from streams.steps import Outbox, Record, States, run_batch


class Counting:
    """A step that adds each record's number to its key's total; the record b"bad" raises."""

    name = "counting"

    def group(self, records: Any, out: Outbox) -> dict[str, list[tuple[Any, ...]]]:
        groups: dict[str, list[tuple[Any, ...]]] = {}
        for record in records:
            groups.setdefault(record.key.decode(), []).append((record,))
        return groups

    def handle(self, key: str, items: list[tuple[Any, ...]], states: States, out: Outbox) -> None:
        state = states.get(key) or {"total": 0}
        for (record,) in items:
            state["total"] += 1  # mutated before the check: a failure leaves it half-done
            if record.value == b"bad":
                raise ValueError("bad record")
            state["total"] += int(record.value) - 1
            out.add("next", record.key, record.value)
        states.put(key, state, items[-1][0])


def test_only_the_failing_record_is_dead_lettered_and_the_state_is_as_without_it() -> None:
    table = {"a": {"total": 100}}
    records = [Record("in", b"a", v, offset=i) for i, v in enumerate([b"1", b"bad", b"2"])] + [
        Record("in", b"b", b"5", offset=3)]
    out, states = Outbox(), States(lambda key: copy.deepcopy(table.get(key)))  # as a table deserialises
    run_batch(Counting(), records, states, out, "dlq")
    written = {key: value for key, value, _ in states.written()}
    assert written == {"a": {"total": 103}, "b": {"total": 5}}
    assert [(t, v) for t, _, v, _ in out.items] == [("next", b"1"), ("dlq", b"bad"), ("next", b"2"), ("next", b"5")]
    headers = dict(out.items[1][3] or [])
    assert headers["journeys.dlq.stage"] == b"counting" and b"bad record" in headers["journeys.dlq.reasons"]
    assert table == {"a": {"total": 100}}  # the table itself is written by the runner, after the batch


def test_a_key_read_once_per_batch() -> None:
    reads: list[str] = []
    states = States(lambda key: reads.append(key) or None)
    run_batch(Counting(), [Record("in", b"k", b"1"), Record("in", b"k", b"1")], states, Outbox(), "dlq")
    assert reads == ["k"]
