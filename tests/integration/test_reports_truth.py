"""Reports against ground truth: generated journeys (bench/synth.py) through the identity rules
into a real chDB store; every touch-based answer must equal an independent computation over
the generator's true accounts — whatever order the events arrived in.

The tracker resolves events at query time (``event_accounts`` / ``journey_events``); the truth
comes from the generator. Attribution is recomputed here from the raw events: each won deal's
touches up to its close, weights from the pure model, credit per currency.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from bench.simulate import InProcessPipeline
from bench.synth import SynthConfig, generate
from schemas.decode import decode
from schemas.definitions import load
from sinks.clickhouse import ddl
from sinks.clickhouse.attribution import MODELS, Touch, weights
from sinks.clickhouse.client import Store
from streams import reports
from streams.rules.normalize import normalize

pytestmark = pytest.mark.integration
DEFS = load()
NOW = datetime(2027, 1, 1, tzinfo=timezone.utc)


def expected_attribution(synth, model: str) -> dict[tuple[str, str, str], float]:
    """(currency, channel, team) → credit, from the raw events and their true accounts."""
    touches: dict[str, list[tuple]] = defaultdict(list)
    created: dict[str, datetime] = {}
    won: list[tuple[str, str, float, str, datetime]] = []
    for s in synth:
        event, when = decode(orjson.dumps(s.obj), received_at=NOW, max_future=timedelta(seconds=300))
        entry = normalize(event, event_time=when, received_at=NOW, source="truth")
        channel = DEFS.channels.get(entry.channel)
        if s.account and channel is not None and channel.touch:
            touches[s.account].append((entry.event_time, entry.event_id, entry.channel, entry.side,
                                       channel.team, entry.rep_role))
        if s.event_type == "opportunity" and s.account:
            action, opp = s.obj["action"], s.obj["opportunityId"]
            if action == "created":
                created[opp] = min(created.get(opp, when), when)
            elif action == "closed_won":
                won.append((s.account, opp, float(s.obj["amount"]), s.obj["currency"], when))
    credit: dict[tuple[str, str, str], float] = defaultdict(float)
    for account, opp, amount, currency, won_at in won:
        mine = sorted(t for t in touches[account] if t[0] <= won_at)
        path = [Touch(at, ch, side, team, role, eid) for at, eid, ch, side, team, role in mine]
        custom = DEFS.attribution.models.get(model)
        for touch, w in zip(path, weights(model, path, None, created.get(opp), won_at, custom)):
            credit[(currency, touch.channel, touch.team)] += w * amount
    return {k: v for k, v in credit.items() if v > 0}


@pytest.fixture(scope="module", params=[(8, 0), (7, 400)], ids=["in-order", "shuffled"])
def loaded(request, tmp_path_factory):
    seed, shuffle = request.param
    synth = list(generate(SynthConfig(events=2500, seed=seed, shuffle_window=shuffle)))
    store = Store(f"chdb://{tmp_path_factory.mktemp('truth')}")
    InProcessPipeline(now=NOW).feed_all(orjson.dumps(s.obj) for s in synth).store_into(store)
    store.insert("channel_definitions", ddl.channel_rows(DEFS.channels, DEFS.version, 1), ddl.CHANNEL_COLUMNS)
    yield store, synth
    store.close()


def test_every_event_resolves_to_its_true_account(loaded) -> None:
    store, synth = loaded
    _, rows = store.query("SELECT event_id, groupArray(account_id) FROM journey_events GROUP BY event_id")
    got = {event_id: sorted(accounts) for event_id, accounts in rows}
    truth = {s.event_id: [s.account] for s in synth if s.account}
    assert got == truth


@pytest.mark.parametrize("model", [*MODELS, *DEFS.attribution.models])
def test_attribution_equals_the_ground_truth_computation(loaded, model: str) -> None:
    store, synth = loaded
    expect = expected_attribution(synth, model)
    assert len({cur for cur, _, _ in expect}) == 2, "the generated deals use two currencies"
    rows = reports.run("attribution", store, DEFS, {"model": model})
    got = {(r["currency"], r["channel"], r["team"]): r["credit"] for r in rows}
    assert got == pytest.approx({k: round(v, 2) for k, v in expect.items()}, abs=0.02)
    teams: dict[tuple[str, str], float] = defaultdict(float)
    roles: dict[tuple[str, str], float] = defaultdict(float)
    for (cur, channel, team), v in expect.items():
        teams[(cur, team)] += v
    split = reports.run("attribution", store, DEFS, {"model": model, "split": "team"})
    assert {(r["currency"], r["team"]): r["credit"] for r in split} == pytest.approx(dict(teams), abs=0.1)
    by_role = reports.run("attribution", store, DEFS, {"model": model, "split": "role"})
    for r in by_role:
        roles[(r["currency"], r["role"])] += r["credit"]
    per_currency = defaultdict(float)
    for (cur, _), v in teams.items():
        per_currency[cur] += v
    assert {cur: sum(v for (c, _), v in roles.items() if c == cur) for cur in per_currency} == pytest.approx(
        dict(per_currency), abs=0.1)
    assert {role for _, role in roles} <= {"marketing", "SDR", "AE", "sales"}
