"""Journey state follows the identity graph (issue 18 item 2), through the in-memory runner (the
same steps as the Faust agents): a merge or unmerge says why in the stage history (the rule of
the changes it entered, the reason of those it retracted), the touch alert rules are re-checked
over the journey's facts, and a person's link to an account undone or re-applied
(``journeys identity --kind person_account``) rebuilds the journeys of the person's accounts
from the events the store then resolves to them. The store's answers are simulated here
(tests/integration/test_one_truth.py runs the real store)."""

from __future__ import annotations

import orjson

from schemas.journey import JourneyUpdate
from schemas.timeline import TimelineEvent
from sinks.clickhouse.rows import journey_rows
from streams.steps.journey import merge_tick, rebuild_ticks, reresolve_tick
from streams.steps.memory import MemoryRunner
from tests.agents.test_merge_steps import DEFS, run
from tests.agents.test_rebuild_steps import COLUMNS, entry, row
from tests.integration.test_one_truth import scenario
from tests.support import events as ev


def history(runner: MemoryRunner) -> dict[str, tuple[str, str, str, int]]:
    """change id → (account, to stage, rule, valid) as the store's ``stage_changes`` keeps it:
    the rows :func:`journey_rows` makes, the newest version of each change id winning."""
    rows: dict[str, tuple[int, tuple[str, str, str, int]]] = {}
    for record in runner.records(runner.names.journey_updates):
        _, changes = journey_rows(JourneyUpdate.model_validate_json(record.value))
        for change_id, account, _, to_stage, _, rule, *_, valid, version in changes:
            if change_id not in rows or rows[change_id][0] <= version:
                rows[change_id] = (version, (account, to_stage, rule, valid))
    return {k: v for k, (_, v) in rows.items()}


def valid(runner: MemoryRunner, account: str) -> dict[str, str]:
    """to stage → rule of the account's valid stage changes."""
    return {s: rule for a, s, rule, ok in history(runner).values() if a == account and ok}


def test_a_merge_and_an_unmerge_say_why_in_the_stage_history() -> None:
    events, crm, domain = scenario()
    runner = run([orjson.dumps(e) for e in events], partitions=2, batch_size=4)
    merged = history(runner)
    # the stream merged the domain account into the CRM account: Bob's whitepaper (the domain
    # journey's) made Acme engaged — the merge entered that change; the domain's own is retracted
    assert valid(runner, crm)["engaged"].startswith("identity merge: score >= "), valid(runner, crm)
    assert not valid(runner, crm)["mql"].startswith("identity"), "a change the merge did not make keeps its rule"
    assert [r for a, _, r, ok in merged.values() if a == domain] == ["retracted: identity merge"]

    runner.produce(runner.names.journey_ticks, domain.encode(), merge_tick(domain, "unmerge", crm))
    runner.run()
    apart = history(runner)
    assert valid(runner, domain) == {"engaged": "identity unmerge: score >= 10"}
    assert "engaged" not in valid(runner, crm)
    gone = [k for k, (a, s, _, _) in merged.items() if a == crm and s == "engaged"]
    assert [apart[k][2:] for k in gone] == [("retracted: identity unmerge", 0)]

    runner.produce(runner.names.journey_ticks, domain.encode(), merge_tick(domain, "merge", crm))
    runner.run()
    assert valid(runner, crm)["engaged"].startswith("identity merge: "), valid(runner, crm)
    assert valid(runner, domain) == {}
    assert {r for a, _, r, ok in history(runner).values() if a == domain} == {"retracted: identity merge"}


# -- alerts -------------------------------------------------------------------------------------

def bouncing() -> tuple[list[TimelineEvent], str, str]:
    """Calls on the CRM account, pricing visits on a domain account between them: together (once
    merged) they switch between 1:1 and self-service often enough for a channel-bounce alert."""
    crm, domain = "bounce-crm", "domain:bounce.io"
    events = [entry(ev.call(1, "ann@bounce.io", account=crm, rep="rep-sdr"), crm),
              entry(ev.page(2, user="bo", path="/pricing"), domain),
              entry(ev.call(3, "ann@bounce.io", account=crm, rep="rep-sdr"), crm),
              entry(ev.page(4, user="bo", path="/compare"), domain),
              entry(ev.call(5, "ann@bounce.io", account=crm, rep="rep-sdr"), crm)]
    return events, crm, domain


def alerts(runner: MemoryRunner, account: str) -> list[str]:
    return [orjson.loads(r.value)["rule"] for r in runner.records(runner.names.alerts)
            if orjson.loads(r.value)["account_id"] == account]


