"""Account-timeline query and journey-page data latency on a store of a chosen size.

    python -m bench.timeline_query --events 10000000 --queries 20 --path /tmp/tl10m [--reuse]

The store is built without Kafka: a generated base set goes through the identity rules in
process (bench/simulate.py), then ClickHouse copies it ``k`` times with every identifier
suffixed ``~k`` (events, accounts, persons, devices and their links), so 10M events are
10M/base independent copies of realistic accounts, resolved through the same kinds of links.
The journey tables the page reads are derived from the copied timeline with one
``INSERT … SELECT`` each: ``account_scores`` (one row per event of an account, as the journey
agent writes), ``stage_changes`` (one to five per account) and ``alerts`` (one to three per account).

Queries pick random accounts of random copies. ``query_s`` is the timeline the API serves
(``queries.account_timeline``: the account's rows of ``account_events``) alone;
``query_time_resolution_s`` the same account resolved at query time (``queries.timeline``, keyed
look-ups: what the API served before migration 14; for an account merged into another, that
one's, as the API shows it), and ``timelines_agree`` how many of the accounts got the same
events from both;
``page_s`` is the journey page's data (streams/web/static/account.js ``load()``): the timeline
with the page's limit and the stages, snapshot, scores and alerts reports, called through the
same Python functions as the API, one after the other (the store answers one query at a time,
so their sum is about what the page waits for); ``page_slowest_s`` is the slowest of the five;
``page_cpu_s`` the CPU time this process spent on the five (less sensitive to other load on the
machine). Measured after the bulk load's background merges are done (``settle_s``).
``answers_sha256`` hashes the journey pages' answers; ``reports_sha256`` each cross-team report's
answer (``reports_s`` times them): the same store must give the same hashes after a change.
``refresh_1000_s``: re-resolving 1,000 random stored events (the store process's work after a
timeline batch) on this store, timed last.
``--reuse`` keeps a store that already holds about ``--events`` events (migrations still run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.pipeline import summary
from bench.simulate import InProcessPipeline
from bench.synth import SynthConfig, generate
from schemas.definitions import load
from sinks.clickhouse import ddl, queries, resolution
from sinks.clickhouse.client import ReadOnlyStore, Store
from streams import reports

_IDS = ("event_id", "account_id", "anonymous_id", "user_id", "email", "contact_id", "group_id", "person_id",
        "journey_account_id")
PAGE_LIMIT = 5000
"""``TIMELINE_LIMIT`` of streams/web/static/account.js."""
PAGE_REPORTS = ("stages", "snapshot", "scores", "alerts")
AGGREGATE_REPORTS: dict[str, dict[str, str]] = {
    "funnel": {"by": "source"}, "acceptance": {}, "handoff": {"by": "rep"}, "time-share": {}, "paths": {},
    "stage-durations": {}, "attribution": {"model": "w_shaped"},
}
"""The cross-team reports (streams/reports.py), each over the whole store, as the API runs them."""

_STAGES = "['engaged', 'mql', 'sal', 'sql', 'opportunity']"
# Derived from the (copied) timeline; every copy's account gets its own rows.
_SCORES_SQL = f"""
INSERT INTO account_scores (account_id, event_id, at, stage, engagement, fit, total, owner, source, committee,
                            definitions_version)
SELECT journey_account_id, event_id, event_time, {_STAGES}[1 + cityHash64(journey_account_id) % 5],
       cityHash64(event_id) % 80, cityHash64(journey_account_id) % 40,
       cityHash64(event_id) % 80 + cityHash64(journey_account_id) % 40,
       concat('rep-', toString(cityHash64(journey_account_id) % 7)), 'bench',
       if(person_id = '', '{{}}', toJSONString(map('practitioner', [person_id]))), 'bench'
FROM timeline WHERE journey_account_id != ''
"""
_ACCOUNTS = ("(SELECT journey_account_id AS a, min(event_time) AS t0, max(event_time) AS t1 "
             "FROM timeline WHERE journey_account_id != '' GROUP BY a)")
_STAGE_CHANGES_SQL = f"""
INSERT INTO stage_changes (change_id, account_id, from_stage, to_stage, at, rule, definitions_version, event_id,
                           contact_id, source, persona, valid, version)
SELECT concat(a, '/', {_STAGES}[i]), a, if(i = 1, '', {_STAGES}[i - 1]), {_STAGES}[i],
       addMilliseconds(t0, intDiv(dateDiff('millisecond', t0, t1) * i, 6)), 'bench', 'bench', '', '', 'bench',
       'practitioner', 1, 1
FROM {_ACCOUNTS}
ARRAY JOIN range(1, 2 + cityHash64(a) % 5) AS i
"""
_ALERTS_SQL = f"""
INSERT INTO alerts (alert_id, rule, account_id, at, owner, summary, definitions_version, path, link)
SELECT hex(MD5(concat(a, '/', toString(i)))), ['channel_bounce', 'missed_handoff', 'committee_gap'][i], a,
       addMilliseconds(t0, intDiv(dateDiff('millisecond', t0, t1) * i, 4)), 'rep-1', 'bench alert', 'bench', '[]', ''
