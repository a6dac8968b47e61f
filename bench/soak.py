"""Soak (issue #9, ``make soak``, not in CI): a steady load for a long time, memory must stay flat.

One real worker (``python -m streams worker``, both roles, embedded store) is fed generated
journeys at a fixed rate — by default half the sustained throughput of the last full benchmark
(``bench/results/latest.json``) — for ``--minutes`` (30). Every ``--sample-seconds`` the worker's
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
import os
import threading
import time
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from bench import harness
from bench.pipeline import Feed, stored
from bench.synth import SynthConfig
from streams.cli.replaying import key_of

RESULTS = Path(__file__).resolve().parent / "results"


def default_rate() -> float:
    """Half the sustained pipeline throughput of the last full benchmark run, else 50 events/s."""
    try:
        report = json.loads((RESULTS / "latest.json").read_text())
        return round(report["pipeline"]["throughput"]["per_s"] / 2, 1)
    except (OSError, KeyError, TypeError, ValueError):
        return 50.0


def growth_per_10min(samples: list[dict[str, Any]]) -> float:
    """Least-squares slope of RSS (MB) over the second half of the samples, per 10 minutes."""
    half = samples[len(samples) // 2:]
    if len(half) < 2:
        return 0.0
    xs = [s["t_s"] for s in half]
    ys = [s["rss_mb"] for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
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


def run(minutes: float, rate: float, sample_s: float, max_growth_mb: float, work: Path) -> dict[str, Any]:
    bootstrap = harness.default_bootstrap()
    started_broker = harness.ensure_broker(bootstrap)
    prefix = f"soak{os.getpid()}-"
    tracker = harness.make_tracker(bootstrap, work, prefix)
    seconds = minutes * 60
    feed = Feed(SynthConfig(events=int(rate * seconds * 1.2) + 1000, seed=7))
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    try:
        tracker.start()
        feeder = threading.Thread(target=_feeder, args=(tracker, feed, rate, seconds, stop), daemon=True)
        began = time.perf_counter()
        feeder.start()
        with Progress(TextColumn("soak"), BarColumn(), TextColumn("{task.fields[status]}"),
                      TimeRemainingColumn()) as progress:
            task = progress.add_task("soak", total=seconds, status="")
            while feeder.is_alive():
                time.sleep(min(sample_s, max(0.5, seconds - (time.perf_counter() - began))))
                t = round(time.perf_counter() - began, 1)
                sample = {"t_s": t, "rss_mb": round(harness.rss_kb(tracker.proc.pid) / 1024, 1),
                          "produced": feed.produced, "stored": stored(tracker), "accounts": len(feed.accounts)}
                samples.append(sample)
                progress.update(task, completed=min(t, seconds),
                                status=f"RSS {sample['rss_mb']} MB, stored {sample['stored']}/{sample['produced']}")
        catch_up = harness.wait_caught_up(tracker, feed.produced, timeout=max(300.0, seconds / 2))
        final = {"t_s": round(time.perf_counter() - began, 1), "rss_mb": round(harness.rss_kb(tracker.proc.pid) / 1024, 1),
                 "produced": feed.produced, "stored": stored(tracker), "accounts": len(feed.accounts)}
    finally:
        stop.set()
        tracker.stop()
        harness.delete_topics(bootstrap, prefix)
        if started_broker:
            harness.stop_broker()
    growth = growth_per_10min(samples)
    first_half = samples[: max(1, len(samples) // 2)]
    return {
        "minutes": minutes, "rate_per_s": rate, "sample_s": sample_s, "events": final["produced"],
        "accounts": final["accounts"], "stored": final["stored"], "caught_up_after_s": round(catch_up, 1),
        "rss_mb": {"start": samples[0]["rss_mb"] if samples else None,
                   "end_of_first_half": first_half[-1]["rss_mb"] if samples else None,
                   "end": final["rss_mb"], "max": max((s["rss_mb"] for s in samples), default=None)},
        "rss_growth_mb_per_10min_second_half": growth, "max_growth_mb_per_10min": max_growth_mb,
        "checks": {"all_stored": final["stored"] == final["produced"], "memory_flat": growth <= max_growth_mb},
        "samples": samples,
    }


def markdown(r: dict[str, Any]) -> str:
    rss = r["rss_mb"]
    lines = [
        f"# Soak: {r['minutes']} min at {r['rate_per_s']} events/s",
        "",
        f"- events produced {r['events']:,} ({r['accounts']:,} accounts), stored {r['stored']:,}, "
        f"caught up {r['caught_up_after_s']} s after the feed stopped",
        f"- worker RSS: start {rss['start']} MB, half-time {rss['end_of_first_half']} MB, end {rss['end']} MB, "
        f"max {rss['max']} MB",
        f"- RSS growth over the second half: {r['rss_growth_mb_per_10min_second_half']} MB per 10 min "
        f"(limit {r['max_growth_mb_per_10min']})",
        f"- checks: {', '.join(f'{k}={v}' for k, v in r['checks'].items())}",
        "",
        "| t (s) | RSS (MB) | produced | stored | accounts |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s['t_s']} | {s['rss_mb']} | {s['produced']} | {s['stored']} | {s['accounts']} |" for s in r["samples"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=None, help="events/s (default: half the last benchmark's throughput)")
    p.add_argument("--sample-seconds", type=float, default=30.0)
    p.add_argument("--max-growth-mb", type=float, default=50.0, help="allowed RSS growth per 10 min (second half)")
    p.add_argument("--work", type=Path, default=Path(".journeys/soak"))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    rate = args.rate or default_rate()
    result = run(args.minutes, rate, args.sample_seconds, args.max_growth_mb, args.work)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2))
    (args.out / "soak.md").write_text(markdown(result))
    print(markdown(result).split("\n| t (s)")[0])
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
