"""The journey stage in batches (``on_journey_events``): long, shuffled, redelivered journeys end
exactly as the in-order run, with at most one replay per batch."""

from __future__ import annotations

import random

import pytest

from streams.rules import journey as rules
from streams.rules.journey import new_journey, on_journey_event, on_journey_events
from tests.support import events as ev
from tests.unit.test_journey_rules import DEFS, entry, lead, opp


def long_journey(n: int, seed: int) -> list[dict]:
    """``n`` events of one account over ~n hours: pages, calls, lead and deal steps."""
    rng = random.Random(seed)
    out: list[dict] = []
    steps = iter([lead(n * 0.2, "mql"), lead(n * 0.3, "rejected", reason="timing"), lead(n * 0.5, "mql"),
                  lead(n * 0.55, "accepted"), opp(n * 0.7, "created"), opp(n * 0.95, "closed_won")])
    marks = sorted([n * 0.2, n * 0.3, n * 0.5, n * 0.55, n * 0.7, n * 0.95])
    for i in range(n - len(marks)):
        hour = i * (n / (n - len(marks))) + rng.random() * 0.5
        while marks and marks[0] <= hour:
            marks.pop(0)
            out.append(next(steps))
        who = rng.choice(["jane", "joe", "ann"])
        if rng.random() < 0.2:
            out.append(ev.call(hour, f"{who}@acme.com", account="acme", outcome=rng.choice(["connected", "meeting_held"])))
        else:
            out.append(ev.page(hour, user=who, path=rng.choice(["/", "/pricing", "/blog/x", "/docs"])))
    out.extend(steps)
    return out


def stored_after(batches: list[list], redeliver: float = 0.0, seed: int = 0) -> tuple[dict, dict]:
    """Apply the batches as the journey agent does; the store's view (newest record of a
    change id wins, retractions drop) and the final state. ``redeliver``: the chance that a
    batch's outputs are lost in a crash and the whole batch comes again."""
    rng = random.Random(seed)
    state, stored = new_journey(), {}
    for batch in batches:
        outcomes = on_journey_events(state, batch, "acme", DEFS)
        if rng.random() < redeliver:
            outcomes = on_journey_events(state, batch, "acme", DEFS)
            assert all(out.duplicate for _, out in outcomes)
        for _, out in outcomes:
            for change_id in out.retracted:
                stored.pop(change_id, None)
            stored.update((c.change_id, c) for c in out.stage_changes)
    return state, stored


def as_stored(stored: dict) -> list[tuple]:
    return sorted((c.change_id, c.from_stage, c.to_stage, c.at_ms) for c in stored.values())


def chunks(items: list, rng: random.Random, most: int) -> list[list]:
    out, i = [], 0
    while i < len(items):
        n = rng.randint(1, most)
        out.append(items[i:i + n])
        i += n
    return out


@pytest.mark.parametrize("seed", range(4))
def test_a_long_shuffled_journey_in_random_batches_ends_as_the_in_order_run(seed: int) -> None:
    events = [entry(e) for e in long_journey(300, seed)]
    in_order_state, in_order = stored_after([[e] for e in sorted(events, key=lambda e: e.event_time)])
    assert [c.to_stage for c in sorted(in_order.values(), key=lambda c: c.at_ms)][-1] == "won"
    rng = random.Random(seed)
    # late within a bounded window (the history keeps HISTORY_MAX facts): shuffle blocks of 40
    shuffled = [e for block in chunks(events, rng, 40) for e in rng.sample(block, len(block))]
    state, stored = stored_after(chunks(shuffled, rng, 60), redeliver=0.3, seed=seed)
    assert as_stored(stored) == as_stored(in_order)
    assert state["stage"] == in_order_state["stage"] == "won"
    assert state["engagement"] == pytest.approx(in_order_state["engagement"], rel=1e-9)
    assert state["seq"] == in_order_state["seq"] == len(events)


def test_a_batch_costs_at_most_one_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [entry(e) for e in long_journey(200, 7)]
    calls: list[int] = []
    real = rules._replay
    monkeypatch.setattr(rules, "_replay", lambda state, late, *a: calls.append(len(late)) or real(state, late, *a))
    state = new_journey()
    on_journey_events(state, events[100:], "acme", DEFS)
    on_journey_events(state, list(reversed(events[:100])), "acme", DEFS)  # all 100 late, in reverse
    assert calls == [100]
    one_by_one = new_journey()
    for e in events[100:] + list(reversed(events[:100])):
        on_journey_event(one_by_one, e, "acme", DEFS)
    assert state["stage"] == one_by_one["stage"]
    assert state["history"] == one_by_one["history"]


def test_then_sees_every_event_once_in_the_order_applied_with_the_newest_time_before_it() -> None:
    a, b, c = (entry(ev.page(h, user="jane")) for h in (1, 2, 3))
    state = new_journey()
    on_journey_events(state, [c], "acme", DEFS)
    seen: list[tuple[str, bool, int]] = []
    on_journey_events(state, [b, c, a, b], "acme", DEFS,
                      then=lambda e, out, newest: seen.append((e.event_id, out.duplicate, newest)))
    newest = rules.utc_ms(c.event_time)
    assert seen == [(c.event_id, True, newest), (a.event_id, False, newest), (b.event_id, False, newest)]
    assert [f[1] for f in state["history"]] == [a.event_id, b.event_id, c.event_id]


def test_remembered_facts_replay_without_the_model_and_keep_what_the_rules_read() -> None:
    e = entry({**ev.identify(1, None, "jane", email="jane@acme.com"),
               "traits": {"title": "VP Marketing", "email": "jane@acme.com", "secret": "x" * 1000}})
    fact = rules.Fact(rules._fact(e), e.event_id)
    assert fact.event_id == e.event_id and fact.event_type == "identify" and fact.person_id == e.person_id
    assert fact.properties == {"title": "VP Marketing"}  # only the properties the rules read


def test_facts_written_before_the_compact_form_still_replay() -> None:
    e = entry(lead(1, "mql"))
    old = {**{f: getattr(e, f) for f in rules._FACT_FIELDS}, "properties": {"status": "mql"}}  # the dict form
    fact = rules.Fact(old, e.event_id)
    new = rules.Fact(rules._fact(e), e.event_id)
    assert all(getattr(fact, f) == getattr(new, f) for f in rules._FACT_FIELDS)
    assert fact.properties["status"] == new.properties["status"] == "mql"
