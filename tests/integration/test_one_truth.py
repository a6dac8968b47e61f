"""One truth for every answer (issue 18), on the real worker, broker and store.

Reports resolve events to accounts the way the timeline does: a marketing first touch made
anonymously before a form fill is credited; a domain account merged into a CRM account counts
once; an unmerge changes the reports and a merge brings them back; and the same input in
another processing order gives the same answers.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from streams.cli.demo import expected_outcome, sample_lines
from streams.settings import Settings
from tests.support import events as ev

pytestmark = pytest.mark.integration

REPORTS = {
    "funnel": [{"by": "source"}, {"by": "source", "mode": "strict"}],
    "handoff": [{"by": "rep"}, {"by": "team"}],
    "time-share": [{}],
    "paths": [{}],
    "stage-durations": [{}],
    "attribution": [{"model": m, "split": s} for m in ("first_touch", "last_touch", "w_shaped", "linear")
                    for s in ("channel", "team", "role")],
}


def report(tracker, name: str, **params: str) -> list[dict[str, Any]]:
    """A report through the worker's JSON API (the CLI calls the same endpoint)."""
    body = tracker.api(f"/api/v1/reports/{name}?{urlencode(params)}")
    assert body is not None, f"report {name} {params} failed"
    return body["rows"]


def cli_report(tracker, name: str, **params: str) -> list[dict[str, Any]]:
    """A report through the real ``journeys`` command line."""
    args = []
    for key, value in params.items():
        args += [f"--{key}", value]
    return json.loads(tracker.journeys(name, *args, "--format", "json").stdout or "[]")


def settled(tracker, events: int, dead: int = 0, quiet_s: float = 3.0, timeout: float = 150) -> None:
    """Every event stored, and the stage changes unchanged for ``quiet_s`` (the journey stage done)."""
    tracker.wait_for_stored(events, dead, timeout=timeout)
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = (report(tracker, "funnel"), report(tracker, "stage-durations"))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)
    raise AssertionError("stage changes never settled")


def all_reports(tracker) -> dict[str, Any]:
    out = {}
    for name, variants in REPORTS.items():
        for params in variants:
            out[f"{name} {params}"] = report(tracker, name, **params)
    return out


