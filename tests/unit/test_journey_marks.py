"""Replays from a mark (a checkpoint near the end of the history) give exactly what replays from
the base give: the same outputs for every batch and the same journey, whatever the lateness,
batching and evictions (a long journey in a short history)."""

from __future__ import annotations

import copy
import random

import pytest

import streams.rules.journey as journey
from streams.rules.journey import new_journey, on_journey_events
from tests.support import events as ev
from tests.unit.test_journey_rules import DEFS, entry, lead, opp


def long_journey(rng: random.Random, n: int) -> list[dict]:
    """n events of one account over ~60 days: pages of several people, identifies with titles,
    webinars, calls, lead status changes (MQL, rejection, recycle) and an opportunity."""
    people = [f"user-{i}" for i in range(6)]
    out: list[dict] = []
    for i in range(n):
        hours = rng.uniform(0, 24 * 60)
        who = rng.choice(people)
        kind = rng.random()
        if kind < 0.55:
            out.append(ev.page(hours, user=who, path=rng.choice(["/", "/pricing", "/blog/x", "/compare"])))
        elif kind < 0.65:
            out.append(ev.identify(hours, None, who, f"{who}@acme.com",
                                   title=rng.choice(["VP Marketing", "Engineer", "CFO", "Student"])))
        elif kind < 0.75:
            out.append({**ev.page(hours, user=who), "type": "track", "event": "Webinar Attended"})
            out[-1].pop("name")
        elif kind < 0.85:
            out.append(ev.call(hours, f"{who}@acme.com", account="acme", rep=rng.choice(["rep-sam", "rep-ann"])))
        elif kind < 0.95:
            status = rng.choice(["mql", "accepted", "rejected", "recycled"])
            out.append(lead(hours, status, **({"reason": "not now"} if status == "rejected" else {})))
        else:
            out.append(opp(hours, rng.choice(["created", "stage_changed", "closed_won", "closed_lost"])))
    return out


def deliver(events: list, rng: random.Random) -> list[list]:
    """The events in batches of 1–12, each batch taken from near the front of what is left (a few
    events late, some very late), as a stage sees an account's events arrive."""
    pending = sorted(events, key=lambda e: e.event_time)
    batches = []
    while pending:
        size = min(len(pending), rng.randint(1, 12))
        batch = []
        for _ in range(size):
            reach = 40 if rng.random() < 0.1 else 6
            batch.append(pending.pop(rng.randrange(min(reach, len(pending)))))
        batches.append(batch)
    return batches


def run(batches: list[list], lag: int | None, monkeypatch: pytest.MonkeyPatch) -> tuple[list, dict, int]:
    monkeypatch.setattr(journey, "MARK_LAG", lag)
    state, outputs, from_mark = new_journey(), [], 0
    used = journey._usable_mark

    def counting(st, after):
        nonlocal from_mark
        mark = used(st, after)
        from_mark += mark is not None
        return mark

    monkeypatch.setattr(journey, "_usable_mark", counting)
    for batch in batches:
        for e, out in on_journey_events(state, batch, "acme", DEFS):
            outputs.append((e.event_id, [c.__dict__ for c in out.stage_changes], sorted(out.retracted),
                            out.score, out.duplicate))
    monkeypatch.setattr(journey, "_usable_mark", used)
    return outputs, {k: v for k, v in state.items() if k != "mark"}, from_mark


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("history_max", [20, 150])
def test_replays_from_marks_equal_replays_from_the_base(seed: int, history_max: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journey, "HISTORY_MAX", history_max)
    monkeypatch.setattr(journey, "MARK_MIN_HISTORY", 10)
    rng = random.Random(seed)
    events = [entry(e) for e in long_journey(rng, 400)]
    events += [copy.copy(e) for e in rng.sample(events, 20)]  # redeliveries
    batches = deliver(events, rng)
    full, full_state, none_used = run(batches, None, monkeypatch)
    marked, marked_state, used = run(batches, 5, monkeypatch)
    assert none_used == 0 and used > 10, "the marks were used"
    assert marked == full
    assert marked_state == full_state


def test_a_mark_made_stale_by_a_fact_before_it_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journey, "MARK_LAG", 3)
    monkeypatch.setattr(journey, "MARK_MIN_HISTORY", 5)
    state = new_journey()
    events = [entry(ev.page(h, user="jane", path="/pricing")) for h in range(1, 12)]
    on_journey_events(state, events[:10], "acme", DEFS)
    on_journey_events(state, [events[10]], "acme", DEFS)
    on_journey_events(state, [entry(ev.page(9.5, user="jane"))], "acme", DEFS)  # a replay: leaves a mark
    assert state["mark"][0] == len(state["history"]) - 3
    early = entry(ev.page(0.5, user="jane"))  # sorts before the mark's facts
    assert journey._usable_mark(state, (journey.utc_ms(early.event_time), early.event_id)) is None
    late = entry(ev.page(11.5, user="jane"))
    assert journey._usable_mark(state, (journey.utc_ms(late.event_time), late.event_id)) is not None


def test_short_journeys_keep_no_mark() -> None:
    state = new_journey()
    events = [entry(ev.page(h, user="jane", path="/pricing")) for h in range(1, 40)]
    on_journey_events(state, events[:-1], "acme", DEFS)
    on_journey_events(state, [entry(ev.page(30.5, user="jane"))], "acme", DEFS)  # a replay of 40 facts
    assert "mark" not in state and len(state["history"]) < journey.MARK_MIN_HISTORY
