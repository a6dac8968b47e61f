"""Late events before the journey's kept window, on the real worker, broker and store (issue 19
item 3): a 1,000-event account whose MQL, rejection and opportunity arrive weeks late, after
everything else was stored. The journey stage asks the store process for the account's stored
events, rebuilds the journey, and the stage history is the in-order one (the same steps in
memory, in order, say what that is)."""

from __future__ import annotations

import random
import urllib.request

import orjson
import pytest

from schemas.definitions import load
from streams.steps.memory import MemoryRunner
from tests.agents.test_merge_steps import stages
from tests.support import events as ev

pytestmark = pytest.mark.integration

ACCOUNT = "t19-long"


def journey_lines(n: int = 1000) -> tuple[list[bytes], list[bytes]]:
    """(on time, late): ``n`` events of one account over ``n`` hours; the lead's MQL and
    rejection, the opportunity and a few touches held back."""
    rng = random.Random(19)
    people = [f"t19-p{i}" for i in range(3)]
    events = [ev.group(-1, p, ACCOUNT, mid=f"t19-group-{p}") for p in people]
    for h in range(n):
        who = rng.choice(people)
        if h == 100:
            obj = {"type": "lead_status", "leadId": "t19-L", "status": "mql", "changedAt": ev.at(h),
                   "crmAccountId": ACCOUNT, "email": f"{who}@t19.example", "leadSource": "webinar"}
        elif h == 200:
            obj = {"type": "lead_status", "leadId": "t19-L", "status": "rejected", "reason": "no budget",
                   "changedAt": ev.at(h), "crmAccountId": ACCOUNT, "email": f"{who}@t19.example"}
        elif h in (500, 995):
            obj = {"type": "opportunity", "opportunityId": "t19-O", "crmAccountId": ACCOUNT,
                   "action": "created" if h == 500 else "closed_won", "changedAt": ev.at(h), "amount": "5000.00",
                   "currency": "EUR", "ownerId": "rep-ae"}
        elif rng.random() < 0.1:
            obj = ev.call(h, f"{who}@t19.example", account=ACCOUNT, rep="rep-sdr", conversationId=f"t19-call-{h}")
        else:
            obj = ev.page(h, user=who, path=rng.choice(["/", "/pricing", "/docs"]), mid=f"t19-page-{h}")
        events.append(obj)
    late = [e for e in events if e["type"] == "lead_status" or e.get("action") == "created"
            or rng.random() < 0.02][:30]
    on_time = [e for e in events if e not in late]
    return [orjson.dumps(e) for e in on_time], [orjson.dumps(e) for e in late]


def metric(tracker, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{tracker.port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    name = name.replace("}", f',tenant="{tracker.tenant}"}}')  # every series names the tenant
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_events_weeks_late_on_a_1000_event_account_give_the_in_order_stage_history(tracker_factory) -> None:
    on_time, late = journey_lines()
    assert any(b'"mql"' in line for line in late) and any(b'"created"' in line for line in late)
    memory = MemoryRunner(load())
    memory.feed(sorted(on_time + late, key=lambda line: orjson.loads(line).get("timestamp")
                       or orjson.loads(line).get("changedAt") or orjson.loads(line).get("startedAt")))
    memory.run()
    expected = [(f, t) for _, f, t in stages(memory)[ACCOUNT]]
    assert [t for _, t in expected][:2] == ["engaged", "mql"] and "recycled" in [t for _, t in expected]

    tracker = tracker_factory().start()
    tracker.produce(on_time)
    tracker.wait_for_stored(len(on_time), timeout=240)
    tracker.produce(late)
    tracker.wait_for_stored(len(on_time) + len(late), timeout=120)

    def history() -> list[tuple[str, str]]:
        body = tracker.api(f"/api/v1/reports/stages?account={ACCOUNT}") or {"rows": []}
        return [(r["from_stage"], r["to_stage"]) for r in body["rows"]]

    tracker.wait_until(lambda: history() == expected, 120,
                       f"the in-order stage history {expected} (rebuilt from the store)")
    assert metric(tracker, 'journeys_journey_rebuilds_total{step="done"}') >= 1
    assert metric(tracker, 'journeys_journey_rebuilds_total{step="answered"}') >= 1
