"""Merged accounts in the stream (issue 18 item 2): when the identity rules merge a domain account
into a CRM account, the domain journey's facts join the CRM account's journey, so its stages and
scores are the same in any processing order; a manual unmerge takes them out again and a merge
brings them back. Through the in-memory runner (the same steps as the Faust agents)."""

from __future__ import annotations

import random

import orjson
import pytest

from schemas.definitions import load
from schemas.identity import IdentityLink
from streams.steps.journey import merge_tick
from streams.steps.memory import MemoryRunner
from tests.integration.test_one_truth import scenario
from tests.support.store_view import stage_changes

DEFS = load()


def merges(runner: MemoryRunner) -> dict[str, str]:
    """The newest account_merge link per domain account, as the store keeps it."""
    newest: dict[str, IdentityLink] = {}
    for record in runner.records(runner.names.identity_links):
        link = IdentityLink.model_validate_json(record.value)
        if link.kind == "account_merge" and (link.src not in newest or link.version >= newest[link.src].version):
            newest[link.src] = link
    return {src: link.dsts[0] for src, link in newest.items()}


def stages(runner: MemoryRunner, unmerged: frozenset[str] = frozenset()) -> dict[str, list[tuple[str, str, str]]]:
    """account → its stage path as the reports read it: the store's newest record per change,
    retractions dropped, each change on its canonical account (one merge level, as the store)."""
    canon = {src: dst for src, dst in merges(runner).items() if src not in unmerged}
    out: dict[str, list[tuple[str, str, str]]] = {}
    for account, at, from_stage, to_stage in stage_changes(runner):
        out.setdefault(canon.get(account, account), []).append((at, from_stage, to_stage))
    return {a: sorted(v) for a, v in sorted(out.items())}


def run(lines: list[bytes], partitions: int = 1, batch_size: int = 1, shuffle: int | None = None) -> MemoryRunner:
    runner = MemoryRunner(DEFS, partitions=partitions, batch_size=batch_size, shuffle=shuffle)
    runner.feed(lines)
    runner.run()
    return runner


def test_a_domain_journey_merged_into_the_crm_account_gives_the_same_stages_in_any_order() -> None:
    events, crm, domain = scenario()
    web = [orjson.dumps(e) for e in events if e.get("type") in {"page", "track", "identify"}]
    sales = [orjson.dumps(e) for e in events if e.get("type") not in {"page", "track", "identify"}]
    web_first = run(web + sales)
    assert merges(web_first) == {domain: crm}
    expected = stages(web_first)
    # Bob's whitepaper (reaching Acme only through the email domain) and Jane's touches together
    # make Acme engaged before the MQL; the domain journey's own changes are retracted
    assert [s for _, _, s in expected[crm]] == ["engaged", "mql", "opportunity", "won"], expected
    assert domain not in expected
    journey = web_first.table("journeys")
    assert journey[domain]["merged_into"] == crm
    assert any(len(h) > 3 and h[3] == domain for h in journey[crm]["history"]), "Bob's touch came via the domain"

    orders = [sales + web, list(reversed(web + sales))]
    for seed in range(6):
        shuffled = web + sales
        random.Random(seed).shuffle(shuffled)
        orders.append(shuffled)
    for i, lines in enumerate(orders):
        for partitions, batch in ((1, 1), (4, 3), (3, 50)):
            other = run(lines, partitions, batch, shuffle=i)
            assert stages(other) == expected, (i, partitions, batch)
            got = other.table("journeys")[crm]
            assert (got["stage"], round(got["engagement"], 6)) == (
                journey[crm]["stage"], round(journey[crm]["engagement"], 6)), (i, partitions, batch)


def test_an_unmerge_takes_the_domain_facts_out_and_a_merge_brings_them_back() -> None:
    events, crm, domain = scenario()
    runner = run([orjson.dumps(e) for e in events], partitions=2, batch_size=4)
    before = stages(runner)
    engagement = runner.table("journeys")[crm]["engagement"]

    runner.produce(runner.names.journey_ticks, domain.encode(), merge_tick(domain, "unmerge", crm))
    runner.run()
    apart = stages(runner, unmerged=frozenset({domain}))
    assert "engaged" not in [s for _, _, s in apart[crm]], "without Bob's whitepaper Acme was never engaged"
    assert [s for _, _, s in apart[domain]] == ["engaged"], "the domain journey's own change counts again"
    journeys = runner.table("journeys")
    assert journeys[domain]["merged_into"] == "" and journeys[crm]["engagement"] < engagement
    assert not any(len(h) > 3 for h in journeys[crm]["history"])

    # the rules merging the domain again (another CRM record of Jane's) do not undo the manual unmerge
    runner.produce(runner.names.journey_ticks, domain.encode(),
                   orjson.dumps({"account": domain, "merge_into": crm}))
    runner.run()
    assert stages(runner, unmerged=frozenset({domain})) == apart

    runner.produce(runner.names.journey_ticks, domain.encode(), merge_tick(domain, "merge", crm))
    runner.run()
    assert stages(runner) == before
    assert runner.table("journeys")[crm]["engagement"] == pytest.approx(engagement)
    assert not runner.records(runner.names.inbound_dlq)


def test_a_merged_domain_journey_forwards_its_later_events_and_raises_no_alerts_of_its_own() -> None:
    events, crm, domain = scenario()
    runner = run([orjson.dumps(e) for e in events])
    alerts_before = len(runner.records(runner.names.alerts))
    # Bob keeps researching (still only known by his email's domain)
    later = {"type": "page", "messageId": "t18-bob-later", "userId": "t18-bob", "anonymousId": "t18-bob-laptop",
             "name": "/pricing", "properties": {"path": "/pricing"}, "timestamp": scenario()[0][-1]["changedAt"]}
    runner.feed([orjson.dumps(later)])
    runner.run()
    journeys = runner.table("journeys")
    assert "t18-bob-later" in {h[1] for h in journeys[domain]["history"]}
    assert [h[3:] for h in journeys[crm]["history"] if h[1] == "t18-bob-later"] == [[domain]]
    assert all(b'"account_id":"' + domain.encode() not in r.value for r in runner.records(runner.names.alerts)[alerts_before:])
    assert journeys[domain].get("due_ms", 0) == 0, "no timer rules on a merged journey"
