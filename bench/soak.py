"""Soak (issue #9, ``make soak``, not in CI): a steady load for a long time, memory must stay flat.

One real worker (``python -m streams worker``, both roles, embedded store) is fed generated
journeys at a fixed rate — by default half the sustained throughput of the last full benchmark
(``bench/results/latest.json``), with the benchmark's worker settings (``bench.run.WORKER_ENV``:
the rate was measured with them) — for ``--minutes`` (30). Every ``--sample-seconds`` the worker's
RSS, the events stored and the accounts produced are recorded. At the end the worker must catch
up (every produced event stored) and memory must be flat: the RSS growth over the second half
of the run, per 10 minutes, must stay under ``--max-growth-mb`` (default 50 MB). Writes
``bench/results/soak.json`` and ``soak.md``; exit 1 when a check fails.

    python -m bench.soak                      # 30 min at half the benchmark throughput
    python -m bench.soak --minutes 2 --rate 20
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from bench import harness
from bench.pipeline import Feed, stored
from bench.run import WORKER_ENV
from bench.synth import SynthConfig
from streams.cli.replaying import key_of
from tests.support.tracker import Tracker

RESULTS = Path(__file__).resolve().parent / "results"


def default_rate() -> float:
    """Half the sustained pipeline throughput of the last full benchmark run, else 50 events/s."""
    try:
        report = json.loads((RESULTS / "latest.json").read_text())
        return round(report["pipeline"]["throughput"]["per_s"] / 2, 1)
    except (OSError, KeyError, TypeError, ValueError):
        return 50.0


def growth_per_10min(samples: list[dict[str, Any]], field: str = "rss_mb") -> float:
    """Least-squares slope of RSS (MB) over the second half of the samples, per 10 minutes."""
    half = [s for s in samples[len(samples) // 2:] if field in s]
    if len(half) < 2:
        return 0.0
    xs = [s["t_s"] for s in half]
    ys = [s[field] for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return round(slope * 600, 1)


def _feeder(tracker, feed: Feed, rate: float, seconds: float, stop: threading.Event) -> None:
    """Produce at ``rate`` events/s for ``seconds`` (one producer, paced per event)."""
    topic = tracker.topic("journeys-inbound-v1")
    producer = harness.producer(tracker.bootstrap)
    began, sent = time.perf_counter(), 0
    try:
        while not stop.is_set() and time.perf_counter() - began < seconds:
            for line in feed.take(max(1, int(rate))):
                delay = began + sent / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                producer.send(topic, key=key_of(line), value=line)
                sent += 1
        producer.flush()
    finally:
        producer.close()


def _rss_mb(proc) -> float:
    return round(harness.worker_rss_kb(proc.pid) / 1024, 1)


MEMORY_SERIES = {  # what each sample records from a process's /metrics, in MB (absent: not that role)
    "tables": ("journeys_table_memory_bytes", {"kind": "cache"}),
    "ch_tracked": ("journeys_store_memory_bytes", {"kind": "MemoryTracking"}),
    "ch_marks": ("journeys_store_memory_bytes", {"kind": "MarkCacheBytes"}),
    "ch_pk": ("journeys_store_memory_bytes", {"kind": "PrimaryIndexCacheBytes"}),
    "glibc_used": ("journeys_malloc_bytes", {"allocator": "glibc", "kind": "in_use"}),
    "glibc_free": ("journeys_malloc_bytes", {"allocator": "glibc", "kind": "free_held"}),
    "je_used": ("journeys_malloc_bytes", {"allocator": "jemalloc", "kind": "in_use"}),
    "je_active": ("journeys_malloc_bytes", {"allocator": "jemalloc", "kind": "active"}),
    "je_meta": ("journeys_malloc_bytes", {"allocator": "jemalloc", "kind": "metadata"}),
    "je_dirty": ("journeys_malloc_bytes", {"allocator": "jemalloc", "kind": "dirty"}),
    "je_resident": ("journeys_malloc_bytes", {"allocator": "jemalloc", "kind": "resident"}),
    "je_retained": ("journeys_malloc_bytes", {"allocator": "jemalloc", "kind": "retained"}),
}


def _memory_parts(tracker) -> dict[str, float]:
    """The process's own memory accounting (RocksDB budget, ClickHouse's tracker), MB."""
    token = tracker.env.get("JOURNEYS_API_TOKEN")
    request = urllib.request.Request(f"http://127.0.0.1:{tracker.port}/metrics",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for key, (name, labels) in MEMORY_SERIES.items():
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    found[key] = round(sample.value / 1024 / 1024, 1)
    return found


def run(minutes: float, rate: float, sample_s: float, max_growth_mb: float, work: Path,
        split_roles: bool = False) -> dict[str, Any]:
    """``split_roles``: a stream-only and a store-only process instead of one with both roles
    (to tell which side's memory grows); RSS is then checked per process."""
    bootstrap = harness.default_bootstrap()
    started_broker = harness.ensure_broker(bootstrap)
    prefix = f"soak-{uuid.uuid4().hex[:8]}-"  # a pid can come back: its old RocksDB files would not fit new topics
    work = work / prefix.rstrip("-")  # this run's state and logs, apart from earlier runs'
    # the settings the rate was measured with (the tests' defaults refresh the store every 0.3 s)
    tracker = harness.make_tracker(bootstrap, work, prefix, **WORKER_ENV,
                                   **({"JOURNEYS_ROLES": "store"} if split_roles else {}))
    streamer = (Tracker(bootstrap, work, prefix, extra_env={**WORKER_ENV, "JOURNEYS_ROLES": "stream"}, index=1)
                if split_roles else None)
    procs = {"worker": tracker} if not split_roles else {"store": tracker, "stream": streamer}
    seconds = minutes * 60
    feed = Feed(SynthConfig(events=int(rate * seconds * 1.2) + 1000, seed=7))
    samples: list[dict[str, Any]] = []
    stop = threading.Event()

    def sample(began: float) -> dict[str, Any]:
        out = {"t_s": round(time.perf_counter() - began, 1)}
        out.update({f"rss_{name}_mb": _rss_mb(t.proc) for name, t in procs.items()})
        for name, t in procs.items():
            out.update({f"{part}_{name}_mb": mb for part, mb in _memory_parts(t).items()})
        out["rss_mb"] = round(sum(out[f"rss_{name}_mb"] for name in procs), 1)
        out.update(produced=feed.produced, stored=stored(tracker), accounts=len(feed.accounts))
        return out

    try:
        tracker.start()
        if streamer is not None:
            streamer.start(wait=False)
        feeder = threading.Thread(target=_feeder, args=(tracker, feed, rate, seconds, stop), daemon=True)
        began = time.perf_counter()
        feeder.start()
        with Progress(TextColumn("soak"), BarColumn(), TextColumn("{task.fields[status]}"),
                      TimeRemainingColumn()) as progress:
            task = progress.add_task("soak", total=seconds, status="")
            while feeder.is_alive():
                time.sleep(min(sample_s, max(0.5, seconds - (time.perf_counter() - began))))
                samples.append(sample(began))
                progress.update(task, completed=min(samples[-1]["t_s"], seconds),
                                status=f"RSS {samples[-1]['rss_mb']} MB, stored {samples[-1]['stored']}/{feed.produced}")
        if split_roles:  # each role has its own group: wait for the rows, not one group's lag
            t0 = time.perf_counter()
            tracker.wait_for_stored(events=feed.produced, timeout=max(300.0, seconds / 2))
            catch_up = time.perf_counter() - t0
        else:
            catch_up = harness.wait_caught_up(tracker, feed.produced, timeout=max(300.0, seconds / 2))
        final = sample(began)
    finally:
        stop.set()
        for t in procs.values():
            t.stop()
        harness.delete_topics(bootstrap, prefix)
        if started_broker:
            harness.stop_broker()
    growth = {name: growth_per_10min(samples, f"rss_{name}_mb") for name in procs}
    first_half = samples[: max(1, len(samples) // 2)]
    worst = max(growth.values())
    return {
        "minutes": minutes, "rate_per_s": rate, "sample_s": sample_s, "roles": "split" if split_roles else "one process",
        "worker_env": WORKER_ENV,
        "events": final["produced"], "accounts": final["accounts"], "stored": final["stored"],
        "caught_up_after_s": round(catch_up, 1),
        "rss_mb": {name: {"start": samples[0][f"rss_{name}_mb"] if samples else None,
                          "end_of_first_half": first_half[-1][f"rss_{name}_mb"] if samples else None,
                          "end": final[f"rss_{name}_mb"],
                          "max": max((s[f"rss_{name}_mb"] for s in samples), default=None)} for name in procs},
        "rss_growth_mb_per_10min_second_half": growth, "max_growth_mb_per_10min": max_growth_mb,
        "parts_growth_mb_per_10min_second_half": {
            field: growth_per_10min(samples, field)
            for field in sorted({k for smp in samples for k in smp if k.endswith("_mb") and not k.startswith("rss")})},
        "checks": {"all_stored": final["stored"] == final["produced"], "memory_flat": worst <= max_growth_mb},
        "samples": samples,
    }


def markdown(r: dict[str, Any]) -> str:
    names = list(r["rss_mb"])
    lines = [
        f"# Soak: {r['minutes']} min at {r['rate_per_s']} events/s ({r['roles']})",
        "",
        f"- events produced {r['events']:,} ({r['accounts']:,} accounts), stored {r['stored']:,}, "
        f"caught up {r['caught_up_after_s']} s after the feed stopped",
        "- worker settings: " + (", ".join(f"{k}={v}" for k, v in r["worker_env"].items())
                                 if "worker_env" in r else "the test harness's"),
    ]
    for name in names:
        rss = r["rss_mb"][name]
        lines.append(f"- {name} RSS: start {rss['start']} MB, half-time {rss['end_of_first_half']} MB, "
                     f"end {rss['end']} MB, max {rss['max']} MB; growth over the second half "
                     f"{r['rss_growth_mb_per_10min_second_half'][name]} MB per 10 min")
    parts_growth = r.get("parts_growth_mb_per_10min_second_half") or {}
    if parts_growth:
        lines.append("- growth of the memory parts over the second half, MB per 10 min: "
                     + ", ".join(f"{k[:-3]} {v}" for k, v in parts_growth.items()))
    lines += [
        f"- limit: {r['max_growth_mb_per_10min']} MB per 10 min per process",
        f"- checks: {', '.join(f'{k}={v}' for k, v in r['checks'].items())}",
        "",
        "Memory parts (MB), from each process's `/metrics`: `tables` = the RocksDB budget in use "
        "(`journeys_table_memory_bytes{kind=\"cache\"}`), `ch_tracked` = ClickHouse's MemoryTracking, "
        "`ch_marks` / `ch_pk` = its mark and primary-index caches (`journeys_store_memory_bytes`); "
        "`glibc_used` / `glibc_free` = glibc's heap in use / freed but kept, `je_*` = the embedded engine's jemalloc "
        "(`journeys_malloc_bytes`): `je_used` allocated, `je_active` the pages of live extents (`je_active - je_used` "
        "is fragmentation), `je_meta` its metadata, `je_dirty` freed pages not yet purged, `je_resident` ≈ the three "
        "together, `je_retained` address space kept (not memory).",
        "",
    ]
    parts = [f"{part}_{n}_mb" for n in names for part in MEMORY_SERIES
             if any(f"{part}_{n}_mb" in s for s in r["samples"])]
    lines += [
        "| t (s) | " + " | ".join([f"RSS {n} (MB)" for n in names] + [p[:-3] for p in parts])
        + " | produced | stored | accounts |",
        "|---:|" + "---:|" * (len(names) + len(parts)) + "---:|---:|---:|",
    ]
    lines += ["| " + " | ".join([str(s["t_s"])] + [str(s[f"rss_{n}_mb"]) for n in names]
                                + [str(s.get(p, "")) for p in parts]
                                + [str(s["produced"]), str(s["stored"]), str(s["accounts"])]) + " |"
              for s in r["samples"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=None, help="events/s (default: half the last benchmark's throughput)")
    p.add_argument("--sample-seconds", type=float, default=30.0)
    p.add_argument("--max-growth-mb", type=float, default=50.0, help="allowed RSS growth per 10 min (second half)")
    p.add_argument("--work", type=Path, default=Path(".journeys/soak"))
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--split-roles", action="store_true", help="a stream and a store process, measured apart")
    args = p.parse_args()
    rate = args.rate or default_rate()
    # absolute: a relative chdb:// path would be read as chdb://<location>/<database>
    result = run(args.minutes, rate, args.sample_seconds, args.max_growth_mb, args.work.resolve(), args.split_roles)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2))
    (args.out / "soak.md").write_text(markdown(result))
    print(markdown(result).split("\n| t (s)")[0])
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
