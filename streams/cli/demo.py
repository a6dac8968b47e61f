"""``journeys demo``: worker + bundled sample + one printed journey, then a clean exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib import resources

from datetime import datetime, timedelta, timezone

import click
import orjson

from schemas.decode import decode
from schemas.errors import InvalidEvent

from streams import topics as t
from streams.cli import client
from streams.cli.output import emit
from streams.cli.replaying import produce_lines
from streams.settings import Settings


RECYCLED_ACCOUNT = "domain:hooli.com"
"""The sample's lead that sales rejects and that visits the pricing page again afterwards."""


def sample_lines() -> list[bytes]:
    data = resources.files("streams") / "demo_data" / "sample.ndjson"
    return [line for line in data.read_bytes().splitlines() if line.strip()]


def by_day(lines: list[bytes]) -> list[tuple[str, list[bytes]]]:
    """Group sample lines by the day they happened (unparseable lines last)."""
    days: dict[str, list[bytes]] = {}
    for line in lines:
        try:
            obj = orjson.loads(line)
            when = obj.get("timestamp") or obj.get("startedAt") or obj.get("changedAt") or "~"
        except (orjson.JSONDecodeError, AttributeError):
            when = "~"
        days.setdefault(str(when)[:10], []).append(line)
    return sorted(days.items())


def expected_outcome(lines: list[bytes], settings: Settings) -> tuple[set[str], int]:
    """The sample's distinct valid event ids and its number of invalid lines (decoded here)."""
    now = datetime.now(timezone.utc)
    valid, invalid = set(), 0
    for line in lines:
        try:
            event, _ = decode(line, received_at=now, max_future=timedelta(seconds=settings.max_future_seconds))
            valid.add(event.messageId)
        except InvalidEvent:
            invalid += 1
    return valid, invalid


def start_worker(settings: Settings) -> subprocess.Popen:
    log_path = settings.state_dir / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"starting the tracker (worker log: {log_path})")
    return subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "--loglevel", "warn"],
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT, env=os.environ.copy(),
    )


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise click.ClickException(f"the worker exited with {proc.returncode} while waiting for {what}")
        if predicate():
            return
        time.sleep(0.5)
    raise click.ClickException(f"timed out after {timeout:.0f}s waiting for {what}")


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_demo(settings: Settings, *, keep_running: bool, account: str) -> int:
    before = client.stats(settings)
    if before is not None:
        raise click.ClickException(f"a store process already answers at {settings.api_url}; stop it first")
    proc = start_worker(settings)
    try:
        wait_for(lambda: client.stats(settings) is not None, 180, "the worker's API", proc)
        base = client.stats(settings) or {}
        lines = sample_lines()
        for day, batch in by_day(lines):
            produce_lines(settings, settings.topic_prefix + t.INBOUND.name, batch)
            time.sleep(0.4)  # a day of activity at a time, so the stream sees it in order
        click.echo(f"replayed {len(lines)} sample events, a day at a time (a few are deliberately invalid)")
        valid_ids, invalid = expected_outcome(lines, settings)

        def all_visible() -> bool:
            s = client.stats(settings) or {}
            return (s.get("events", 0) >= len(valid_ids)
                    and s.get("dead_letters", 0) >= base.get("dead_letters", 0) + invalid)

        wait_for(all_visible, 180, "every sample event to be stored", proc)
        stats = client.stats(settings) or {}
        emit(client.timeline(settings, account, 200), "table", title=f"Journey of {account}",
             columns=["event_time", "side", "channel", "event_type", "name", "contact_id", "rep_role"])
        # the same stitched events in a report: the anonymous paid-ad visits are the first touches
        params = {"model": "first_touch", "split": "channel"}
        wait_for(lambda: bool(client.report(settings, "attribution", params)), 60, "the won deal's attribution", proc)
        emit(client.report(settings, "attribution", params), "table",
             title="Won revenue by first touch (journeys attribution --model first_touch)",
             columns=["currency", "channel", "team", "credit", "share"])
        # a lead sales rejected: its next page views re-engage it, they do not make it an MQL again
        recycled = {"account": RECYCLED_ACCOUNT}
        wait_for(lambda: len(client.report(settings, "stages", recycled)) >= 4, 60, "the recycled lead's stages", proc)
        emit(client.report(settings, "stages", recycled), "table",
             title=f"A rejected lead needs new engagement (journeys stages {RECYCLED_ACCOUNT})",
             columns=["at", "from_stage", "to_stage", "rule"])
        click.echo(f"store: {stats.get('events')} events, {stats.get('dead_letters')} dead letters")
        if keep_running:
            click.echo(
                f"The tracker keeps running (pid {proc.pid}). Try:\n"
                f"  .venv/bin/journeys accounts\n  .venv/bin/journeys timeline {account} --format json\n"
                f"  .venv/bin/journeys dlq list\nStop it with: kill {proc.pid}"
            )
            return 0
        return 0
    finally:
        if not keep_running:
            stop_worker(proc)
