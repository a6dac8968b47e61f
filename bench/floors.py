"""Floors: what the pipeline's parts can do alone, on the same machine and the same events.

* ``kafka_consume`` — raw kafka-python consumption of the events from the broker (a fresh topic
  with the tracker's partition count); the producer rate is recorded on the way.
* ``aiokafka_consume`` and ``faust_agent`` — the same topic read by a bare aiokafka consumer and by
  a trivial Faust agent that only counts, per event and in ``take`` batches (bench/faust_floor.py):
  the ceilings of the client and the framework the worker is built on.
* ``parse_validate`` — ``schemas.decode.decode`` (orjson + pydantic) per event.
* ``identity_rules`` — the identity path in one process (bench/simulate.py: decode, normalise,
  device and person rules), no Kafka, no Faust.
* ``chdb_insert`` — the timeline row mapper + ``Store.insert`` in sink-sized blocks into a fresh
  embedded store (the engine the worker writes to).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from bench import faust_floor, harness
from bench.simulate import InProcessPipeline
from schemas.decode import decode
from sinks.clickhouse import ddl
from sinks.clickhouse.client import Store
from sinks.clickhouse.rows import TIMELINE_COLUMNS, timeline_row
from streams.rules.normalize import normalize


def _rate(count: int, seconds: float) -> dict[str, Any]:
    return {"events": count, "seconds": round(seconds, 3), "per_s": round(count / seconds, 1) if seconds else None}


def kafka_consume(bootstrap: str, lines: list[bytes], partitions: int) -> dict[str, Any]:
    topic = f"bench-floor-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
        sent, produce_s = harness.produce_lines(bootstrap, topic, lines)
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                 enable_auto_commit=False, consumer_timeout_ms=30_000,
                                 max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
        got, began = 0, time.perf_counter()
        for _ in consumer:
            got += 1
            if got >= sent:
                break
        seconds = time.perf_counter() - began
        consumer.close()
        return {"consume": _rate(got, seconds), "produce": _rate(sent, produce_s),
                "aiokafka_consume": faust_floor.aiokafka_consume(bootstrap, topic, sent),
                "faust_agent": faust_floor.faust_agent(bootstrap, topic, sent),
                "faust_agent_take": faust_floor.faust_agent(bootstrap, topic, sent, take=1000)}
    finally:
        admin.delete_topics([topic])
        admin.close()


def parse_validate(lines: list[bytes]) -> dict[str, Any]:
    now, skew = datetime.now(timezone.utc), timedelta(seconds=300)
    began = time.perf_counter()
    for line in lines:
        decode(line, received_at=now, max_future=skew)
    return _rate(len(lines), time.perf_counter() - began)


def identity_rules(lines: list[bytes]) -> dict[str, Any]:
    began = time.perf_counter()
    InProcessPipeline().feed_all(lines)
    return _rate(len(lines), time.perf_counter() - began)


def chdb_insert(lines: list[bytes], path: Path, batch: int) -> dict[str, Any]:
    now, skew = datetime.now(timezone.utc), timedelta(seconds=300)
    entries = []
    for line in lines:
        event, when = decode(line, received_at=now, max_future=skew)
        entries.append(normalize(event, event_time=when, received_at=now, source="bench"))
    store = Store(f"chdb://{path}")
    try:
        ddl.migrate(store)
        began = time.perf_counter()
        for i in range(0, len(entries), batch):
            rows = [timeline_row(e) for e in entries[i : i + batch]]
            store.insert("timeline", rows, TIMELINE_COLUMNS, dedup_token=f"floor-{i}")
        seconds = time.perf_counter() - began
    finally:
        store.close()
    out = _rate(len(entries), seconds)
    out["batch_rows"] = batch
    return out


def run(bootstrap: str, lines: list[bytes], work: Path, *, partitions: int, batch: int) -> dict[str, Any]:
    return {
        "kafka": kafka_consume(bootstrap, lines, partitions),
        "parse_validate": parse_validate(lines),
        "identity_rules": identity_rules(lines),
        "chdb_insert": chdb_insert(lines, work / "floor-store", batch),
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.floors --events N``: the Kafka, aiokafka and Faust floors alone, as JSON."""
    import argparse
    import json
    from itertools import islice

    import orjson

    from bench.synth import SynthConfig, generate

    p = argparse.ArgumentParser(prog="python -m bench.floors", description=main.__doc__)
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--bootstrap", default=harness.default_bootstrap())
    a = p.parse_args(argv)
    lines = [orjson.dumps(s.obj) for s in islice(generate(SynthConfig(events=a.events, seed=1001)), a.events)]
    print(json.dumps(kafka_consume(a.bootstrap, lines, a.partitions), indent=2))


if __name__ == "__main__":
    main()