FROM {_ACCOUNTS}
ARRAY JOIN range(1, 2 + cityHash64(a) % 3) AS i
"""


def _suffixed(column: str) -> str:
    return f"if({column} = '', '', concat({column}, '~', toString(n))) AS {column}"


def build(store: Store, events: int, base: int, seed: int) -> tuple[list[str], int]:
    """Fill the store to about ``events`` rows; the base set's accounts and the copy count."""
    pipeline = InProcessPipeline().feed_all(orjson.dumps(s.obj) for s in generate(SynthConfig(events=base, seed=seed)))
    pipeline.store_into(store)
    accounts = sorted({link.dsts[0] for link in pipeline.links.values() if link.kind == "person_account"})
    copies = max(0, math.ceil(events / max(1, len(pipeline.rows))) - 1)
    cols = {name for (name,) in store.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'timeline'")[1]}
    replaced = ", ".join(_suffixed(c) for c in _IDS if c in cols)
    for first in range(1, copies + 1, 10):  # ten copies per statement keep memory flat
        last = min(copies, first + 9)
        # the base rows only (filtered in a subquery: WHERE would see the REPLACE aliases)
        store.command(f"INSERT INTO timeline SELECT * REPLACE ({replaced}) FROM "
                      f"(SELECT * FROM timeline WHERE position(event_id, '~') = 0) "
                      f"ARRAY JOIN range({first}, {last + 1}) AS n")
        store.command(f"INSERT INTO identity_links SELECT * REPLACE ({_suffixed('src')}, "
                      f"arrayMap(x -> concat(x, '~', toString(n)), dsts) AS dsts) FROM "
                      f"(SELECT * FROM identity_links WHERE position(src, '~') = 0) "
                      f"ARRAY JOIN range({first}, {last + 1}) AS n")
    for sql in (_SCORES_SQL, _STAGE_CHANGES_SQL, _ALERTS_SQL):
        store.command(sql)
    resolution.refresh_all(store)  # the copies' events resolved, as the store process does per batch
    return accounts, copies


def existing(store: Store) -> tuple[list[str], int]:
    """The base accounts and copy count of a store :func:`build` filled earlier."""
    _, rows = store.query("SELECT DISTINCT dsts[1] FROM identity_links FINAL "
                          "WHERE kind = 'person_account' AND position(src, '~') = 0")
    (base, total), = store.query("SELECT countIf(position(event_id, '~') = 0), count() FROM timeline")[1]
    return sorted(r[0] for r in rows), max(0, round(total / max(1, base)) - 1)


def settle(store: Store, timeout: float = 300.0) -> float:
    """Wait (up to ``timeout`` s) until the background merges of the bulk load are done, so the
    queries are measured on the store, not against its merges (chDB merges in this process)."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        (running,), = store.query("SELECT count() FROM system.merges WHERE database = currentDatabase()")[1]
        if not running:
            break
        time.sleep(1.0)
    return time.perf_counter() - began


def page(store: ReadOnlyStore, defs: Any, account: str) -> tuple[dict[str, float], float, int, Any]:
    """The journey page's five calls, one after the other: seconds per call, CPU seconds of this
    process (chDB's threads included), timeline rows, answers."""
    took, answers = {}, []
    cpu = time.process_time()
    t = time.perf_counter()
    _, rows = queries.account_timeline(store, account, limit=PAGE_LIMIT)
    took["timeline"] = time.perf_counter() - t
    answers.append(rows)
    for name in PAGE_REPORTS:
        t = time.perf_counter()
        answers.append(reports.run(name, store, defs, {"account": account}))
        took[name] = time.perf_counter() - t
    return took, time.process_time() - cpu, len(rows), answers


def aggregate_reports(store: ReadOnlyStore, defs: Any, repeats: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Seconds per cross-team report over the whole store (``repeats`` runs each, one at a time),
    and a sha256 of each report's answer (the first run's; a faster report must give the same)."""
    took: dict[str, list[float]] = {}
    digests: dict[str, str] = {}
    for _ in range(repeats):
        for name, params in AGGREGATE_REPORTS.items():
            t = time.perf_counter()
            answer = reports.run(name, store, defs, params)
            took.setdefault(name, []).append(time.perf_counter() - t)
            digests.setdefault(name, hashlib.sha256(repr(answer).encode()).hexdigest())
    return {name: summary(v) for name, v in took.items()}, digests


def refresh_cost(store: Store, seed: int, events: int = 1000, runs: int = 3) -> dict[str, Any]:
    """Seconds the store process spends re-resolving ``events`` random stored events (what it does
    after each timeline batch, :func:`resolution.refresh`) on this store: ``runs`` samples. The
    answer is unchanged (same links), so the reports above are not affected; runs last."""
    took = []
    for n in range(runs):
        _, rows = store.query("SELECT account_id, event_id FROM timeline ORDER BY cityHash64(event_id, {s:UInt64}) "
                              "LIMIT {n:UInt32}", {"s": seed * 100 + n, "n": events})
        began = time.perf_counter()
        resolution.refresh(store, [(str(a), str(e)) for a, e in rows])
        took.append(time.perf_counter() - began)
    return summary(took)


def run(path: Path, events: int, queries_n: int, *, base: int = 20_000, seed: int = 11,
        reuse: bool = False, report_repeats: int = 3) -> dict[str, Any]:
    store = Store(f"chdb://{path}")
    try:
        began = time.perf_counter()
        ddl.migrate(store)
        migrate_s = time.perf_counter() - began
        (stored,), = store.query("SELECT count() FROM timeline")[1]
        reused = reuse and stored >= 0.9 * events
        if stored and not reused:
            raise RuntimeError(f"{path} already holds {stored} events: pass --reuse, or a new path")
        began = time.perf_counter()
        accounts, copies = existing(store) if reused else build(store, events, min(base, events), seed)
        build_s = time.perf_counter() - began
        settle_s = settle(store)
        (stored,), = store.query("SELECT count() FROM timeline")[1]
        (scores_n, changes_n, alerts_n), = store.query(
            "SELECT (SELECT count() FROM account_scores), (SELECT count() FROM stage_changes), "
            "(SELECT count() FROM alerts)")[1]
        defs, reader = load(), ReadOnlyStore(store)  # what the API queries through
        rng = random.Random(seed)
        latencies, sizes, pages, slowest, cpus, calls, query_time, agree = [], [], [], [], [], {}, [], 0
        digest = hashlib.sha256()
        for _ in range(queries_n):
            copy = rng.randint(0, copies)
            account = rng.choice(accounts) + (f"~{copy}" if copy else "")
            took, cpu, n, answers = page(reader, defs, account)
            shown = queries.canonical_account(reader, account) or account  # a merged account shows its company's
            t = time.perf_counter()
            _, resolved_now = queries.timeline(reader, shown, limit=PAGE_LIMIT)
            query_time.append(time.perf_counter() - t)
            event_id = queries.TIMELINE_OUT_COLUMNS.index("event_id")
            agree += {r[event_id] for r in resolved_now} == {r[event_id] for r in answers[0]}
            cpus.append(cpu)
            latencies.append(took["timeline"])
            sizes.append(n)
            pages.append(sum(took.values()))
            slowest.append(max(took.values()))
            for name, s in took.items():
                calls.setdefault(name, []).append(s)
            digest.update(repr((account, answers)).encode())
        store.insert("channel_definitions", ddl.channel_rows(defs.channels, defs.version, 1), ddl.CHANNEL_COLUMNS)
        report_s, report_sha = aggregate_reports(reader, defs, report_repeats) if report_repeats else ({}, {})
        refresh_s = refresh_cost(store, seed)
        settle(store, timeout=120.0)  # quiet before it is closed: bench.run drains into a copy of it
    finally:
        store.close()
    if stored < 0.9 * events:
        raise RuntimeError(f"timeline store holds {stored} events, wanted about {events}")
    return {"events": int(stored), "copies_of_base": copies + 1, "reused": reused, "build_s": round(build_s, 1),
            "migrate_s": round(migrate_s, 1), "settle_s": round(settle_s, 1),
            "rows": {"account_scores": int(scores_n), "stage_changes": int(changes_n), "alerts": int(alerts_n)},
            "rows_per_timeline_mean": round(sum(sizes) / max(1, len(sizes)), 1), "query_s": summary(latencies),
            "query_time_resolution_s": summary(query_time), "timelines_agree": f"{agree}/{queries_n}",
            "page_s": summary(pages), "page_slowest_s": summary(slowest), "page_cpu_s": summary(cpus),
            "page_calls_s": {name: summary(v) for name, v in calls.items()},
            "reports_s": report_s, "reports_sha256": report_sha, "refresh_1000_s": refresh_s,
            "answers_sha256": digest.hexdigest()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.timeline_query", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=10_000_000, help="store size (events)")
    p.add_argument("--queries", type=int, default=20, help="accounts queried (one page each)")
    p.add_argument("--path", type=Path, required=True, help="chDB data directory of the store")
    p.add_argument("--reuse", action="store_true", help="keep a store already holding about --events events")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--report-repeats", type=int, default=3, help="runs of each cross-team report (0: none)")
    args = p.parse_args(argv)
    print(json.dumps(run(args.path, args.events, args.queries, seed=args.seed, reuse=args.reuse,
                         report_repeats=args.report_repeats), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
