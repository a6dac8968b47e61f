"""Framework floors: how fast a bare aiokafka consumer and a trivial Faust agent read the
benchmark's events, on the same broker and topic as the kafka-python floor (bench/floors.py).

The tracker's worker is a Faust app, and Faust reads through aiokafka, so these two are the
ceilings any Faust pipeline on this machine lives under: the agent does nothing but count.

``python -m bench.faust_floor agent --bootstrap B --topic T --count N [--take K]`` runs the Faust
worker in its own process (as the tracker's worker runs) and prints one JSON line with the rate
from its first event to its N-th, then exits; ``--take K`` reads batches of up to K with
``stream.take`` (the way the tracker's agents read, streams/agents/batching.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any


async def _aiokafka(bootstrap: str, topic: str, count: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    try:
        got, began = 0, time.perf_counter()  # from the first fetch on, as the kafka-python floor
        deadline = time.monotonic() + 120
        while got < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            got += sum(len(records) for records in batches.values())
        seconds = time.perf_counter() - began
    finally:
        await consumer.stop()
    return {"events": got, "seconds": round(seconds, 3), "per_s": round(got / seconds, 1) if seconds else None}


def aiokafka_consume(bootstrap: str, topic: str, count: int) -> dict[str, Any]:
    """A bare aiokafka consumer (``getmany``), no group, from the earliest offset."""
    return asyncio.run(_aiokafka(bootstrap, topic, count))


def faust_agent(bootstrap: str, topic: str, count: int, *, take: int = 0, timeout: float = 180) -> dict[str, Any]:
    """A trivial Faust agent in its own worker process (see the module docstring)."""
    import shutil
    import subprocess
    import tempfile

    datadir = tempfile.mkdtemp(prefix="bench-faust-floor-")  # Faust's app directory (else one per run in the cwd)
    cmd = [sys.executable, "-m", "bench.faust_floor", "agent", "--bootstrap", bootstrap, "--topic", topic,
           "--count", str(count), "--take", str(take), "--datadir", datadir]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(datadir, ignore_errors=True)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"the Faust floor worker gave no figure (exit {done.returncode}): {done.stderr[-2000:]}")


def _agent_main(bootstrap: str, topic_name: str, count: int, take: int, datadir: str) -> None:
    import faust

    app = faust.App(f"bench-faust-floor-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", store="memory://",
                    datadir=datadir,
                    web_enabled=False, consumer_auto_offset_reset="earliest", topic_disable_leader=True)
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw")
    seen = {"n": 0, "began": 0.0}

    def tally(n: int) -> None:
        if seen["n"] == 0:
            seen["began"] = time.perf_counter()
        seen["n"] += n
        if seen["n"] >= count:
            seconds = time.perf_counter() - seen["began"]
            line = json.dumps({"events": seen["n"], "seconds": round(seconds, 3),
                               "per_s": round(seen["n"] / seconds, 1) if seconds else None, "take": take})
            os.write(1, line.encode() + b"\n")  # fd 1 itself: Faust redirects sys.stdout into its log
            os._exit(0)  # the figure is out; a clean Faust shutdown would only add seconds

    @app.agent(topic)
    async def count_events(stream: Any) -> None:
        if take:
            async for values in stream.take(take, within=0.5):
                tally(len(values))
        else:
            async for _ in stream:
                tally(1)

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.faust_floor")
    p.add_argument("what", choices=["agent"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--take", type=int, default=0)
    p.add_argument("--datadir", default=".", help="Faust's app directory (the caller removes it)")
    a = p.parse_args(argv)
    _agent_main(a.bootstrap, a.topic, a.count, a.take, a.datadir)


if __name__ == "__main__":
    main()
