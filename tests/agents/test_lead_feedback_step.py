"""The rejected-lead feedback step (streams/steps/lead_feedback.py): CRM lead statuses through the
whole in-memory pipeline to a ``rejected_leads`` alert, a batch of a source's outcomes applied
together as one by one, and a poison record dead-lettered while the others go on."""

from __future__ import annotations

import orjson

from schemas.alerts import AlertRecord
from schemas.definitions import load
from schemas.timeline import TimelineEvent
from streams.steps import Outbox, Record, States, run_batch
from streams.steps.lead_feedback import LeadFeedback
from streams.steps.memory import MemoryRunner
from tests.support import events as ev

DEFS = load()
MIN_MQLS = DEFS.alerts.rejected_leads_min_mqls


def lead(i: int, hours: float, status: str, source: str = "webinar") -> bytes:
    reason = {"reason": "no budget"} if status == "rejected" else {}
    return orjson.dumps({"type": "lead_status", "leadId": f"{source}-L{i}", "status": status, "changedAt": ev.at(hours),
                         "crmAccountId": f"{source}-{i}", "email": f"p{i}@{source}-{i}.com", "leadSource": source, **reason})


def outcomes(n_leads: int, rejected: int, source: str = "webinar") -> list[bytes]:
    lines = [lead(i, 1 + i * 0.1, "mql", source) for i in range(n_leads)]
    lines += [lead(i, 20 + i * 0.1, "rejected", source) for i in range(rejected)]
    return lines


def alerts(records: list[Record]) -> list[AlertRecord]:
    return [AlertRecord.model_validate_json(r.value) for r in records]


def test_sales_rejecting_most_mqls_of_a_source_raises_one_alert_through_the_pipeline() -> None:
    runner = MemoryRunner(DEFS, partitions=3, batch_size=7)
    n = max(MIN_MQLS, 4) * 3
    runner.feed(outcomes(n, rejected=n - 1) + outcomes(n, rejected=0, source="events"))
    runner.run()
    raised = [a for a in alerts(runner.records(runner.names.alerts)) if a.rule == "rejected_leads"]
    assert {a.account_id for a in raised} == {"source:webinar"}  # not the source whose MQLs were accepted
    assert len({a.alert_id for a in raised}) == 1
    assert len(runner.table("lead-sources")["webinar"]["leads"]) == n
    assert len(runner.table("lead-sources")["events"]["leads"]) == n


def _timeline(lines: list[bytes]) -> list[Record]:
    runner = MemoryRunner(DEFS)
    runner.feed(lines)
    runner.run()
    return [Record("lead-outcomes", r.key, r.value, offset=i)
            for i, r in enumerate(runner.records(runner.names.lead_outcomes))]


def _through(step: LeadFeedback, records: list[Record], batch: int) -> tuple[dict, list[str], list[Record]]:
    table: dict = {}
    sent: list[tuple] = []
    for start in range(0, len(records), batch):
        out, states = Outbox(), States(lambda key: orjson.loads(orjson.dumps(table.get(key))))
        run_batch(step, records[start:start + batch], states, out, "dlq")
        table.update({k: v for k, v, _ in states.written()})
        sent += out.items
    return table, [k.decode() for t, k, _, _ in sent if t == step.names.alerts], [
        Record(t, k, v) for t, k, v, _ in sent if t == step.names.inbound_dlq]


def test_a_batch_of_outcomes_gives_what_one_by_one_gives() -> None:
    records = _timeline(outcomes(3 * MIN_MQLS, rejected=3 * MIN_MQLS - 1) + outcomes(2 * MIN_MQLS, 2 * MIN_MQLS, "ads"))
    assert len(records) == 5 * MIN_MQLS + 5 * MIN_MQLS - 1
    step = LeadFeedback(MemoryRunner(DEFS).names, DEFS)
    one, one_alerts, _ = _through(step, records, 1)
    whole, whole_alerts, _ = _through(step, records, len(records))
    assert one == whole and one_alerts == whole_alerts
    assert sorted(one) == ["ads", "webinar"] and len(one_alerts) == 2


def test_a_poison_record_is_dead_lettered_and_the_others_go_on() -> None:
    records = _timeline(outcomes(MIN_MQLS + 2, rejected=MIN_MQLS + 1))
    poison = Record("lead-outcomes", b"webinar", b'{"not": "a timeline event"}', offset=999)
    step = LeadFeedback(MemoryRunner(DEFS).names, DEFS)
    table, raised, dead = _through(step, records[:3] + [poison] + records[3:], 50)
    assert [r.value for r in dead] == [poison.value]
    assert raised and len(table["webinar"]["leads"]) == MIN_MQLS + 2
    assert all(TimelineEvent.from_bytes(r.value).event_type == "lead_status" for r in records)
