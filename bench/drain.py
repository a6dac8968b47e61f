"""Sustained throughput as a drain: produce a backlog first, then start the worker and time it.

    python -m bench.drain --events 20000                  # one `journeys worker` process (default roles)
    python -m bench.drain --events 20000 --profile /tmp/p  # + py-spy of every worker process
    python -m bench.drain --events 10000 --store /tmp/tl10m  # into a copy of a 10M-event store

The producer does not compete with the worker for the cores (it is done before the worker
starts), so the figure is the engine's, not the harness's (issue #17, "Benchmark method").
The clock starts when the worker process starts and stops when the store's ``stats().events``
(distinct stored event ids) reaches the backlog; ``to_api_s`` (start-up) is reported beside it
and subtracted in ``per_s``.

With ``--store`` the worker writes into a copy of an existing embedded store (e.g. the 10M-event
store ``bench.timeline_query`` builds): the store process's work after each batch grows with the
store (``docs/benchmarks.md``), which an empty store never shows. The clock then stops when every
consumer group has committed every pipeline topic (zero lag; the store commits only what it has
stored and re-resolved), and ``stored_events`` checks the count afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from bench import harness
from bench.synth import SynthConfig, generate
from tests.support.tracker import Tracker

WORKER_ENV = {"JOURNEYS_TOPIC_PARTITIONS": "4", "JOURNEYS_SINK_BATCH_SIZE": "5000", "JOURNEYS_SINK_FLUSH_SECONDS": "1.0",
              "JOURNEYS_COMMIT_INTERVAL": "0.2"}


def drain(bootstrap: str, work: Path, events: int, seed: int, timeout: float, profile: Path | None = None,
          env: dict[str, str] | None = None, split: bool = False, streams: int = 1,
          store: Path | None = None) -> dict[str, Any]:
    """``split``: the store role in one process and the stream role in ``streams`` others (one
    consumer group: each takes a share of the partitions). ``store``: an embedded store to copy
    and drain into (left as it was)."""
    prefix = f"drain-{uuid.uuid4().hex[:8]}-"
    roles = {"JOURNEYS_ROLES": "store"} if split else {}
    if store is not None:
        copy_began = time.perf_counter()
        shutil.copytree(store, work / "store-copy", symlinks=True)
        roles["JOURNEYS_CLICKHOUSE_URL"] = f"chdb://{work / 'store-copy'}"
        copy_s = time.perf_counter() - copy_began
    tracker = harness.make_tracker(bootstrap, work, prefix, **{**WORKER_ENV, **(env or {}), **roles})
    streamers = [Tracker(bootstrap, work, prefix, extra_env={**WORKER_ENV, **(env or {}), "JOURNEYS_ROLES": "stream"},
                         index=1 + i) for i in range(streams)] if split else []
    lines = [orjson.dumps(s.obj) for s in islice(generate(SynthConfig(events=events, seed=seed)), events)]
    accounts = {s.account for s in islice(generate(SynthConfig(events=events, seed=seed)), events) if s.account}
    try:
        tracker.start()  # declares the topics with the worker's partitions, then stops
        tracker.stop()
        procs = []
        _, produce_s = harness.produce_lines(bootstrap, tracker.topic("journeys-inbound-v1"), lines)
        spies: list[subprocess.Popen] = []
        began = time.perf_counter()
        tracker.start(wait=False)
        for streamer in streamers:
            streamer.start(wait=False)
        tracker.wait_until(lambda: tracker.stats() is not None, timeout, "the worker API")
        # every process of every worker: `journeys worker` alone runs two (streams.processes)
        procs = tracker.pids() + [pid for streamer in streamers for pid in streamer.pids()]
        api_s = time.perf_counter() - began
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            for pid in procs:
                spies.append(subprocess.Popen(
                    [py_spy(), "record", "-r", "50", "-p", str(pid), "-f", "raw", "-o", str(profile / f"{pid}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cpu_before = {pid: cpu_seconds(pid) for pid in procs}
        if store is None:
            # every generated event is valid, ids distinct; polled once a second: the count query
            # costs the store CPU (at 0.3 s it took 13% of the store's samples in a py-spy profile)
            tracker.wait_until(lambda: int((tracker.stats() or {}).get("events", 0)) >= events, timeout,
                               f"{events} events stored", interval=1.0)
        else:  # a count over millions of stored events would cost the store more than the drain
            reads: dict[str, set[str]] = {}
            for role, group in tracker.groups().items():
                reads.setdefault(group, set()).update(tracker.topic(spec.name) for spec in harness.PIPELINE_TOPICS[role])
            probe = harness.LagProbe(bootstrap, reads)
            try:
                tracker.wait_until(lambda: probe.lag() == 0, timeout, "zero consumer lag", interval=1.0)
            finally:
                probe.close()
        seconds = time.perf_counter() - began
        cpu = {pid: round(cpu_seconds(pid) - cpu_before.get(pid, 0.0), 2) for pid in procs}
        for spy in spies:
            spy.send_signal(2)
            spy.wait(30)
        records = topic_records(bootstrap, prefix)
        changelog = changelog_bytes(bootstrap, prefix)
        big = {}
        if store is not None:
            big = {"store": str(store), "store_copy_s": round(copy_s, 1),
                   "stored_events": int((tracker.stats() or {}).get("events", 0))}
        return {**big, "events": events, "records_per_event": {k: round(v / events, 2) for k, v in records.items()},
                "changelog_bytes_per_event": {k: round(v / events) for k, v in changelog.items()}, "accounts": len(accounts), "produce_s": round(produce_s, 2),
                "to_api_s": round(api_s, 2), "cpu_s_by_process": list(cpu.values()),
                "cpu_ms_per_event": round(1000 * sum(cpu.values()) / events, 2), "seconds": round(seconds, 2),
                "per_s": round(events / max(1e-9, seconds - api_s), 1), "split_roles": split, "stream_processes": len(streamers) or 1, "processes": len(procs), "worker_env": {**WORKER_ENV, **(env or {})}}
    finally:
        for streamer in streamers:
            streamer.stop()
        tracker.stop()
        harness.delete_topics(bootstrap, prefix)


def topic_records(bootstrap: str, prefix: str) -> dict[str, int]:
    """Records written to each of the run's topics (end offsets summed over partitions)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        out = {}
        for name in sorted(n for n in consumer.topics() if n.startswith(prefix)):
            parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
            out[name[len(prefix):]] = sum(consumer.end_offsets(parts).values())
        return out
    finally:
        consumer.close()


