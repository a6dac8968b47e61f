"""The worker with 10k, 100k, 1M accounts of state: resident memory per account, and a restart.

    python -m bench.state_scale                                  # 10k, 100k, 1M accounts
    python -m bench.state_scale --accounts 10000,100000 --backlog 5000

Issue #17 asks for ≤ 1 KiB resident per tracked account (measured between 10k and 100k
accounts, not on the few hundred the pipeline benchmark reaches) and a restart to caught up in
≤ 30 s with 1M accounts of state. Producing 1M accounts' events through the pipeline would take
hours, so the state is **grown by copying real state**:

1. A template: a fresh worker drains ``--template-events`` generated events (bench.synth) and
   stops; its stages' RocksDB tables then hold real states (journeys, persons, devices).
2. Each step copies every template key of ``journeys``, ``identity-persons`` and
   ``identity-devices`` under a new key (``<key>~<copy>``, the value's bytes as they are) into
   the database of the partition the new key hashes to (Kafka's default partitioner, as the
   stage inputs are keyed), until the journeys table holds ``N`` keys (a sorted SST file per
   partition, ingested: RocksDB's bulk load), then compacts each database. ``event-ids`` (the dedupe window) is not copied: its size follows events per
   ``JOURNEYS_DEDUPE_DAYS``, not accounts; ``lead-sources`` has one key per lead source.
3. A ``--backlog`` of new generated events is produced while the worker is down; the worker is
   started and timed until every backlog event is stored and every pipeline topic is committed
   (``to_caught_up_s``, the same definition as the pipeline benchmark's restart). Its RSS (both
   processes) is read once it is caught up.

The copies are never read by the backlog (their keys get no events): they are what a worker
holding that many accounts carries — database files, index and filter blocks, the shared
block cache (``JOURNEYS_TABLE_MEMORY_MB``) — not traffic to them. ``marginal_kb_per_account``
is the RSS slope between the first two steps (10k → 100k).
"""

from __future__ import annotations

import argparse
import json
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
from aiokafka.partitioner import murmur2

from bench import harness
from bench.drain import WORKER_ENV, py_spy
from bench.synth import SynthConfig, generate
from streams import tables
from streams.processes import children
from streams.settings import Settings

COPIED = ("journeys", "identity-persons", "identity-devices")
"""The tables whose keys are per account, person or device (copied); see the module."""
OFFSET_KEY = b"__faust\0offset__"
"""Faust's key for a partition database's persisted changelog offset (``faust.stores.rocksdb``)."""


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java's, aiokafka's) gives a record keyed ``key``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def table_dbs(data_dir: Path) -> dict[str, dict[int, Path]]:
    """``{table: {partition: database directory}}`` of the RocksDB tables under a worker's data dir."""
    out: dict[str, dict[int, Path]] = {}
    for path in data_dir.rglob("*.db"):
        stem, _, part = path.name[: -len(".db")].rpartition("-")
        if path.is_dir() and part.isdigit():
            table = stem.split("-", 1)[1] if stem.startswith("app-") else stem
            out.setdefault(table, {})[int(part)] = path
    return out


def _options() -> Any:
    """The worker's own RocksDB options (bloom filters, block size…: ``streams.tables``), so the
    seeded files are those the worker would have written."""
    return tables.BoundedRocksDBOptions(**tables.rocksdb_options(Settings()), use_rocksdict=True).as_options()


def _open(path: Path) -> Any:
    import rocksdict

    return rocksdict.Rdict(str(path), _options())


