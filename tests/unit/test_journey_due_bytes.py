"""A journey state's due time read from the start of its stored bytes (streams.steps.journey.due_ms_of):
the timer index is refilled from the table after every rebalance without parsing each state."""

from __future__ import annotations

import random

import orjson
import pytest

from schemas.definitions import load
from streams.steps import Names, States
from streams.steps.journey import Journey, due_ms_of


def test_the_due_time_is_read_from_the_bytes_start_or_from_the_whole_state() -> None:
    rng = random.Random(3)
    for _ in range(2_000):
        due = rng.choice([0, 1, 1_767_225_600_000, rng.randrange(10**13)])
        rest = {"stage": "mql", "base": {"due_ms": 5, "facts": [[1, "x"]]}, "n": rng.random()}
        first = orjson.dumps({"due_ms": due, **rest})
        assert first.startswith(b'{"due_ms":')
        assert due_ms_of(first) == due
        anywhere = orjson.dumps({**rest, "due_ms": due})  # a nested due_ms comes first: not it
        assert due_ms_of(anywhere) == due
    assert due_ms_of(orjson.dumps({"stage": "mql"})) == 0  # no due time kept
    assert due_ms_of(b'{"due_ms":null,"stage":"x"}') == 0  # not an integer: parsed whole
    with pytest.raises(orjson.JSONDecodeError):
        due_ms_of(b'{"due_ms":12')  # cut short: not a state


def test_the_journey_stage_writes_the_due_time_first() -> None:
    step = Journey(Names.with_prefix(""), load())
    states = States(lambda key: None)
    state = {"stage_rank": 0, "facts": [], "due_ms": 7, "x": 1}
    step.written(states, "acme", state, None)
    assert next(iter(state)) == "due_ms" and list(state)[1:] == ["stage_rank", "facts", "x"]
    raw = orjson.dumps(state)
    assert due_ms_of(raw) == state["due_ms"] == orjson.loads(raw)["due_ms"]