def changelog_bytes(bootstrap: str, prefix: str) -> dict[str, int]:
    """Bytes (keys + values) written to each of the run's table changelogs."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        out: dict[str, int] = {}
        for name in sorted(n for n in consumer.topics() if n.startswith(prefix) and n.endswith("-changelog")):
            parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
            ends = consumer.end_offsets(parts)
            if not sum(ends.values()):
                continue
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            total = 0
            while any(consumer.position(tp) < ends[tp] for tp in parts):
                for batch in consumer.poll(timeout_ms=2000).values():
                    for msg in batch:
                        total += len(msg.key or b"") + len(msg.value or b"")
            out[name[len(prefix):]] = total
        return out
    finally:
        consumer.close()


def py_spy() -> str:
    """py-spy on the PATH, else the one installed beside this Python (the venv's ``[test]`` extra)."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else "py-spy")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.drain", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bootstrap", default=harness.default_bootstrap())
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--profile", type=Path, help="write py-spy raw stacks of the worker processes here")
    p.add_argument("--split", action="store_true", help="the stream and store roles as two processes")
    p.add_argument("--streams", type=int, default=1, help="with --split: stream-role processes (default 1)")
    p.add_argument("--env", action="append", default=[], help="extra worker setting NAME=VALUE")
    p.add_argument("--store", type=Path, help="drain into a copy of this embedded store (e.g. bench.timeline_query's)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="drain-"))
    started = harness.ensure_broker(args.bootstrap)
    try:
        env = dict(kv.split("=", 1) for kv in args.env)
        result = drain(args.bootstrap, work, args.events, args.seed, args.timeout, args.profile, env, args.split,
                       args.streams, args.store)
    finally:
        if started:
            harness.stop_broker()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
