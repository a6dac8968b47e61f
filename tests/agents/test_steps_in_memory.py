"""The stream steps through the in-memory runner (``streams.steps.memory``): the same steps the
Faust agents run, batch for batch, on lists and dicts — whole journeys, shuffles, poison
records, redeliveries, without a broker."""

from __future__ import annotations

import copy
import random
from datetime import datetime, timedelta, timezone
from collections import Counter

import orjson
import pytest

from bench.synth import SynthConfig, generate
from schemas.definitions import load
from schemas.journey import JourneyUpdate
from schemas.timeline import TimelineEvent
from schemas.decode import decode
from schemas.errors import InvalidEvent
from streams.cli.demo import expected_outcome, sample_lines
from streams.settings import Settings
from streams.steps import Outbox, Record, States, run_batch
from streams.steps.memory import MemoryRunner
from tests.support import events as ev

DEFS = load()


def _valid(line: bytes) -> bool:
    try:
        decode(line, received_at=datetime.now(timezone.utc), max_future=timedelta(days=3650))
        return True
    except InvalidEvent:
        return False


def stored(runner: MemoryRunner) -> dict[str, TimelineEvent]:
    """What the store would keep of the timeline topic: one row per event id, replays aside."""
    rows: dict[str, TimelineEvent] = {}
    for record in runner.records(runner.names.timeline):
        try:
            entry = TimelineEvent.from_bytes(record.value)
        except ValueError:  # not ours: the store dead-letters it
            continue
        if not entry.replay:
            rows.setdefault(entry.event_id, entry)
    return rows


def stage_changes(runner: MemoryRunner) -> dict[str, list[str]]:
    """account → stages reached, as the store keeps them (newest record per change id,
    retractions drop)."""
    changes: dict[str, tuple] = {}
    for record in runner.records(runner.names.journey_updates):
        update = JourneyUpdate.model_validate_json(record.value)
        for gone in update.retracted_changes:
            changes.pop(gone, None)
        for c in update.stage_changes:
            changes[c.change_id] = (c.account_id, c.at, c.to_stage)
    out: dict[str, list[str]] = {}
    for account, _, stage in sorted(changes.values()):
        out.setdefault(account, []).append(stage)
    return out


