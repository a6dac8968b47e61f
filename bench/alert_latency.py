"""Event → alert latency: time from the broker's ack of the event that completes a channel bounce
to the alert's arrival on the alerts topic, on a real worker.

    python -m bench.alert_latency --accounts 100 --spacing 0.1

Each account first gets a group call and three touches (digital, 1:1, digital); after they are processed, the
fourth (a 1:1 call: the third switch) is produced alone, one account every ``--spacing`` seconds,
and timed until its ``channel_bounce`` alert is read back from ``journeys-alerts-v1``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer

from bench.harness import ensure_broker, make_tracker, stop_broker
from streams import topics as t


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def touches(account: str, now: datetime) -> list[dict]:
    def page(i: int, minutes: int) -> dict:
        return {"type": "page", "messageId": f"{account}-p{i}", "userId": f"{account}-u",
                "timestamp": iso(now - timedelta(minutes=minutes)), "name": "Docs"}

    group = {"type": "group", "messageId": f"{account}-g", "userId": f"{account}-u", "groupId": account,
             "timestamp": iso(now - timedelta(minutes=50))}

    def call(i: int, minutes: int) -> dict:
        return {"type": "conversation", "conversationId": f"{account}-c{i}", "channel": "call", "repId": "ae",
                "repRole": "AE", "direction": "outbound", "startedAt": iso(now - timedelta(minutes=minutes)),
                "crmAccountId": account, "contactEmails": [f"x@{account}.io"]}

    return [group, page(0, 40), call(1, 30), page(2, 20), call(3, 0)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(accounts: int, spacing: float, bootstrap: str) -> dict:
    started_broker = ensure_broker(bootstrap)
    work = Path(tempfile.mkdtemp(prefix="alert-latency-"))
    prefix = f"alat-{uuid.uuid4().hex[:8]}-"
    tracker = make_tracker(bootstrap, work, prefix, JOURNEYS_ALERT_TICK_SECONDS="5").start()
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        inbound = prefix + t.INBOUND.name
        now = datetime.now(timezone.utc)
        names = [f"acct{i:04d}" for i in range(accounts)]
        plans = {n: touches(n, now) for n in names}
        for n in names:
            for event in plans[n][:-1]:
                producer.send(inbound, value=orjson.dumps(event))
        producer.flush()
        tracker.wait_for_stored(events=4 * accounts, timeout=300)
        time.sleep(2)
        arrived: dict[str, float] = {}
        consumer = KafkaConsumer(prefix + t.ALERTS.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=1000)
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                for msg in consumer:
                    alert = orjson.loads(msg.value)
                    if alert["rule"] == "channel_bounce":
                        arrived.setdefault(alert["account_id"], time.perf_counter())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        sent: dict[str, float] = {}
        for n in names:
            producer.send(inbound, value=orjson.dumps(plans[n][-1])).get(timeout=30)
            sent[n] = time.perf_counter()
            time.sleep(spacing)
        deadline = time.monotonic() + 60
        while len(arrived) < accounts and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        latencies = [(arrived[n] - sent[n]) * 1000 for n in names if n in arrived]
        return {
            "accounts": accounts, "alerts": len(latencies), "spacing_s": spacing,
            "p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
            "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        }
    finally:
        tracker.stop()
        if started_broker:
            stop_broker()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=0.1, help="seconds between timed events")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    print(orjson.dumps(run(**vars(parser.parse_args()))).decode())


if __name__ == "__main__":
    main()
