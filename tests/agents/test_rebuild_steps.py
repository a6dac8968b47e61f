"""Late events before the journey's kept window (issue 19 item 3): a journey keeps its last 150
facts; an event older than all of them makes the journey stage ask the store process for the
account's stored events, and the rebuilt journey is the in-order one — on 1,000-event accounts
with events hours and days late. The store's answer is simulated here from the events the test
"stored" (the Faust agent reads them with ``queries.timeline``; tests/integration covers it)."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import orjson
import pytest

from schemas.decode import event_time, validate
from schemas.definitions import load
from schemas.journey import JourneyUpdate
from schemas.timeline import TimelineEvent
from sinks.clickhouse.queries import TIMELINE_OUT_COLUMNS
from streams.rules.journey import HISTORY_MAX
from streams.rules.normalize import normalize
from streams.steps.journey import rebuild_ticks
from streams.steps.memory import MemoryRunner
from tests.support import events as ev
from tests.support.store_view import stage_changes

DEFS = load()
NOW = datetime(2027, 1, 1, tzinfo=timezone.utc)
COLUMNS = TIMELINE_OUT_COLUMNS + ["properties"]


def entry(obj: dict, account: str) -> TimelineEvent:
    inbound = validate(obj)
    e = normalize(inbound, event_time=event_time(inbound, NOW), received_at=NOW, source="t")
    return e.model_copy(update={"journey_account_id": account, "person_id": e.contact_id or e.user_id or e.email})


def long_journey(account: str, n: int, seed: int) -> list[TimelineEvent]:
    """``n`` events over ``n`` hours: research, an MQL, SDR calls, an opportunity, a rejection and
    re-qualification, closed won — stage changes spread across the whole journey."""
    rng = random.Random(seed)
    people = [f"{account}-p{i}" for i in range(4)]
    out = []
    for h in range(n):
        kind = rng.random()
        who = rng.choice(people)
        if h == n // 10:
            obj = {"type": "lead_status", "leadId": f"{account}-L", "status": "mql", "changedAt": ev.at(h),
                   "crmAccountId": account, "email": f"{who}@x.com", "leadSource": "webinar"}
        elif h == n // 5:
            obj = {"type": "lead_status", "leadId": f"{account}-L", "status": "rejected", "changedAt": ev.at(h),
                   "crmAccountId": account, "email": f"{who}@x.com", "reason": "no budget"}
        elif h in (n // 2, n - 5):
            obj = {"type": "opportunity", "opportunityId": f"{account}-O", "crmAccountId": account,
                   "action": "created" if h == n // 2 else "closed_won", "changedAt": ev.at(h), "amount": "1000.00",
                   "currency": "EUR", "ownerId": "rep-ae"}
        elif kind < 0.15:
            obj = ev.call(h, f"{who}@x.com", account=account, rep="rep-sdr")
        else:
            obj = ev.page(h, user=who, path=rng.choice(["/", "/pricing", "/docs", "/blog"]))
        out.append(entry(obj, account))
    return out


def row(e: TimelineEvent) -> tuple:
    values = {"direct_account_id": e.account_id, "properties": orjson.dumps(e.properties).decode()}
    return tuple(values[c] if c in values else getattr(e, c) for c in COLUMNS)


def run(order: list[TimelineEvent], stored: list[TimelineEvent] | None, batch: int = 25,
        lagging: list[TimelineEvent] | None = None) -> MemoryRunner:
    """The journey stage on ``order``; rebuild requests answered from ``stored`` (None: never),
    the first round of them from ``lagging`` if given (a store that had not written everything)."""
    runner = MemoryRunner(DEFS, partitions=2, batch_size=batch)
    for e in order:
        runner.produce(runner.names.timeline, e.journey_account_id.encode(), e.to_bytes())
    answered = 0
    while True:
        runner.run()
        requests = runner.records(runner.names.journey_rebuilds)[answered:]
        if not requests or stored is None:
            return runner
        answered += len(requests)
        store, lagging = (lagging, None) if lagging is not None else (stored, None)
        for request in requests:
            body = orjson.loads(request.value)
            rows = sorted((row(e) for e in store if e.journey_account_id == body["account"]),
                          key=lambda r: (r[COLUMNS.index("event_time")], r[COLUMNS.index("event_id")]))
            for value in rebuild_ticks(body["account"], body["id"], COLUMNS, rows):
                runner.produce(runner.names.journey_ticks, request.key, value)


def outcome(runner: MemoryRunner) -> tuple[dict, dict]:
    paths: dict[str, list] = {}
    for account, *change in stage_changes(runner):
        paths.setdefault(account, []).append(tuple(change))
    journeys = {a: (s["stage"], round(s["engagement"], 6), round(s["fit"], 6), s["owner"], s["source"],
                    len(s["history"]), "rebuilding" in s)
                for a, s in runner.table("journeys").items()}
    return {a: sorted(p) for a, p in paths.items()}, journeys


@pytest.mark.parametrize("store_lags", [False, True])
def test_events_days_late_on_1000_event_accounts_give_the_in_order_journey(store_lags: bool) -> None:
    events = long_journey("acct-a", 1000, seed=1) + long_journey("acct-b", 1000, seed=2)
    in_order = outcome(run(sorted(events, key=lambda e: e.event_time), stored=None))
    assert [s for _, _, s in in_order[0]["acct-a"]][-1] == "won" and len(in_order[1]) == 2
    assert all(n == HISTORY_MAX for *_, n, _ in in_order[1].values())
    rng = random.Random(7)
    # held back: events hours to weeks late (the MQL, the rejection, the opportunity among them)
    late = [e for e in events if rng.random() < 0.03 or e.event_type in {"lead_status", "opportunity"}][:40]
    on_time = [e for e in events if e not in late]
    arrival = on_time + late
    # the store may lag behind the stream: the first answers without the late events
    rebuilt = run(arrival, events, lagging=on_time if store_lags else None)
    assert rebuilt.records(rebuilt.names.journey_rebuilds), "the late events were before the kept window"
    assert outcome(rebuilt) == in_order
    # without an answer from the store (the old behaviour: applied to the base out of order)
    assert outcome(run(arrival, stored=None)) != in_order


def test_a_redelivered_or_overtaken_answer_changes_nothing() -> None:
    events = long_journey("acct-c", 400, seed=3)
    late = [e for e in events if e.event_type == "lead_status"]
    runner = run([e for e in events if e not in late] + late, events)
    before = outcome(runner)
    # every answer again (a redelivery): the journey waits for no request, ignores them
    ticks = [r for r in runner.records(runner.names.journey_ticks) if b'"rebuild"' in r.value]
    assert ticks
    for record in ticks:
        runner.produce(runner.names.journey_ticks, record.key, record.value)
    runner.run()
    assert outcome(runner) == before
    assert not runner.records(runner.names.inbound_dlq)


def test_a_rebuild_answer_redelivered_after_a_crash_sends_the_rebuilt_journey_again() -> None:
    """A crash after the rebuilt state was written but before its journey update was sent: the
    answer's last record comes again, and the update is sent again (else its stage changes
    would be lost for good)."""
    events = long_journey("acct-d", 400, seed=4)
    late = [e for e in events if e.event_type == "lead_status"]
    runner = run([e for e in events if e not in late] + late, events)
    last = [r for r in runner.records(runner.names.journey_ticks) if b'"last":true' in r.value][-1]
    updates = runner.records(runner.names.journey_updates)
    sent = updates[-1].value
    assert JourneyUpdate.model_validate_json(sent).stage_changes, "the rebuild re-sent its stage changes"
    runner.produce(runner.names.journey_ticks, last.key, last.value)
    runner.run()
    again = runner.records(runner.names.journey_updates)
    assert len(again) == len(updates) + 1 and again[-1].value == sent


def test_a_merged_domain_journey_longer_than_its_kept_facts_reaches_the_target_through_the_store() -> None:
    """A domain journey of 400 events merged into a CRM account's: it forwards the 150 facts it
    kept and names the newest it folded away; the target rebuilds from the store (which resolves
    the domain's events to it) and ends as if every event had been its own, in order."""
    domain = [e.model_copy(update={"journey_account_id": "domain:d.example"})
              for e in long_journey("domain:d.example", 400, seed=5)]
    crm = long_journey("crm-d", 60, seed=6)
    as_one = [e.model_copy(update={"journey_account_id": "crm-d"}) for e in domain + crm]
    expected = outcome(run(sorted(as_one, key=lambda e: (e.event_time, e.event_id)), stored=None))
    runner = MemoryRunner(DEFS, partitions=2, batch_size=25)
    for e in domain + crm:
        runner.produce(runner.names.timeline, e.journey_account_id.encode(), e.to_bytes())
    runner.run()
    runner.produce(runner.names.journey_ticks, b"domain:d.example",
                   orjson.dumps({"account": "domain:d.example", "merge_into": "crm-d"}))
    runner.run()
    [request] = [orjson.loads(r.value) for r in runner.records(runner.names.journey_rebuilds)]
    assert request["account"] == "crm-d" and len(request["after"]) == 2, "its own folded fact and the domain's"
    rows = sorted((row(e) for e in as_one), key=lambda r: (r[COLUMNS.index("event_time")], r[COLUMNS.index("event_id")]))
    for value in rebuild_ticks("crm-d", request["id"], COLUMNS, rows):
        runner.produce(runner.names.journey_ticks, b"crm-d", value)
    runner.run()
    journeys = runner.table("journeys")
    got = journeys["crm-d"]
    assert (got["stage"], round(got["engagement"], 6)) == expected[1]["crm-d"][:2]
    assert journeys["domain:d.example"]["merged_into"] == "crm-d"
