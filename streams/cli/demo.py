"""``journeys demo``: worker + bundled sample + one printed journey, then a clean exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib import resources

import click

from streams import topics as t
from streams.cli import client
from streams.cli.output import emit
from streams.cli.replaying import produce_lines
from streams.settings import Settings


def sample_lines() -> list[bytes]:
    data = resources.files("streams") / "demo_data" / "sample.ndjson"
    return [line for line in data.read_bytes().splitlines() if line.strip()]


def start_worker(settings: Settings) -> subprocess.Popen:
    log_path = settings.data_dir / "worker.log"
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
        produce_lines(settings, settings.topic_prefix + t.INBOUND.name, lines)
        click.echo(f"replayed {len(lines)} sample events (a few are deliberately invalid)")
        target = base.get("events", 0) + base.get("dead_letters", 0) + len(lines)

        def all_visible() -> bool:
            s = client.stats(settings) or {}
            return s.get("events", 0) + s.get("dead_letters", 0) >= target

        wait_for(all_visible, 180, "every sample event to be stored", proc)
        stats = client.stats(settings) or {}
        emit(client.timeline(settings, account, 200), "table", title=f"Journey of {account}",
             columns=["event_time", "side", "channel", "event_type", "name", "contact_id", "rep_role"])
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
