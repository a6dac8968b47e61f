"""The worker's Faust monitor keeps no per-record or per-table-access bookkeeping (streams/app.py,
``QuietMonitor``: ~2% of a live drain's event loop, for Faust's ``/stats`` nobody reads); the
rest of Faust's monitor is unchanged."""

from __future__ import annotations

from pathlib import Path

from faust.sensors import Monitor

from streams.app import QuietMonitor, create_app
from streams.settings import Settings


def test_the_worker_app_uses_the_quiet_monitor(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, roles="stream"))
    assert isinstance(app.monitor, QuietMonitor) and isinstance(app.monitor, Monitor)


def test_per_record_hooks_record_nothing_and_the_rest_is_fausts() -> None:
    monitor = QuietMonitor()
    assert monitor.on_stream_event_in(None, 1, None, None) is None
    monitor.on_stream_event_out(None, 1, None, None, None)
    monitor.on_message_in(None, 1, None)
    monitor.on_message_out(None, 1, None)
    monitor.on_table_get(None, "k")
    monitor.on_table_set(None, "k", {})
    assert monitor.messages_received_total == 0 and monitor.events_total == 0 and not monitor.tables
    assert type(monitor).on_send_initiated is Monitor.on_send_initiated  # sends, commits…: Faust's
    assert type(monitor).on_commit_completed is Monitor.on_commit_completed
