"""Account-timeline query latency (``journeys timeline``'s SQL) on a store of a chosen size.

The store is built without Kafka: a generated base set goes through the identity rules in
process (bench/simulate.py), then ClickHouse copies it ``k`` times with every identifier
suffixed ``~k`` (events, accounts, persons, devices and their links), so 10M events are
10M/base independent copies of realistic accounts, resolved through the same kinds of links.
Queries pick random accounts of random copies.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import orjson

from bench.pipeline import summary
from bench.simulate import InProcessPipeline
from bench.synth import SynthConfig, generate
from sinks.clickhouse import queries
from sinks.clickhouse.client import Store

_IDS = ("event_id", "account_id", "anonymous_id", "user_id", "email", "contact_id", "group_id", "person_id",
        "journey_account_id")


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
    return accounts, copies


def run(path: Path, events: int, queries_n: int, *, base: int = 20_000, seed: int = 11) -> dict[str, Any]:
    store = Store(f"chdb://{path}")
    try:
        began = time.perf_counter()
        accounts, copies = build(store, events, min(base, events), seed)
        build_s = time.perf_counter() - began
        (stored,), = store.query("SELECT count() FROM timeline")[1]
        rng = random.Random(seed)
        latencies, sizes = [], []
        for _ in range(queries_n):
            copy = rng.randint(0, copies)
            account = rng.choice(accounts) + (f"~{copy}" if copy else "")
            t = time.perf_counter()
            _, rows = queries.timeline(store, account, limit=10_000)
            latencies.append(time.perf_counter() - t)
            sizes.append(len(rows))
    finally:
        store.close()
    if stored < 0.9 * events:
        raise RuntimeError(f"timeline store holds {stored} events, wanted about {events}")
    return {"events": int(stored), "copies_of_base": copies + 1, "build_s": round(build_s, 1),
            "rows_per_timeline_mean": round(sum(sizes) / max(1, len(sizes)), 1), "query_s": summary(latencies)}