def credit(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    return {r[key]: r["credit"] for r in rows}


# ---- the bundled demo -------------------------------------------------------------------

def test_demo_attribution_credits_ads_and_counts_each_account_once_in_any_order(tracker_factory, tmp_path) -> None:
    lines = sample_lines()
    valid, invalid = expected_outcome(lines, Settings())
    in_order = tracker_factory().start()
    in_order.produce(lines)
    shuffled_lines = list(lines)
    random.Random(18).shuffle(shuffled_lines)
    shuffled = tracker_factory(JOURNEYS_TOPIC_PREFIX=in_order.prefix + "shuffled-",
                               JOURNEYS_APP_ID=in_order.prefix + "shuffled-app",
                               JOURNEYS_CLICKHOUSE_URL=f"chdb://{tmp_path / 'store-shuffled'}").start()
    shuffled.produce(shuffled_lines)
    settled(in_order, len(valid), invalid)
    settled(shuffled, len(valid), invalid)

    first = {r["channel"] for r in report(in_order, "attribution", model="first_touch")}
    assert "ads" in first, "the demo's paid-ad first touches (anonymous, before the form fill) get credit"
    linear = credit(report(in_order, "attribution", model="linear"), "channel")
    assert linear.get("ads", 0) > 0 and linear.get("meeting", 0) > 0
    funnel = report(in_order, "funnel")
    # acme-corp, globex, initech (lead source webinar), umbrella and hooli.com (ads): each once, the
    # domain accounts (domain:acme.com, …) merged into their CRM accounts
    assert {r["group_key"]: r["accounts"] for r in funnel} == {"webinar": 3, "ads": 2}, funnel
    assert all_reports(in_order) == all_reports(shuffled)


# ---- the scenario of the issue: anonymous paid ad → form fill → MQL → SDR → won ------------

def scenario() -> tuple[list[dict], str, str]:
    email, crm, domain = "jane@acme-io.com", "acme-crm", "domain:acme-io.com"
    ad = ev._seg("page", 1, anonymousId="t18-laptop", name="/", context={
        "page": {"path": "/"}, "campaign": {"source": "google", "medium": "cpc", "name": "brand"}})
    events = [
        ad,
        # a colleague, never in the CRM: his touches reach Acme only through the email-domain account
        ev._seg("track", 1.5, anonymousId="t18-bob-laptop", event="Whitepaper Download", properties={}),
        ev.identify(1.7, "t18-bob-laptop", "t18-bob", email="bob@acme-io.com"),
        ev._seg("track", 2, anonymousId="t18-phone", event="Webinar Registered", properties={}),
        ev.identify(3, "t18-laptop", "t18-jane", email=email),
        ev.identify(3.5, "t18-phone", "t18-jane"),
        {"type": "lead_status", "leadId": "t18-lead", "status": "mql", "changedAt": ev.at(5), "email": email,
         "crmAccountId": crm, "leadSource": "paid search"},
        ev.call(6, email, crm, rep="rep-sdr"),
        {"type": "opportunity", "opportunityId": "t18-opp", "crmAccountId": crm, "action": "created",
         "amount": "10000.00", "currency": "EUR", "changedAt": ev.at(8), "ownerId": "rep-ae"},
        {"type": "conversation", "conversationId": "t18-meet", "channel": "meeting", "repId": "rep-ae",
         "repRole": "AE", "direction": "outbound", "startedAt": ev.at(10), "outcome": "meeting_held",
         "contactEmails": [email], "crmAccountId": crm},
        {"type": "opportunity", "opportunityId": "t18-opp", "crmAccountId": crm, "action": "closed_won",
         "amount": "10000.00", "currency": "EUR", "changedAt": ev.at(20), "ownerId": "rep-ae"},
    ]
    return events, crm, domain


def test_anonymous_paid_ad_gets_first_touch_credit_and_unmerge_changes_the_answers(tracker_factory) -> None:
    events, crm, domain = scenario()
    tracker = tracker_factory().start()
    # the web touches first, as they happened (hours before the CRM knew Acme); the order no
    # longer matters to the stages: the domain journey (Bob's and Jane's touches) joins the CRM
    # account's journey when the rules merge the accounts (tests/agents/test_merge_steps.py
    # checks every order)
    web = [e for e in events if e.get("type") in {"page", "track", "identify"}]
    tracker.produce([orjson.dumps(e) for e in web])
    settled(tracker, len(web))
    tracker.produce([orjson.dumps(e) for e in events if e not in web])
    settled(tracker, len(events))

    first = report(tracker, "attribution", model="first_touch", split="channel")
    assert cli_report(tracker, "attribution", model="first_touch", split="channel") == first
    assert [(r["channel"], r["team"], r["credit"], r["currency"]) for r in first] == [
        ("ads", "marketing", 10000.0, "EUR")], "the anonymous paid-ad visit before the form fill is the first touch"
    # W-shaped: first touch (the ad) 30 %, lead creation (last touch before the MQL: the webinar)
    # 30 %, opportunity creation (the SDR call) 30 %, the others (Bob's whitepaper, the AE meeting) 10 %
    w = credit(report(tracker, "attribution", model="w_shaped"), "channel")
    assert w == {"ads": 3000.0, "webinar": 3000.0, "call": 3000.0, "content": 500.0, "meeting": 500.0}
    roles = credit(report(tracker, "attribution", model="w_shaped", split="role"), "role")
    assert roles == {"marketing": 6500.0, "SDR": 3000.0, "AE": 500.0}
    teams = credit(report(tracker, "attribution", model="w_shaped", split="team"), "team")
    assert teams == {"marketing": 6500.0, "sales": 3500.0}
    last = report(tracker, "attribution", model="last_touch")
    assert [(r["channel"], r["credit"]) for r in last] == [("meeting", 10000.0)]
    handoff = report(tracker, "handoff", by="rep")
    assert [(r["rep"], r["median_hours"]) for r in handoff] == [("rep-sdr", 1.0)]
    funnel_before = report(tracker, "funnel")
    assert sum(r["accounts"] for r in funnel_before) == 1, funnel_before
    # Bob's whitepaper (through the domain account, merged into the CRM account) and Jane's touches
    # make Acme "engaged" before its MQL (the merge may land after the CRM records settled: wait)
    tracker.wait_until(lambda: "engaged" in {r["to_stage"] for r in report(tracker, "stages", account=crm)}, 60,
                       "the merged domain journey's stage change")
    stages_before = report(tracker, "stages", account=crm)
    assert {"engaged", "mql", "opportunity", "won"} <= {r["to_stage"] for r in stages_before}, stages_before

    w_before = report(tracker, "attribution", model="w_shaped")
    tracker.journeys("identity", "unmerge", "--kind", "account_merge", "--src", domain, "--dst", crm,
                     "--reason", "test: not the same company", "--by", "t18")
    tracker.wait_until(lambda: report(tracker, "attribution", model="w_shaped") != w_before, 60,
                       "the unmerge to reach the reports")
    after = credit(report(tracker, "attribution", model="w_shaped"), "channel")
    assert after == {"ads": 3000.0, "webinar": 3000.0, "call": 3000.0, "meeting": 1000.0}, \
        "without the domain merge, Bob's whitepaper is not Acme's"
    assert sum(r["accounts"] for r in report(tracker, "funnel")) == 2, "the domain account counts on its own again"
    assert "engaged" not in {r["to_stage"] for r in report(tracker, "stages", account=crm)}

    tracker.journeys("identity", "merge", "--kind", "account_merge", "--src", domain, "--dst", crm,
                     "--reason", "test: it is the same company after all", "--by", "t18")
    tracker.wait_until(lambda: report(tracker, "attribution", model="w_shaped") == w_before, 60,
                       "the merge to bring the credit back")
    assert report(tracker, "funnel") == funnel_before
    assert report(tracker, "stages", account=crm) == stages_before


# ---- a person moved out of an account (person → account unmerge), and back -----------------

def test_a_person_account_unmerge_rebuilds_the_journeys_with_the_reason_and_merge_brings_it_back(
        tracker_factory) -> None:
    """Kim's visits at her old company (kim-x) and, after a job change, at her new one (kim-y)
    each make that account engaged. ``journeys identity unmerge --kind person_account`` of Kim
    and kim-y rebuilds both of Kim's accounts' journeys from the events the store then resolves
    to them: kim-y's engaged stage is retracted (its row says ``identity unmerge``), kim-x keeps
    its own; ``merge`` enters it again (``identity merge: …``)."""
    import clickhouse_connect

    from tests.support.tracker import free_port

    token, sql_port = "t18-person-token-0123456789", free_port()
    tracker = tracker_factory(JOURNEYS_API_TOKEN=token, JOURNEYS_SQL__PORT=str(sql_port)).start()
    kim = "t18k-kim"
    visits = ((0, "/pricing"), (0.5, "/compare"), (1, "/docs"), (1.5, "/pricing"))
    events = ([ev.group(1, kim, "kim-x")] + [ev.page(2 + h, user=kim, path=p) for h, p in visits]
              + [ev.group(5, kim, "kim-y")] + [ev.page(6 + h, user=kim, path=p) for h, p in visits])
    tracker.produce([orjson.dumps(e) for e in events])
    settled(tracker, len(events))

    def stages(account: str) -> dict[str, str]:
        return {r["to_stage"]: r["rule"] for r in report(tracker, "stages", account=account)}

    tracker.wait_until(lambda: "engaged" in stages("kim-x") and "engaged" in stages("kim-y"), 60, "both engaged")
    x_before, y_before = stages("kim-x"), stages("kim-y")
    assert y_before == {"engaged": "score >= 10"}, y_before
    sql = clickhouse_connect.get_client(host="127.0.0.1", port=sql_port, username="default", password=token)

    def rows(account: str, only: str = "") -> list[tuple[str, str, int]]:
        """(change id, rule, valid) of the account's stage_changes rows (``only``: the valid ones)."""
        return sql.query("SELECT change_id, rule, valid FROM stage_changes FINAL WHERE account_id = {a:String} "
                         f"{'AND valid = 1' if only else ''} ORDER BY change_id",
                         parameters={"a": account}).result_rows

    [(engaged, _, _)] = rows("kim-y", only="valid")

    tracker.journeys("identity", "unmerge", "--kind", "person_account", "--src", kim, "--dst", "kim-y",
                     "--reason", "test: not her account", "--by", "t18")
    tracker.wait_until(lambda: "engaged" not in stages("kim-y"), 90, "the unmerge to reach kim-y's journey")
    assert [r[1:] for r in rows("kim-y") if r[0] == engaged] == [("retracted: identity unmerge", 0)], rows("kim-y")
    assert stages("kim-x") == x_before, "Kim's visits before the job change stay kim-x's"

    tracker.journeys("identity", "merge", "--kind", "person_account", "--src", kim, "--dst", "kim-y",
                     "--reason", "test: it is her account after all", "--by", "t18")
    tracker.wait_until(lambda: "engaged" in stages("kim-y"), 90, "the merge to bring kim-y's stage back")
    assert stages("kim-y") == {"engaged": "identity merge: score >= 10"}
    assert [r[1:] for r in rows("kim-y", only="valid")] == [("identity merge: score >= 10", 1)]
    assert stages("kim-x") == x_before
