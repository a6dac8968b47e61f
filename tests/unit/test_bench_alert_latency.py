"""bench/pipeline.py ``alert_latencies``: each channel-bounce alert against the touch it is dated at."""

from __future__ import annotations

from bench.pipeline import alert_latencies


def entry(event_id: str, event_time: str, received_at: str) -> dict:
    return {"event_id": event_id, "event_time": event_time, "received_at": received_at}


def test_an_alert_is_timed_from_the_receipt_of_the_touch_it_is_dated_at() -> None:
    entries = [entry("e1", "2026-03-01T10:00:00.000Z", "2026-12-06T12:00:00.000+00:00"),
               entry("e2", "2026-03-01T11:30:00.250Z", "2026-12-06T12:00:01.000+00:00"),
               entry("e2", "2026-03-01T11:30:00.250Z", "2026-12-06T12:00:01.000+00:00")]  # re-sent: one event
    sent = 1796558401.0 + 0.375  # 2026-12-06T12:00:01.375Z
    alerts = [(sent, {"rule": "channel_bounce", "at": "2026-03-01T11:30:00.250000Z"})]
    assert alert_latencies(entries, alerts) == [0.375]


def test_other_rules_unknown_and_shared_times_are_not_counted() -> None:
    entries = [entry("a", "2026-03-01T10:00:00Z", "2026-12-06T12:00:00+00:00"),
               entry("b", "2026-03-01T10:00:00Z", "2026-12-06T12:00:00.5+00:00"),  # two events, one time
               entry("c", "2026-03-02T10:00:00Z", "2026-12-06T12:00:00+00:00")]
    alerts = [(1796558402.0, {"rule": "channel_bounce", "at": "2026-03-01T10:00:00Z"}),
              (1796558402.0, {"rule": "missed_handoff", "at": "2026-03-02T10:00:00Z"}),
              (1796558402.0, {"rule": "channel_bounce", "at": "2026-03-09T10:00:00Z"})]
    assert alert_latencies(entries, alerts) == []
    assert alert_latencies(entries, alerts, rule="missed_handoff") == [2.0]
