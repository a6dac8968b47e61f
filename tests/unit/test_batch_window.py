"""The adaptive batch window of the stream stages (streams.agents.batching)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.agents.batching import newest_age, next_window


@dataclass
class Message:
    timestamp: float | None


def test_a_stage_that_keeps_up_waits_the_short_window() -> None:
    assert next_window(0.004, light_s=0.02, behind_s=0.25) == 0.02
    assert next_window(0.25, light_s=0.02, behind_s=0.25) == 0.02  # not past the bound yet


def test_a_stage_behind_waits_the_long_window_and_returns_once_caught_up() -> None:
    assert next_window(0.26, light_s=0.02, behind_s=0.25) == 0.25
    assert next_window(40.0, light_s=0.02, behind_s=0.25) == 0.25
    assert next_window(0.01, light_s=0.02, behind_s=0.25) == 0.02


def test_the_age_is_the_newest_records_wait() -> None:
    messages = [Message(100.0), Message(103.5), Message(101.0)]
    assert newest_age(messages, now=104.0) == 0.5


def test_no_timestamp_or_a_clock_ahead_gives_no_age() -> None:
    assert newest_age([], now=5.0) == 0.0
    assert newest_age([Message(None), Message(0.0)], now=5.0) == 0.0
    assert newest_age([Message(10.0)], now=5.0) == 0.0
