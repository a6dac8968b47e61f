"""Stitching scenarios on the real broker (2 partitions per topic) and the real store.

All scenarios run in one worker; each uses its own ids. Expected journeys are written out by
hand: an account's timeline must hold exactly these event ids.
"""

from __future__ import annotations

import json
import random

import pytest

from tests.support import events as ev

pytestmark = pytest.mark.integration


def timeline_ids(tracker, account: str) -> set[str]:
    out = tracker.journeys("timeline", account, "--format", "json", "--limit", "10000")
    return {r["event_id"] for r in json.loads(out.stdout)}


def build_scenarios() -> tuple[list[dict], dict[str, set[str]]]:
    events: list[dict] = []
    expect: dict[str, set[str]] = {}

    # 1. anonymous browsing, then a form fill (identify) and a group call
    s1 = [ev.page(1, anon="s1-dev"), ev.page(2, anon="s1-dev", path="/pricing"),
          ev.identify(3, "s1-dev", "s1-jane"), ev.group(3.1, "s1-jane", "s1-acme"), ev.page(4, anon="s1-dev")]
    expect["s1-acme"] = ev.ids(s1)
    events += s1

    # 2. two devices, one person
    s2 = [ev.page(1, anon="s2-laptop"), ev.page(1.5, anon="s2-phone"),
          ev.identify(2, "s2-laptop", "s2-raj"), ev.identify(2.5, "s2-phone", "s2-raj"),
          ev.group(3, "s2-raj", "s2-globex"), ev.page(4, anon="s2-phone")]
    expect["s2-globex"] = ev.ids(s2)
    events += s2

    # 3. one shared device, two people from different companies: nothing fused
    s3a = [ev.page(1, anon="s3-kiosk"), ev.identify(2, "s3-kiosk", "s3-ann"), ev.group(2.1, "s3-ann", "s3-a"),
           ev.page(3, anon="s3-kiosk")]
    s3b = [ev.identify(10, "s3-kiosk", "s3-bob"), ev.group(10.1, "s3-bob", "s3-b"), ev.page(11, anon="s3-kiosk")]
    expect["s3-a"], expect["s3-b"] = ev.ids(s3a), ev.ids(s3b)
    events += s3a + s3b

    # 4. CRM account assignment after the fact: the domain account merges into the CRM account
    s4_web = [ev.page(1, anon="s4-dev"), ev.identify(2, "s4-dev", "s4-li", email="li@s4corp.com"),
              ev.page(3, user="s4-li")]
    s4_crm = [ev.call(20, "boss@s4corp.com", account="s4-crm-account")]  # a colleague, in the CRM
    expect["s4-crm-account"] = ev.ids(s4_web) | {"@call"}
    events += s4_web + s4_crm

    # 6. job change: touches stay with the account of their time
    s6_old = [ev.group(1, "s6-sam", "s6-old"), ev.page(5, user="s6-sam")]
    s6_new = [ev.group(100, "s6-sam", "s6-new"), ev.page(105, user="s6-sam")]
    expect["s6-old"], expect["s6-new"] = ev.ids(s6_old), ev.ids(s6_new)
    events += s6_old + s6_new

    # 7. late identify: pages around it arrive first; the identify comes last but happened early
    s7_pages = [ev.page(1, anon="s7-dev"), ev.page(5, anon="s7-dev"), ev.page(9, anon="s7-dev")]
    s7_late = [ev.identify(3, "s7-dev", "s7-kim"), ev.group(3.1, "s7-kim", "s7-acct")]
    expect["s7-acct"] = ev.ids(s7_pages + s7_late)
    events += s7_pages + s7_late
    return events, expect


def test_stitching_scenarios_merge_unmerge_and_shuffled_replay(tracker_factory) -> None:
    events, expect = build_scenarios()
    tracker = tracker_factory().start()
    tracker.produce(ev.encode(events))
    tracker.wait_for_stored(events=len(events))
    tracker.wait_until(lambda: len(timeline_ids(tracker, "s4-crm-account")) == 4, 60, "the s4 merge link")
    got = {account: timeline_ids(tracker, account) for account in expect}
    for account, ids in expect.items():
        ids = {i for i in ids if i != "@call"}
        assert ids <= got[account], f"{account}: missing {ids - got[account]}"
    for account in ("s1-acme", "s2-globex", "s3-a", "s3-b", "s6-old", "s6-new", "s7-acct"):
        assert got[account] == expect[account], f"{account}: extra {got[account] - expect[account]}"
    assert not got["s3-a"] & got["s3-b"], "a shared device fused two people"
    # the merged domain account's timeline is the one company's journey, as the reports count it
    assert timeline_ids(tracker, "domain:s4corp.com") == got["s4-crm-account"]

    # 5. merge then unmerge: undo the domain → CRM account merge; both journeys are restored
    tracker.journeys("identity", "unmerge", "--kind", "account_merge", "--src", "domain:s4corp.com",
                     "--dst", "s4-crm-account", "--reason", "reseller, not the same company", "--by", "test")
    tracker.wait_until(lambda: len(timeline_ids(tracker, "s4-crm-account")) == 1, 60, "the unmerge")
    domain_side = timeline_ids(tracker, "domain:s4corp.com")
    assert {e["messageId"] for e in events if e.get("messageId", "").startswith(("page", "identify"))
            and (e.get("anonymousId") == "s4-dev" or e.get("userId") == "s4-li")} == domain_side

    # journeys identity show: an identifier's links over time, with the override's who and why
    def show(identifier: str) -> set[tuple]:
        rows = json.loads(tracker.journeys("identity", "show", identifier, "--format", "json").stdout or "[]")
        return {(r["kind"], r["src"], r["dst"], r["rule"], r["override"], r["reason"], r["changed_by"]) for r in rows}

    assert show("s2-raj") == {("device", "s2-laptop", "s2-raj", "identify", "", "", ""),
                              ("device", "s2-phone", "s2-raj", "identify", "", "", ""),
                              ("person_account", "s2-raj", "s2-globex", "group", "", "", "")}
    job = sorted(json.loads(tracker.journeys("identity", "show", "s6-sam", "--format", "json").stdout),
                 key=lambda r: r["valid_from"] or "")
    assert [(r["dst"], r["valid_from"] is None, r["valid_to"] is None) for r in job] == [
        ("s6-old", True, False), ("s6-new", False, True)]  # the job change: the first from the start
    assert job[0]["valid_to"] == job[1]["valid_from"]
    assert ("account_merge", "domain:s4corp.com", "s4-crm-account", "domain→crm", "unmerge",
            "reseller, not the same company", "test") in show("s4-crm-account")
    assert tracker.journeys("identity", "show", "nobody-at-all", "--format", "json").stdout.strip() in ("", "[]")

    # 8. shuffled order: the same events in another order on fresh topics give the same journeys
    tracker.stop()
    shuffled = events[:]
    random.Random(42).shuffle(shuffled)
    again = tracker_factory(
        JOURNEYS_TOPIC_PREFIX=tracker.prefix + "shuffled-", JOURNEYS_APP_ID=tracker.prefix + "shuffled-app",
        JOURNEYS_CLICKHOUSE_URL=f"chdb://{tracker.store_dir}-shuffled",
    ).start()
    again.produce(ev.encode(shuffled))
    again.wait_for_stored(events=len(events))
    for account in ("s1-acme", "s2-globex", "s3-a", "s3-b", "s6-old", "s6-new", "s7-acct"):
        assert timeline_ids(again, account) == expect[account]