def test_an_unmerge_rechecks_the_touch_alerts_a_merge_raised() -> None:
    events, crm, domain = bouncing()
    runner = MemoryRunner(DEFS, partitions=2, batch_size=10)
    for e in events:
        runner.produce(runner.names.timeline, e.journey_account_id.encode(), e.to_bytes())
    runner.run()
    assert "channel_bounce" not in alerts(runner, crm), "the CRM account's own touches never bounce"
    runner.produce(runner.names.journey_ticks, domain.encode(), orjson.dumps({"account": domain, "merge_into": crm}))
    runner.run()
    assert "channel_bounce" in alerts(runner, crm), "merged, the domain's visits make the account bounce"
    assert sorted(alerts(runner, crm)) == ["back_to_research", "channel_bounce"], "and a return to pricing"
    raised = sorted(orjson.loads(r.value)["alert_id"] for r in runner.records(runner.names.alerts))

    runner.produce(runner.names.journey_ticks, domain.encode(), merge_tick(domain, "unmerge", crm))
    runner.run()
    journey = runner.table("journeys")[crm]
    recheck = journey["alert_recheck"]
    assert recheck["reason"] == "identity unmerge"
    assert recheck["withdrawn"] == raised and recheck["holding"] == [], recheck
    assert {r[2] for r in journey["recent"]} == {"call"}, "the domain's visits are no longer the account's touches"
    late = entry(ev.call(0.5, "ann@bounce.io", account=crm, rep="rep-sdr"), crm)  # replays the journey
    runner.produce(runner.names.timeline, crm.encode(), late.to_bytes())
    runner.run()
    assert runner.table("journeys")[crm]["alert_recheck"] == recheck, "the outcome survives a replay"

    runner.produce(runner.names.journey_ticks, domain.encode(), merge_tick(domain, "merge", crm))
    runner.run()
    assert len(runner.records(runner.names.alerts)) == len(raised), "a merge back raises nothing twice"
    assert {r[2] for r in runner.table("journeys")[crm]["recent"]} == {"call", "web"}


# -- a person moved out of an account, and back ------------------------------------------------

def people() -> tuple[list[TimelineEvent], str, str, str]:
    """Cara's visits resolve to account A (her CRM account) and, once that link is undone, to
    account B (her other person → account link); A also has a lead of its own."""
    a, b, cara = "acct-a", "acct-b", "cara"
    visits = [entry(ev.page(h, user=cara, path=p), a)
              for h, p in ((1, "/pricing"), (2, "/compare"), (3, "/docs"), (4, "/pricing"))]
    lead = entry({"type": "lead_status", "leadId": "L-a", "status": "mql", "changedAt": ev.at(6),
                  "crmAccountId": a, "email": "dan@a.com", "leadSource": "webinar"}, a)
    other = entry(ev.page(0.5, user="eve", path="/"), b)
    return visits + [lead, other], a, b, cara


def answer(runner: MemoryRunner, answered: int, resolved: dict[str, list[TimelineEvent]]) -> int:
    """Answer the rebuild requests after the first ``answered`` with the events the store
    resolves to each account (``resolved``); the number answered so far."""
    requests = runner.records(runner.names.journey_rebuilds)
    for request in requests[answered:]:
        body = orjson.loads(request.value)
        rows = sorted((row(e) for e in resolved.get(body["account"], [])),
                      key=lambda r: (r[COLUMNS.index("event_time")], r[COLUMNS.index("event_id")]))
        for value in rebuild_ticks(body["account"], body["id"], COLUMNS, rows):
            runner.produce(runner.names.journey_ticks, request.key, value)
    runner.run()
    return len(requests)


