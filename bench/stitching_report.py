"""Stitching quality: event → account assignment of the real pipeline vs generated ground truth.

    python -m bench.stitching_report --events 100000 --seed 1
    python -m bench.stitching_report --events 100000 --seed 1 --in-process   # rules + queries only

Generates a set (bench/synth.py), starts the broker if none answers, runs a real worker on
isolated topics and a fresh chDB store, produces the events, waits until all are stored and
every topic is committed, stops the worker, opens the store and resolves every event at query
time (sinks/clickhouse/resolution.py). ``--in-process`` feeds the same identity rules without
Kafka instead: if it scores 100% and the real run does not, the fault is in the distributed
pipeline (partitioning, ordering, lost links), not in the rules or the queries.

precision = correct / attributed, recall = correct / attributable, where an event is
*attributed* when it resolves to at least one account, *attributable* when its truth is not
'' and *correct* when it resolves to exactly its true account.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

from bench import harness
from bench.synth import SynthConfig, read_truth, write
from sinks.clickhouse.client import Store
from sinks.clickhouse.resolution import resolve_events

ERROR_KINDS = ("wrong", "ambiguous", "missed", "spurious", "not_stored")


def score(truth: dict[str, tuple[str, str]], resolved: Iterable[tuple[str, str, tuple[str, ...]]],
          samples: int = 5) -> dict[str, Any]:
    """Compare resolved accounts with the truth; counts, precision, recall, errors by event type."""
    attributable = sum(1 for _, account in truth.values() if account)
    attributed = correct = stored = extra = 0
    errors: dict[str, dict[str, int]] = {}
    examples: dict[str, list[dict[str, Any]]] = {k: [] for k in ERROR_KINDS}
    seen = set()

    def error(kind: str, event_type: str, event_id: str, want: str, got: tuple[str, ...]) -> None:
        errors.setdefault(event_type, dict.fromkeys(ERROR_KINDS, 0))[kind] += 1
        if len(examples[kind]) < samples:
            examples[kind].append({"event_id": event_id, "type": event_type, "truth": want, "resolved": list(got)})

    for event_id, event_type, accounts in resolved:
        if event_id not in truth:
            extra += 1
            continue
        seen.add(event_id)
        stored += 1
        want = truth[event_id][1]
        attributed += bool(accounts)
        if want and accounts == (want,):
            correct += 1
        elif len(accounts) > 1:
            error("ambiguous", event_type, event_id, want, accounts)
        elif accounts and want:
            error("wrong", event_type, event_id, want, accounts)
        elif accounts:
            error("spurious", event_type, event_id, want, accounts)
        elif want:
            error("missed", event_type, event_id, want, accounts)
    for event_id, (event_type, want) in truth.items():
        if event_id not in seen:
            error("not_stored", event_type, event_id, want, ())
    return {
        "events": len(truth), "stored": stored, "unexpected_in_store": extra,
        "attributable": attributable, "attributed": attributed, "correct": correct,
        "precision": correct / attributed if attributed else 1.0,
        "recall": correct / attributable if attributable else 1.0,
        "errors_by_type": errors, "examples": {k: v for k, v in examples.items() if v},
    }  # fmt: skip


def run_real(events_path: Path, count: int, work: Path, bootstrap: str, timeout: float) -> tuple[Path, dict]:
    """Produce the set to a fresh worker, wait until caught up, stop it; the store path and timings."""
    prefix = f"stitch-{uuid.uuid4().hex[:8]}-"
    tracker = harness.make_tracker(bootstrap, work, prefix)
    timings: dict[str, float] = {}
    try:
        tracker.start()
        began = time.perf_counter()
        with events_path.open("rb") as f:
            _, timings["produce_s"] = harness.produce_lines(bootstrap, tracker.topic("journeys-inbound-v1"),
                                                            (line.rstrip(b"\n") for line in f))
        harness.wait_caught_up(tracker, count, timeout)
        timings["pipeline_s"] = time.perf_counter() - began
    finally:
        tracker.stop()
        harness.delete_topics(bootstrap, prefix)
    return tracker.store_dir, timings


def run_in_process(events_path: Path, work: Path) -> Path:
    from bench.simulate import InProcessPipeline

    store_dir = work / "store-in-process"
    with events_path.open("rb") as f:
        pipeline = InProcessPipeline().feed_all(line.rstrip(b"\n") for line in f)
    store = Store(f"chdb://{store_dir}")
    try:
        pipeline.store_into(store)
    finally:
        store.close()
    return store_dir


def run_report(events: int, seed: int, work: Path, *, bootstrap: str = "127.0.0.1:9092",
               in_process: bool = False, timeout: float = 1800, **synth: Any) -> dict[str, Any]:
    """Generate, run (real worker or in process), resolve and score; the report as a dict.

    ``synth`` overrides :class:`~bench.synth.SynthConfig` fields (e.g. ``shuffle_window``).
    """
    began = time.perf_counter()
    meta = write(SynthConfig(events=events, seed=seed, **synth), work / "synth")
    truth = read_truth(work / "synth" / "truth.tsv")
    timings: dict[str, float] = {"generate_s": time.perf_counter() - began}
    started_broker = False
    if in_process:
        store_dir = run_in_process(work / "synth" / "events.ndjson", work)
    else:
        started_broker = harness.ensure_broker(bootstrap)
        try:
            store_dir, ran = run_real(work / "synth" / "events.ndjson", meta["events"], work, bootstrap, timeout)
            timings.update(ran)
        finally:
            if started_broker:
                harness.stop_broker()
    t = time.perf_counter()
    store = Store(f"chdb://{store_dir}")
    try:
        report = score(truth, resolve_events(store))
    finally:
        store.close()
    timings["resolve_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - began
    return {"mode": "in-process" if in_process else "pipeline", "seed": seed, "generated": meta,
            **report, "timings": {k: round(v, 2) for k, v in timings.items()}}


def render(report: dict[str, Any]) -> str:
    lines = [
        f"stitching report ({report['mode']}, seed {report['seed']}): {report['events']} events, "
        f"{report['generated']['accounts']} accounts, {report['stored']} stored",
        f"  precision {report['precision']:.4%}  ({report['correct']} correct / {report['attributed']} attributed)",
        f"  recall    {report['recall']:.4%}  ({report['correct']} correct / {report['attributable']} attributable)",
    ]
    if report["errors_by_type"]:
        lines.append(f"  errors by event type ({', '.join(ERROR_KINDS)}):")
        for kind, counts in sorted(report["errors_by_type"].items()):
            lines.append(f"    {kind:<13}" + "  ".join(f"{counts[k]:>7}" for k in ERROR_KINDS))
        for kind, examples in report["examples"].items():
            lines.append(f"  e.g. {kind}: {json.dumps(examples[0])}")
    lines.append("  timings: " + ", ".join(f"{k} {v}" for k, v in report["timings"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stitching_report", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bootstrap", default=harness.default_bootstrap())
    p.add_argument("--in-process", action="store_true", help="identity rules without Kafka (diagnosis)")
    p.add_argument("--shuffle-window", type=int, default=0, help="deliver events out of order within this window")
    p.add_argument("--work", type=Path, help="keep the set, worker data and store here (default: a temp dir)")
    p.add_argument("--json", type=Path, help="also write the report as JSON")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the pipeline")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stitching-") as tmp:
        work = args.work or Path(tmp)
        report = run_report(args.events, args.seed, work, bootstrap=args.bootstrap, in_process=args.in_process,
                            timeout=args.timeout, shuffle_window=args.shuffle_window)
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
