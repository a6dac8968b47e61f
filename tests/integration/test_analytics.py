"""Every analytics view on generated rows in real chDB, against answers computed here in Python."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from schemas.definitions import load
from sinks.clickhouse import analytics, ddl, queries, resolution
from sinks.clickhouse.client import Store
from sinks.clickhouse.rows import STAGE_CHANGE_COLUMNS, TIMELINE_COLUMNS
from streams import reports

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
DEFS = load()
SOURCES = ["google", "webinar", "partner"]
REASONS = ["no budget", "student", "wrong region"]
STAGES = ["engaged", "mql", "sal", "sql", "opportunity"]


def generate(seed: int = 11):
    rng = random.Random(seed)
    touches, leads, changes, won = [], [], [], {}
    minute = iter(range(10**9))
    for a in range(40):
        acct = f"acc-{a:02d}"
        source = rng.choice(SOURCES)
        t = T0 + timedelta(days=a)
        for i in range(rng.randint(2, 8)):
            ch = rng.choice(["web", "content", "webinar", "call", "meeting"])
            t += timedelta(hours=rng.randint(1, 60), minutes=next(minute) % 60)
            side = "human" if ch in ("call", "meeting") else "digital"
            touches.append(dict(event_id=f"{acct}-t{i}", account=acct, at=t, channel=ch, side=side,
                                rep=f"rep-{rng.randint(1, 3)}" if side == "human" else "",
                                role=rng.choice(["SDR", "AE"]) if side == "human" else ""))
        reached = rng.randint(0, len(STAGES))
        st = T0 + timedelta(days=a, hours=1)
        prev = ""
        order = STAGES[:reached]
        if reached >= 3 and rng.random() < 0.3:
            order = [STAGES[0], STAGES[2], STAGES[1]] + STAGES[3:reached]  # out of order: strict funnel differs
        for stage in order:
            st += timedelta(hours=rng.randint(1, 90))
            changes.append(dict(account=acct, to=stage, frm=prev, at=st, source=source))
            prev = stage
        if reached == len(STAGES) and rng.random() < 0.7:
            outcome = rng.choice(["won", "lost"])
            st += timedelta(days=3)
            changes.append(dict(account=acct, to=outcome, frm=prev, at=st, source=source))
            if outcome == "won":
                won[acct] = (st, float(rng.randint(1, 90) * 1000))
        lead_id = f"lead-{a}"
        leads.append(dict(lead=lead_id, status="mql", source=source, reason="", account=acct))
        fate = rng.choice(["accepted", "rejected", "open"])
        if fate != "open":
            leads.append(dict(lead=lead_id, status=fate, source=source, account=acct,
                              reason=rng.choice(REASONS) if fate == "rejected" else ""))
    return touches, leads, changes, won


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    store = Store(f"chdb://{tmp_path_factory.mktemp('analytics')}")
    ddl.migrate(store)
    touches, leads, changes, won = generate()
    rows = []
    def row(event_id, acct, at, event_type, channel, side, props, rep="", role=""):
        values = dict(event_id=event_id, account_id=acct, event_time=at, received_at=at, event_type=event_type,
                      name="", channel=channel, side=side, anonymous_id="", user_id="", email="", contact_id="",
                      group_id="", domain="", rep_id=rep, rep_role=role, source="test",
                      properties=orjson.dumps(props).decode(), version=1, person_id="", journey_account_id=acct)
        return tuple(values[c] for c in TIMELINE_COLUMNS)
    for t in touches:
        rows.append(row(t["event_id"], t["account"], t["at"], "page", t["channel"], t["side"], {},
                        t["rep"], t["role"]))
    for i, lead in enumerate(leads):
        rows.append(row(f"lead-{i}", lead["account"], T0, "lead_status", "crm", "crm",
                        {"leadId": lead["lead"], "status": lead["status"], "leadSource": lead["source"],
                         **({"reason": lead["reason"]} if lead["reason"] else {})}))
    for acct, (at, amount) in won.items():
        rows.append(row(f"won-{acct}", acct, at, "opportunity", "crm", "crm",
                        {"action": "closed_won", "amount": f"{amount:.2f}", "currency": "EUR"}))
    store.insert("timeline", rows, TIMELINE_COLUMNS)
    store.insert("timeline", rows[:10], TIMELINE_COLUMNS)  # replayed rows must not count twice
    change_rows = [
        (f"{c['account']}-{c['to']}", c["account"], c["frm"], c["to"], c["at"], "test", "v1", "e", "", c["source"],
         "executive", 1, 1)
        for c in changes
    ]
    store.insert("stage_changes", change_rows, STAGE_CHANGE_COLUMNS)
    # a retracted change (valid = 0, newer version) is not visible
    store.insert("stage_changes", [change_rows[0][:11] + (0, 2)], STAGE_CHANGE_COLUMNS)
    resolution.refresh_all(store)  # rows written by hand: resolve them as the store process would
    changes = changes[1:]
    yield store, touches, leads, changes, won
    store.close()


def recs(result):
    return queries.records(*result)


def test_acceptance_by_source(data) -> None:
    store, _, leads, _, _ = data
    expect = {}
    for src in SOURCES:
        mine = [l for l in leads if l["source"] == src]
        acc = {l["lead"] for l in mine if l["status"] == "accepted"}
        rej = {l["lead"] for l in mine if l["status"] == "rejected"}
        expect[src] = (len({l["lead"] for l in mine if l["status"] == "mql"}), len(acc), len(rej),
                       round(len(acc) / (len(acc) + len(rej)), 4) if acc or rej else None)
    got = {r["source"]: (r["mqls"], r["accepted"], r["rejected"], r["acceptance_rate"])
           for r in recs(analytics.acceptance(store))}
    assert got == expect


def test_funnel_any_and_strict(data) -> None:
    store, _, _, changes, _ = data
    by_acct = defaultdict(list)
    for c in changes:
        by_acct[c["account"]].append(c)
    for mode in ("any", "strict"):
        expect = defaultdict(lambda: defaultdict(int))
        for acct, cs in by_acct.items():
            cs = sorted(cs, key=lambda c: c["at"])
            src = cs[0]["source"]
            expect[src]["accounts"] += 1
            if mode == "any":
                for stage in analytics.FUNNEL_STAGES:
                    expect[src][stage] += any(c["to"] == stage for c in cs)
            else:
                level, last = 0, None
                for stage in analytics.FUNNEL_STAGES:
                    nxt = next((c for c in cs if c["to"] == stage and (last is None or c["at"] > last)), None)
                    if nxt is None:
                        break
                    level, last = level + 1, nxt["at"]
                for i, stage in enumerate(analytics.FUNNEL_STAGES):
                    expect[src][stage] += level >= i + 1
        got = {r["group_key"]: {k: v for k, v in r.items() if k != "group_key"}
               for r in recs(analytics.funnel(store, by="source", mode=mode))}
        assert got == {k: {"accounts": v["accounts"], **{s: v[s] for s in analytics.FUNNEL_STAGES}}
                       for k, v in expect.items()}, mode


def test_handoff_latency_and_sla_by_rep(data) -> None:
    store, touches, _, changes, _ = data
    sla = DEFS.sla.mql_first_touch_hours
    expect = defaultdict(lambda: {"mqls": 0, "touched": 0, "within_sla": 0})
    for acct in sorted({c["account"] for c in changes if c["to"] == "mql"}):
        mql_at = min(c["at"] for c in changes if c["account"] == acct and c["to"] == "mql")
        human = sorted((t for t in touches if t["account"] == acct and t["side"] == "human" and t["at"] >= mql_at),
                       key=lambda t: t["at"])
        key = human[0]["rep"] if human else "(no sales touch yet)"
        expect[key]["mqls"] += 1
        if human:
            expect[key]["touched"] += 1
            expect[key]["within_sla"] += (human[0]["at"] - mql_at) <= timedelta(hours=sla)
    got = {r["rep"]: {"mqls": r["mqls"], "touched": r["touched"], "within_sla": r["within_sla"]}
           for r in recs(analytics.handoff(store, sla))}
    assert got == dict(expect)


def test_time_share_by_stage(data) -> None:
    store, touches, _, changes, _ = data
    expect = defaultdict(lambda: {"digital": 0, "human": 0})
    for t in touches:
        before = [c for c in changes if c["account"] == t["account"] and c["at"] <= t["at"]]
        stage = max(before, key=lambda c: c["at"])["to"] if before else "(before engaged)"
        expect[stage][t["side"]] += 1
    rows = recs(analytics.time_share(store))
    got = {r["stage"]: {"digital": r["digital_touches"], "human": r["human_touches"]} for r in rows}
    assert got == dict(expect)
    # accounts touched in each stage, and each touch's time (the gap to the account's next touch,
    # capped at 7 days) credited to its side
    accounts, seconds = defaultdict(set), defaultdict(lambda: {"digital": 0.0, "human": 0.0})
    for acct in {t["account"] for t in touches}:
        mine = sorted((t for t in touches if t["account"] == acct), key=lambda t: (t["at"], t["event_id"]))
        for t, nxt in zip(mine, [*mine[1:], mine[-1]], strict=True):
            before = [c for c in changes if c["account"] == acct and c["at"] <= t["at"]]
            stage = max(before, key=lambda c: c["at"])["to"] if before else "(before engaged)"
            accounts[stage].add(acct)
            seconds[stage][t["side"]] += min((nxt["at"] - t["at"]).total_seconds(), 7 * 86400)
    assert {r["stage"]: r["accounts"] for r in rows} == {k: len(v) for k, v in accounts.items()}
    for r in rows:
        total = sum(seconds[r["stage"]].values())
        assert abs(r["digital_time_share"] - seconds[r["stage"]]["digital"] / total) <= 0.00005
        assert abs(r["human_time_share"] - seconds[r["stage"]]["human"] / total) <= 0.00005


def test_paths_of_won_and_lost(data) -> None:
    store, touches, _, changes, _ = data
    expect = defaultdict(int)
    for acct in {c["account"] for c in changes if c["to"] in ("won", "lost")}:
        outcome = max((c for c in changes if c["account"] == acct and c["to"] in ("won", "lost")),
                      key=lambda c: c["at"])["to"]
        chans = [t["channel"] for t in sorted((t for t in touches if t["account"] == acct), key=lambda t: t["at"])]
        collapsed = [c for i, c in enumerate(chans) if i == 0 or c != chans[i - 1]]
        expect[(outcome, " > ".join(collapsed))] += 1
    got = {(r["outcome"], r["path"]): r["accounts"] for r in recs(analytics.paths(store, limit=1000))}
    assert got == dict(expect)


def test_attribution_linear_and_first_touch_and_team_split(data) -> None:
    store, touches, _, _, won = data
    team = {name: ch.team for name, ch in DEFS.channels.items()}
    linear, first = defaultdict(float), defaultdict(float)
    for acct, (won_at, amount) in won.items():
        mine = sorted((t for t in touches if t["account"] == acct and t["at"] <= won_at), key=lambda t: t["at"])
        for t in mine:
            linear[t["channel"]] += amount / len(mine)
        first[mine[0]["channel"]] += amount
    for model, expect in (("linear", linear), ("first_touch", first)):
        got = {r["channel"]: r["credit"] for r in reports.run("attribution", store, DEFS, {"model": model})}
        assert got == pytest.approx({k: round(v, 2) for k, v in expect.items() if v}, abs=0.02)
    split = reports.run("attribution", store, DEFS, {"model": "w_shaped", "split": "team"})
    assert sum(r["credit"] for r in split) == pytest.approx(sum(a for _, a in won.values()), abs=0.1)
    assert {r["team"] for r in split} <= {"marketing", "sales"}
    expect_sales = sum(v for ch, v in linear.items() if team[ch] == "sales")
    got_sales = {r["team"]: r["credit"] for r in reports.run("attribution", store, DEFS,
                                                              {"model": "linear", "split": "team"})}["sales"]
    assert got_sales == pytest.approx(expect_sales, abs=0.1)


def test_time_in_stage(data) -> None:
    store, _, _, changes, _ = data
    stays = defaultdict(list)
    by_acct = defaultdict(list)
    for c in changes:
        by_acct[c["account"]].append(c)
    for cs in by_acct.values():
        cs = sorted(cs, key=lambda c: (c["at"], c["to"]))
        for a, b in zip(cs, cs[1:]):
            stays[a["to"]].append((b["at"] - a["at"]).total_seconds() / 3600)
    got = {r["stage"]: (r["stays"], r["max_hours"]) for r in recs(analytics.stage_durations(store))}
    assert got == {k: (len(v), round(max(v), 1)) for k, v in stays.items()}


def test_funnel_by_segment_persona_and_period_count_every_account_once(data) -> None:
    """Segment joins each account's ICP fit (its latest score row); the other groupings do not
    read the scores, and every grouping counts each account once."""
    from sinks.clickhouse.rows import SCORE_COLUMNS

    store, _, _, changes, _ = data
    accounts = sorted({c["account"] for c in changes})
    icp = set(accounts[::3])
    rows = [(a, f"{a}-score", T0, "engaged", 1.0, 30.0 if a in icp else 10.0, 31.0, "", "test", "{}", "v1")
            for a in accounts]
    store.insert("account_scores", rows, SCORE_COLUMNS)
    total = sum(r["accounts"] for r in recs(analytics.funnel(store, by="source")))
    assert total == len(accounts)
    segments = {r["group_key"]: r["accounts"] for r in recs(analytics.funnel(store, by="segment"))}
    assert segments == {"icp": len(icp), "non-icp": len(accounts) - len(icp)}
    for by in ("persona", "period"):
        assert sum(r["accounts"] for r in recs(analytics.funnel(store, by=by))) == total, by


def test_every_report_reads_the_same_through_the_read_only_store(data) -> None:
    """The API and the CLI read through ReadOnlyStore (readonly=2): every report must work there
    and give what the writer's connection gives; writes and DDL are refused by ClickHouse."""
    from sinks.clickhouse.client import ReadOnlyStore

    store = data[0]
    reader = ReadOnlyStore(store)
    account = data[1][0]["account"]
    params = {"stages": {"account": account}, "snapshot": {"account": account}, "scores": {"account": account},
              "search": {"q": account[:3]}, "alerts": {"account": account},
              "contacts": {"account": account, "at": "2026-12-01T00:00:00Z"}, "identity": {"id": account}}
    for name in reports.REPORTS:
        p = params.get(name, {})
        same = orjson.dumps(reports.run(name, reader, DEFS, p)) == orjson.dumps(reports.run(name, store, DEFS, p))
        assert same, name  # compared as JSON, as the API sends them (NaN → null)
    assert queries.timeline(reader, account) == queries.timeline(store, account)
    for sql in ("INSERT INTO alerts (alert_id) VALUES ('x')", "DROP TABLE alerts", "TRUNCATE TABLE timeline",
                "ALTER TABLE timeline DELETE WHERE 1"):
        with pytest.raises(Exception, match="readonly"):
            reader.query(sql)
    assert not hasattr(reader, "insert") and not hasattr(reader, "command")