def test_a_person_account_unmerge_moves_their_events_between_journeys_and_merge_brings_them_back() -> None:
    events, a, b, cara = people()
    runner = MemoryRunner(DEFS, partitions=2, batch_size=3)
    for e in events:
        runner.produce(runner.names.timeline, e.journey_account_id.encode(), e.to_bytes())
    runner.run()
    assert valid(runner, a) == {"engaged": "score >= 10", "mql": "lead_status in ['mql']"}
    assert valid(runner, b) == {}
    engagement = runner.table("journeys")[a]["engagement"]
    mine = [e for e in events if e.person_id == cara]
    own = {a: [e for e in events if e.journey_account_id == a and e.person_id != cara],
           b: [e for e in events if e.journey_account_id == b]}

    override = ["person_account", cara, a, "unmerge"]
    for account in (a, b):  # what `journeys identity unmerge --kind person_account` sends
        runner.produce(runner.names.journey_ticks, account.encode(), reresolve_tick(account, "unmerge", override))
    runner.run()
    requests = runner.records(runner.names.journey_rebuilds)
    assert {orjson.loads(r.value)["account"] for r in requests} == {a, b}
    assert all(orjson.loads(r.value)["override"] == override for r in requests), "the store waits for it"
    answered = answer(runner, 0, {a: own[a], b: own[b] + [e.model_copy(update={"journey_account_id": b})
                                                           for e in mine]})
    journeys = runner.table("journeys")
    assert not {h[1] for h in journeys[a]["history"]} & {e.event_id for e in mine}, "Cara's visits left A"
    assert {e.event_id for e in mine} <= {h[1] for h in journeys[b]["history"]}, "and joined B"
    assert journeys[a]["engagement"] < engagement and "rebuilding" not in journeys[a]
    assert valid(runner, a) == {"mql": "lead_status in ['mql']"}
    retracted = [r for acc, s, r, ok in history(runner).values() if acc == a and not ok]
    assert retracted == ["retracted: identity unmerge"]
    assert valid(runner, b) == {"engaged": "identity unmerge: score >= 10"}

    override = ["person_account", cara, a, "merge"]
    for account in (a, b):
        runner.produce(runner.names.journey_ticks, account.encode(), reresolve_tick(account, "merge", override))
    runner.run()
    answer(runner, answered, {a: own[a] + mine, b: own[b]})
    assert valid(runner, a) == {"engaged": "identity merge: score >= 10", "mql": "lead_status in ['mql']"}
    assert valid(runner, b) == {}
    assert [r for acc, s, r, ok in history(runner).values() if acc == b and not ok] == ["retracted: identity merge"]
    assert runner.table("journeys")[a]["engagement"] == engagement
    assert not runner.records(runner.names.inbound_dlq)


def test_a_live_event_during_a_person_rebuild_stays_and_a_merged_journey_passes_it_on() -> None:
    """An event of another person the store has not written yet when it answers stays in the
    journey (only the moved person's facts must come from the store)."""
    events, a, b, cara = people()
    runner = MemoryRunner(DEFS, partitions=1, batch_size=50)
    for e in events:
        runner.produce(runner.names.timeline, e.journey_account_id.encode(), e.to_bytes())
    runner.run()
    runner.produce(runner.names.journey_ticks, a.encode(),
                   reresolve_tick(a, "unmerge", ["person_account", cara, a, "unmerge"]))
    later = entry(ev.page(7, user="dan", path="/pricing"), a)  # not stored yet when the store answers
    runner.produce(runner.names.timeline, a.encode(), later.to_bytes())
    runner.run()
    answer(runner, 0, {a: [e for e in events if e.journey_account_id == a and e.person_id != cara]})
    assert later.event_id in {h[1] for h in runner.table("journeys")[a]["history"]}

    # a journey merged into another: the re-resolve goes on to the target's journey
    runner.produce(runner.names.journey_ticks, b.encode(), orjson.dumps({"account": b, "merge_into": a}))
    runner.produce(runner.names.journey_ticks, b.encode(), reresolve_tick(b, "merge"))
    runner.run()
    assert [orjson.loads(r.value)["account"] for r in runner.records(runner.names.journey_rebuilds)][1:] == [a]


def test_a_person_unmerged_from_a_journey_longer_than_its_kept_facts_gives_the_journey_without_them() -> None:
    """A 400-event journey (older facts folded into its base): the store does not wait for the
    newest folded event (it may be the moved person's) but for the override, and the rebuilt
    journey is the one the remaining events make in order."""
    from tests.agents.test_rebuild_steps import long_journey, outcome
    from tests.agents.test_rebuild_steps import run as run_journey

    account = "long-a"
    events = long_journey(account, 400, seed=18)
    moved = f"{account}-p0"
    runner = run_journey(events, None)
    assert runner.table("journeys")[account].get("base"), "older facts were folded"
    override = ["person_account", moved, account, "unmerge"]
    runner.produce(runner.names.journey_ticks, account.encode(), reresolve_tick(account, "unmerge", override))
    runner.run()
    [request] = [orjson.loads(r.value) for r in runner.records(runner.names.journey_rebuilds)]
    assert request["after"] == [] and request["override"] == override
    kept = [e for e in events if e.person_id != moved]
    answer(runner, 0, {account: kept})
    paths, journeys = outcome(runner)
    expected_paths, expected = outcome(run_journey(kept, None))
    assert journeys[account][:5] == expected[account][:5]  # stage, engagement, fit, owner, source
    assert paths[account] == expected_paths[account]
