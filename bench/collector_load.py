"""Load the HTTP collector: N concurrent ``/v1/batch`` posts of B events; report accepted events/s.

Against a running collector:
    .venv/bin/python bench/collector_load.py --url http://127.0.0.1:8088 --write-key KEY
Or let the script start one (real broker at JOURNEYS_KAFKA_BOOTSTRAP, throwaway topic prefix):
    .venv/bin/python bench/collector_load.py --spawn --requests 600 --concurrency 16

Only 200 answers count as accepted: the collector answers 200 after the broker acknowledged
every event of the batch (acks=all, idempotent producer). Bodies are built before the clock
starts, so the figure is the collector + broker, not the load generator's JSON encoding.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]


def bodies(count: int, batch: int) -> list[bytes]:
    now = datetime.now(timezone.utc).isoformat()
    run = uuid.uuid4().hex[:8]
    out = []
    for r in range(count):
        events = [{"type": "track", "messageId": f"bench-{run}-{r}-{i}", "anonymousId": f"anon-{(r * batch + i) % 5000}",
                   "event": "Page Scrolled", "properties": {"depth": i % 100, "path": "/pricing"},
                   "context": {"ip": "198.51.100.7", "userAgent": "bench/1.0"}, "timestamp": now}
                  for i in range(batch)]
        out.append(orjson.dumps({"batch": events, "sentAt": now}))
    return out


async def load(url: str, key: str, payloads: list[bytes], concurrency: int) -> dict[str, object]:
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
            "Content-Type": "application/json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)
    statuses: dict[int, int] = {}
    latencies: list[float] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            start = time.perf_counter()
            async with session.post(url.rstrip("/") + "/v1/batch", data=body, headers=auth) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"elapsed": elapsed, "statuses": statuses, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


def drop_topics(prefix: str) -> None:
    """Delete the throwaway topics of a spawned run."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=os.environ.get("JOURNEYS_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    try:
        doomed = [t for t in admin.list_topics() if t.startswith(prefix)]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


def spawn() -> tuple[subprocess.Popen, str, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key, prefix = f"wk_bench_{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:6]}-"
    env = dict(os.environ, JOURNEYS_TOPIC_PREFIX=prefix, JOURNEYS_DATA_DIR=f"/tmp/{prefix}data",
               JOURNEYS_COLLECTOR__PORT=str(port), JOURNEYS_COLLECTOR__WRITE_KEYS=json.dumps({key: "bench"}),
               JOURNEYS_COLLECTOR__RATE_LIMIT_PER_SECOND="0")  # the collector itself, not the per-key limit
    proc = subprocess.Popen([sys.executable, "-m", "streams", "collector"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    print(f"spawned collector pid {proc.pid} at {url}, topic prefix {prefix!r}", file=sys.stderr)
    return proc, url, key, prefix


async def wait_healthy(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise SystemExit(f"collector at {url} not healthy after {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Collector base URL (or --spawn).")
    parser.add_argument("--write-key", default=None)
    parser.add_argument("--spawn", action="store_true", help="Start a collector subprocess for the run.")
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=20, help="Requests sent before the clock starts.")
    args = parser.parse_args()
    proc, prefix = None, ""
    if args.spawn:
        proc, args.url, args.write_key, prefix = spawn()
    if not args.url or not args.write_key:
        parser.error("give --url and --write-key, or --spawn")
    try:
        asyncio.run(wait_healthy(args.url))
        asyncio.run(load(args.url, args.write_key, bodies(args.warmup, args.batch_size), args.concurrency))
        result = asyncio.run(load(args.url, args.write_key, bodies(args.requests, args.batch_size), args.concurrency))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            drop_topics(prefix)
    ok = result["statuses"].get(200, 0)  # type: ignore[union-attr]
    events = ok * args.batch_size
    print(json.dumps({"requests": args.requests, "batch_size": args.batch_size, "concurrency": args.concurrency,
                      "statuses": result["statuses"], "elapsed_s": round(result["elapsed"], 2),  # type: ignore[arg-type]
                      "accepted_events_per_s": round(events / result["elapsed"]),  # type: ignore[operator]
                      "requests_per_s": round(ok / result["elapsed"], 1),  # type: ignore[operator]
                      "p50_ms": round(result["p50_ms"], 1), "p99_ms": round(result["p99_ms"], 1)}))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