def test_the_demo_through_the_steps_stores_every_event_once_and_reaches_its_stages() -> None:
    lines = sample_lines()
    runner = MemoryRunner(DEFS, partitions=4, batch_size=50)
    runner.feed(lines + lines[:20])  # twenty re-sends: the dedupe step stops them
    runner.run()
    valid, invalid = expected_outcome(lines, Settings())
    rows = stored(runner)
    replays = [r for r in runner.records(runner.names.timeline) if TimelineEvent.from_bytes(r.value).replay]
    assert len(rows) == len(runner.records(runner.names.timeline)) - len(replays)  # each event once
    assert set(rows) == valid
    assert len(runner.records(runner.names.inbound_dlq)) == invalid + sum(
        1 for line in lines[:20] if not _valid(line))  # re-sent invalid lines: again
    reached = stage_changes(runner)
    assert reached and any("mql" in stages for stages in reached.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_partitions_and_batches_store_the_same_events_and_end_in_the_same_journeys(seed: int) -> None:
    lines = [orjson.dumps(s.obj) for s, _ in zip(generate(SynthConfig(events=1500, seed=seed)), range(1500))]
    in_order = MemoryRunner(DEFS, partitions=1, batch_size=1)
    in_order.feed(lines)
    in_order.run()
    shuffled = MemoryRunner(DEFS, partitions=4, batch_size=97, shuffle=seed)
    shuffled.feed(lines)
    shuffled.run()
    assert set(stored(shuffled)) == set(stored(in_order)) and len(stored(in_order)) == 1500
    # the journey step on the same timeline, in 4 partitions, shuffled batches: the same journeys.
    # (The whole pipeline's journeys may differ: which events reach a journey depends on when
    # identities were learnt — buffers of 20 recent events per person — see docs/architecture.md.)
    # With the identity rules' merges (domain account → CRM account: the domain journey's facts go
    # to the CRM account's journey), also the merge ticks, interleaved differently.
    journeys = MemoryRunner(DEFS, partitions=4, batch_size=61, shuffle=seed)
    for record in in_order.records(in_order.names.timeline):
        journeys.produce(journeys.names.timeline, record.key, record.value)
    merges = [r for r in in_order.records(in_order.names.journey_ticks) if b'"merge_into"' in r.value]
    assert merges, "the generated companies have domain accounts merged into CRM accounts"
    for record in merges:
        journeys.produce(journeys.names.journey_ticks, record.key, record.value)
    journeys.run()
    def summary(runner: MemoryRunner) -> dict:
        # (not ``seq``, the version of the account's outputs: a merge that comes before a domain
        # journey's events has nothing to retract, one after them writes a retraction)
        return {a: (s["stage"], round(s["engagement"], 6), round(s["fit"], 6), s["owner"], s["source"],
                    s.get("merged_into", ""))
                for a, s in runner.table("journeys").items()}
    assert summary(journeys) == summary(in_order)
    assert stage_changes(journeys) == stage_changes(in_order)


def test_a_long_journey_of_hundreds_of_events_per_account() -> None:
    # explicit ids: the partitions records land in, so the interleaving, follow from them (ids from
    # the shared counter of tests.support.events depend on which tests ran before)
    events = [ev.identify(0, "d1", "jane", email="jane@acme.com", mid="lj-identify"),
              ev.group(0.1, "jane", "acme", mid="lj-group")]
    rng = random.Random(4)
    for i in range(600):
        events.append(ev.page(1 + i * 0.5, anon="d1", path=rng.choice(["/", "/pricing", "/docs"]), mid=f"lj-page-{i}"))
        if i % 25 == 0:
            events.append(ev.call(1 + i * 0.5 + 0.1, "jane@acme.com", account="acme", outcome="connected",
                                  conversationId=f"lj-call-{i}"))
    lines = ev.encode(events)
    runner = MemoryRunner(DEFS, partitions=3, batch_size=64, shuffle=4)  # stages interleave at random
    runner.feed(lines)
    runner.run()
    assert len(stored(runner)) == len(events)
    journeys = runner.table("journeys")
    # the identify names jane's email, whose domain is an account until the group names the CRM
    # one: depending on how the stages interleave, it may score on the domain account first
    assert set(journeys) <= {"acme", "domain:acme.com"}
    state = journeys["acme"]
    # every event scored at least once (an event moved to acme when the group arrived counts
    # in both; events past the person's 20 remembered ones stay on the domain's journey: the
    # processing-time gap of docs/architecture.md, "Known limits")
    assert sum(j["seq"] for j in journeys.values()) >= len(events)
    assert state["seq"] >= len(events) // 2
    assert len(state["history"]) <= 150 and state.get("base")  # bounded: the rest is folded into the base
    assert len(orjson.dumps(state)) < 256 * 1024
    bounces = [r for r in runner.records(runner.names.alerts) if b"channel_bounce" in r.value]
    assert bounces, "a buyer bouncing between self-service and calls raises the bounce alert"


def test_a_poison_record_is_dead_lettered_and_the_rest_of_its_batch_goes_on() -> None:
    runner = MemoryRunner(DEFS, batch_size=100)
    good = ev.encode([ev.page(h, user="jane", path="/pricing") for h in range(5)])
    runner.feed(good[:2] + [b'{"type": "page"', b"[" * 100_000] + good[2:])
    runner.produce(runner.names.timeline, b"acme", b"not json at all")  # an internal topic, garbage
    runner.run()
    assert len(stored(runner)) == 5
    dead = runner.records(runner.names.inbound_dlq)
    assert len(dead) == 3 and {r.value for r in dead} >= {b"not json at all", b'{"type": "page"'}
    reasons = Counter(dict(r.headers)["journeys.dlq.stage"].decode() for r in dead)
    assert reasons["journey"] == 1


def test_a_redelivered_batch_sends_the_same_outputs_again_and_changes_no_state() -> None:
    """A crash after the state was written but before the outputs were committed: the batch
    comes again; every step hands back what it sent (idempotent downstream), state unchanged."""
    runner = MemoryRunner(DEFS, batch_size=1000)
    runner.feed(ev.encode([ev.identify(0, "d1", "jane", email="jane@acme.com", mid="rd-identify"),
                           ev.group(0.1, "jane", "acme", mid="rd-group"), ev.page(1, anon="d1", path="/pricing", mid="rd-page"),
                           ev.call(2, "jane@acme.com", account="acme", conversationId="rd-call")]))
    runner.run()
    for stage in runner.stages:
        if stage.table is None:
            continue
        step = runner.steps[stage.name]
        table = runner.table(stage.table)
        for topic in (getattr(runner.names, f) for f in stage.inputs):
            batch = runner.records(topic)
            if not batch:
                continue
            before = orjson.dumps(table, option=orjson.OPT_SORT_KEYS)
            out = Outbox()
            states = States(lambda key: copy.deepcopy(table.get(key)))
            run_batch(step, batch, states, out, runner.names.inbound_dlq)
            for key, value, _ in states.written():
                table[key] = value
            # (the tick topic here only holds the rules' merge of domain:acme.com, which has no
            # facts of its own to forward: nothing to send, the first time either)
            assert out.items or topic == runner.names.journey_ticks, f"{stage.name} re-sends its outputs"
            after = orjson.dumps(table, option=orjson.OPT_SORT_KEYS)
            if stage.name != "identity-persons":  # a person's recent events list the event again
                assert after == before, f"{stage.name}: a redelivered batch changed the state"


def test_records_have_what_the_faust_runner_gives_the_steps() -> None:
    record = Record("t", b"k", b"v", {"h": b"1"}, 2, 7, 1.5)
    assert (record.topic, record.partition, record.offset, dict(record.headers)) == ("t", 2, 7, {"h": b"1"})


def test_dead_letters_of_records_on_the_inbound_topic_keep_no_write_key() -> None:
    """A rejected record a producer wrote straight to Kafka keeps its bytes as the dead letter,
    except the ``writeKey`` value (as the collector redacts): not decodable, not valid, or
    too deep, the key is gone and every other byte is as it came."""
    runner = MemoryRunner(DEFS, partitions=1, batch_size=10)
    bad = [b'{"type":"track","writeKey":"wk_live_secret_1","event":"No identity"}',
           b'{"writeKey" :\t"wk_live_secret_2", not json',
           b'{"type":"track","anonymousId":"a","writeKey":"wk_live_secret_3","properties":' + b"[" * 40 + b"]" * 40 + b"}"]
    runner.feed(bad)
    runner.run()
    dead = [r.value for r in runner.records(runner.names.inbound_dlq)]
    assert sorted(dead) == sorted(line.replace(line[line.index(b'"wk_'):line.index(b'"', line.index(b'"wk_') + 1) + 1],
                                               b'"[redacted]"') for line in bad)
    assert not any(b"wk_live_secret" in v for v in dead)