def load_template(dbs: dict[int, Path], partitions: int) -> list[tuple[str, bytes]]:
    """Every ``(key, value bytes)`` of one table, each checked to sit in the partition its key
    hashes to (else the copies would not be placed as the worker places keys)."""
    rows: list[tuple[str, bytes]] = []
    for part, path in sorted(dbs.items()):
        db = _open(path)
        try:
            for raw_key, value in db.items():
                if raw_key == OFFSET_KEY:
                    continue
                key = orjson.loads(raw_key)
                if not isinstance(key, str) or orjson.dumps(key) != raw_key:
                    raise ValueError(f"{path}: key {raw_key[:40]!r} is not a JSON string as written by Faust")
                if partition_of(key, partitions) != part:
                    raise ValueError(f"{path}: key {key[:40]!r} hashes to partition "
                                     f"{partition_of(key, partitions)}, not {part}")
                rows.append((key, bytes(value)))
        finally:
            db.close()
    return rows


def grow(dbs: dict[int, Path], template: list[tuple[str, bytes]], copies: range, partitions: int,
         scratch: Path) -> int:
    """Write copy ``c`` of every template key (``<key>~<c>``) for each ``c`` in ``copies`` into its
    partition's database; the keys written. Each partition's new keys go in one sorted SST file,
    ingested (RocksDB's bulk load: no memtable, no write-ahead log, no compaction of what was
    just written — through puts, 1M accounts took 6 minutes to seed)."""
    import rocksdict

    by_part: dict[int, list[tuple[bytes, bytes]]] = {part: [] for part in dbs}
    for copy in copies:
        for key, value in template:
            new = f"{key}~{copy}"
            by_part[partition_of(new, partitions)].append((orjson.dumps(new), value))
    written = 0
    scratch.mkdir(parents=True, exist_ok=True)
    for part, rows in by_part.items():
        if not rows:
            continue
        rows.sort(key=lambda row: row[0])
        sst = scratch / f"{dbs[part].name}-{copies.start}-{copies.stop}.sst"
        writer = rocksdict.SstFileWriter(_options())
        writer.open(str(sst))
        for key, value in rows:
            writer[key] = value
        writer.finish()
        db = _open(dbs[part])
        try:
            db.ingest_external_file([str(sst)])
            db.compact_range(None, None)  # the layout of a database that has run a while, not files just added
        finally:
            db.close()
        sst.unlink()
        written += len(rows)
        rows.clear()
    return written


def disk_mb(paths: list[Path]) -> float:
    return round(sum(f.stat().st_size for p in paths for f in p.rglob("*") if f.is_file()) / 2**20, 1)


def _spy(tracker: Any, into: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy (raw stacks, 50 Hz) on the worker's processes as soon as they exist."""
    into.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 10
    while not children(tracker.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [subprocess.Popen([py_spy(), "record", "-r", "50", "-p", str(pid), "-f", "raw", "-o", str(into / f"{pid}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in tracker.pids()]


def run(bootstrap: str, work: Path, steps: list[int], backlog: int, template_events: int, seed: int,
        timeout: float, profile: Path | None = None) -> dict[str, Any]:
    prefix = f"scale-{uuid.uuid4().hex[:8]}-"
    env = dict(WORKER_ENV)
    partitions = int(env["JOURNEYS_TOPIC_PARTITIONS"])
    tracker = harness.make_tracker(bootstrap, work, prefix, **env)
    produced = 0
    out: dict[str, Any] = {"template_events": template_events, "backlog_events": backlog, "worker_env": env,
                           "steps": []}
    try:
        lines = [orjson.dumps(s.obj) for s in islice(generate(SynthConfig(events=template_events, seed=seed)),
                                                     template_events)]
        harness.produce_lines(bootstrap, tracker.topic("journeys-inbound-v1"), lines)
        produced += len(lines)
        tracker.start()
        harness.wait_caught_up(tracker, produced, timeout)
        tracker.stop()
        dbs = table_dbs(tracker.data_dir)
        missing = [t for t in COPIED if t not in dbs]
        if missing:
            raise RuntimeError(f"no RocksDB table {missing} under {tracker.data_dir}: found {sorted(dbs)}")
        templates = {t: load_template(dbs[t], partitions) for t in COPIED}
        per_copy = len(templates["journeys"])
        out["template_keys"] = {t: len(rows) for t, rows in templates.items()}
        out["template_value_bytes"] = {t: sum(len(v) for _, v in rows) for t, rows in templates.items()}
        copies = 0
        for target in steps:
            began = time.perf_counter()
            want = max(0, -(-(target - per_copy) // per_copy))  # copies beside the template itself
            written = sum(grow(dbs[t], templates[t], range(copies + 1, want + 1), partitions, work / "sst")
                          for t in COPIED)
            copies = max(copies, want)
            seed_s = time.perf_counter() - began
            accounts = per_copy * (copies + 1)
            lines = [orjson.dumps(s.obj) for s in islice(generate(SynthConfig(events=backlog, seed=seed + target)),
                                                         backlog)]
            harness.produce_lines(bootstrap, tracker.topic("journeys-inbound-v1"), lines)
            produced += len(lines)
            began = time.perf_counter()
            tracker.start(wait=False)
            spies = _spy(tracker, profile / str(target)) if profile is not None else []
            tracker.wait_until(lambda: tracker.stats() is not None, timeout, "the worker API")
            api_s = time.perf_counter() - began
            harness.wait_caught_up(tracker, produced, timeout, settle=0)
            caught_up_s = time.perf_counter() - began
            for spy in spies:
                spy.send_signal(2)
                spy.wait(30)
            rss_mb = harness.worker_rss_kb(tracker.proc.pid) / 1024
            kids = children(tracker.proc.pid)  # the stream role's process (streams.processes): the tables
            stream_mb = sum(harness.rss_kb(pid) for pid in kids) / 1024 if kids else None
            stop_began = time.perf_counter()
            tracker.stop()
            step = {"accounts": accounts, "keys_written": written, "seed_s": round(seed_s, 1),
                    "table_disk_mb": disk_mb([p for t in dbs.values() for p in t.values()]),
                    "to_api_s": round(api_s, 2), "to_caught_up_s": round(caught_up_s, 2),
                    "stop_s": round(time.perf_counter() - stop_began, 2), "rss_mb": round(rss_mb, 1),
                    "stream_rss_mb": round(stream_mb, 1) if stream_mb is not None else None}
            out["steps"].append(step)
            print(json.dumps(step), flush=True)
        first, second = out["steps"][0], out["steps"][1] if len(out["steps"]) > 1 else None
        if second is not None and second["accounts"] > first["accounts"]:
            span = second["accounts"] - first["accounts"]
            out["marginal_kb_per_account"] = round((second["rss_mb"] - first["rss_mb"]) * 1024 / span, 3)
            if first["stream_rss_mb"] is not None and second["stream_rss_mb"] is not None:
                out["stream_marginal_kb_per_account"] = round(
                    (second["stream_rss_mb"] - first["stream_rss_mb"]) * 1024 / span, 3)
        return out
    finally:
        tracker.stop()
        harness.delete_topics(bootstrap, prefix)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.state_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--accounts", default="10000,100000,1000000",
                   type=lambda s: sorted(int(x) for x in s.split(",")), help="accounts of state at each step")
    p.add_argument("--backlog", type=int, default=5_000, help="events produced while the worker is down, each step")
    p.add_argument("--template-events", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--bootstrap", default=harness.default_bootstrap())
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--work", type=Path, help="directory for the worker's data (default: a temporary one)")
    p.add_argument("--profile", type=Path, help="py-spy raw stacks of the worker's processes during each restart, here")
    p.add_argument("--keep", action="store_true", help="keep the worker's data and logs (printed at the end)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="scale-", dir=args.work))
    started = harness.ensure_broker(args.bootstrap)
    try:
        result = run(args.bootstrap, work, args.accounts, args.backlog, args.template_events, args.seed, args.timeout,
                     args.profile)
    finally:
        if started:
            harness.stop_broker()
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
