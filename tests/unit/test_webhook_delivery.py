"""Webhook delivery against a local HTTP receiver: bounded retries with backoff, final refusals,
Retry-After, and receivers that are down getting one attempt per alert."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import aiohttp
from aiohttp import web

from sinks import webhook
from sinks.webhook import Health, Outcome, Policy, deliver, redact
from tests.support.agent_capture import AgentCapture
from tests.support.tracker import free_port

BODY = {"text": "hello"}


class Receiver:
    """Answers each POST with the next of ``answers`` (status, headers, body); the last repeats."""

    def __init__(self, *answers: tuple[int, dict, str]) -> None:
        self.answers = list(answers)
        self.seen: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        assert (await request.json()) == BODY
        self.seen.append(request.headers["X-Journeys-Alert-Id"])
        status, headers, text = self.answers[min(len(self.seen), len(self.answers)) - 1]
        return web.Response(status=status, headers=headers, text=text)


def run(receiver: Receiver | None, check: Callable[[aiohttp.ClientSession, str, list[float]], Awaitable[None]]) -> None:
    """Serve ``receiver`` on a local port (none: nothing listens) and run ``check(session, url, sleeps)``;
    ``sleeps`` records the backoff waits instead of sleeping them."""
    async def main() -> None:
        port, runner = free_port(), None
        if receiver is not None:
            app = web.Application()
            app.router.add_post("/hook", receiver.handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession() as session:
                await check(session, f"http://127.0.0.1:{port}/hook", sleeps)
        finally:
            if runner is not None:
                await runner.cleanup()

    sleeps: list[float] = []
    asyncio.run(main())


def recording(sleeps: list[float]) -> Callable[[float], Awaitable[None]]:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
    return sleep


def test_a_receiver_that_recovers_gets_the_alert_after_backoff() -> None:
    receiver = Receiver((500, {}, "oops"), (502, {}, ""), (200, {}, "ok"))

    async def check(session, url, sleeps) -> None:
        outcome = await deliver(session, url, BODY, "a1", Policy(attempts=5, backoff=1, max_backoff=30),
                                sleep=recording(sleeps))
        assert outcome == Outcome(True, 3)
        assert sleeps == [1, 2]

    run(receiver, check)
    assert receiver.seen == ["a1"] * 3


def test_a_receiver_that_always_fails_is_given_up_after_the_attempts_with_capped_backoff() -> None:
    receiver = Receiver((500, {}, "internal error\n  try later"))
    retries: list[str] = []

    async def check(session, url, sleeps) -> None:
        outcome = await deliver(session, url, BODY, "a1", Policy(attempts=5, backoff=1, max_backoff=5),
                                sleep=recording(sleeps), on_retry=retries.append)
        assert outcome == Outcome(False, 5, "HTTP 500: internal error try later")
        assert sleeps == [1, 2, 4, 5]  # no wait after the last attempt

    run(receiver, check)
    assert len(receiver.seen) == 5 and len(retries) == 4


def test_a_final_refusal_is_not_retried_but_rate_limits_and_timeouts_are() -> None:
    gone = Receiver((410, {}, "channel_is_archived"))
    limited = Receiver((429, {"Retry-After": "7"}, ""), (408, {}, ""), (204, {}, ""))

    async def refused(session, url, sleeps) -> None:
        assert await deliver(session, url, BODY, "a1", sleep=recording(sleeps)) == Outcome(
            False, 1, "HTTP 410: channel_is_archived")
        assert sleeps == []

    async def throttled(session, url, sleeps) -> None:
        outcome = await deliver(session, url, BODY, "a2", Policy(attempts=3, backoff=1, max_backoff=5),
                                sleep=recording(sleeps))
        assert outcome == Outcome(True, 3)
        assert sleeps == [5, 2]  # Retry-After 7 capped at max_backoff, then the doubled backoff

    run(gone, refused)
    run(limited, throttled)
    assert len(gone.seen) == 1 and len(limited.seen) == 3


def test_nothing_listening_is_a_failure_with_the_connection_error_as_reason() -> None:
    async def check(session, url, sleeps) -> None:
        outcome = await deliver(session, url, BODY, "a1", Policy(attempts=2, backoff=0.5), sleep=recording(sleeps))
        assert not outcome.delivered and outcome.attempts == 2
        assert outcome.reason.startswith("ClientConnectorError")
        assert sleeps == [0.5]

    run(None, check)


def test_a_receiver_that_is_down_gets_one_attempt_per_alert_until_it_answers_again() -> None:
    receiver = Receiver((500, {}, ""), (500, {}, ""), (500, {}, ""), (200, {}, ""))
    health = Health(Policy(attempts=2, backoff=0))

    async def check(session, url, sleeps) -> None:
        for alert_id, expected in (("a1", Outcome(False, 2, "HTTP 500")), ("a2", Outcome(False, 1, "HTTP 500")),
                                   ("a3", Outcome(True, 1))):
            outcome = await deliver(session, url, BODY, alert_id, health.policy_for(url), sleep=recording(sleeps))
            assert outcome == expected
            health.record(url, outcome)
        assert health.policy_for(url).attempts == 2  # back to the full policy

    run(receiver, check)
    assert receiver.seen == ["a1", "a1", "a2", "a3"]


def test_receivers_are_named_without_their_secret_path_or_credentials() -> None:
    url = "https://user:pw@hooks.slack.com/services/T000/B000/XXXXSECRET"
    name = redact(url)
    assert name.startswith("https://hooks.slack.com/…") and "SECRET" not in name and "pw" not in name
    assert name != redact(url + "2") and redact("http://127.0.0.1:8080/hook").startswith("http://127.0.0.1:8080/…")
    assert webhook.RETRYABLE_4XX >= {408, 429}


def test_a_delivery_table_value_from_an_older_worker_counts_its_urls_as_delivered() -> None:
    from streams.agents.alerts_delivery import _done

    url = "http://127.0.0.1:9/hook"
    assert _done(None) == {}
    assert _done([url]) == {redact(url): "delivered"}
    assert _done({redact(url): "failed"}) == {redact(url): "failed"}


def test_a_delivery_record_maps_to_its_row() -> None:
    from datetime import datetime, timezone

    from schemas.alerts import AlertDelivery
    from sinks.clickhouse.rows import ALERT_DELIVERY_COLUMNS, alert_delivery_row

    at = datetime(2026, 3, 1, tzinfo=timezone.utc)
    record = AlertDelivery(alert_id="a1", receiver="http://h/…12345678", status="failed", attempts=5,
                           reason="HTTP 500", at=at)
    assert AlertDelivery.model_validate_json(record.to_bytes()) == record
    assert dict(zip(ALERT_DELIVERY_COLUMNS, alert_delivery_row(record), strict=True)) == {
        "alert_id": "a1", "receiver": "http://h/…12345678", "status": "failed", "attempts": 5, "reason": "HTTP 500",
        "at": at}


def test_an_unreadable_alert_record_is_dead_lettered_and_the_next_alerts_are_delivered(monkeypatch) -> None:
    """The delivery agent parsed each record unguarded: one it could not read (another
    version's field, a stray record on the topic) stopped the agent, and every later alert
    waited (issue 20: every agent dead-letters the record it fails on and goes on)."""
    from dataclasses import dataclass, field
    from datetime import datetime, timezone
    from types import SimpleNamespace
    from typing import Any

    from schemas.alerts import AlertRecord
    from schemas.definitions import load
    from streams import tables
    from streams import topics as t
    from streams.agents import alerts_delivery
    from streams.settings import Settings

    @dataclass
    class Topic:
        sent: list[dict[str, Any]] = field(default_factory=list)

        async def send(self, **record: Any) -> None:
            self.sent.append(record)


    def event(value: bytes, offset: int) -> SimpleNamespace:
        return SimpleNamespace(message=SimpleNamespace(value=value, key=b"a1", topic="journeys-alerts-v1",
                                                       partition=0, offset=offset))

    class Stream:
        async def events(self):
            for n, value in enumerate(values):
                yield event(value, n)

    async def delivered(session, url, body, alert_id, policy, *, on_retry=None) -> Outcome:
        posted.append(alert_id)
        return Outcome(True, 1)

    alert = AlertRecord(alert_id="al-1", rule="r", account_id="a1", at=datetime(2026, 11, 1, tzinfo=timezone.utc),
                        summary="s", definitions_version="1")
    values = [b'{"alert_id": "al-0", "not": "an alert"}', alert.to_bytes()]
    posted: list[str] = []
    monkeypatch.setattr(tables, "table", lambda *a, **k: {})
    monkeypatch.setattr(webhook, "deliver", delivered)
    app, dlq = AgentCapture(), Topic()
    topics = SimpleNamespace(alerts=Topic(), alert_deliveries=Topic(), inbound_dlq=dlq)
    alerts_delivery.register(app, topics, Settings(alert_webhooks=["http://127.0.0.1:9/hook"]), load())  # type: ignore[arg-type]
    asyncio.run(app.fn(Stream()))
    assert posted == ["al-1"]
    (letter,) = dlq.sent
    assert letter["value"] == values[0]
    assert letter["headers"][t.DLQ_HEADER_STAGE] == b"alert-delivery"
    assert letter["headers"][t.DLQ_HEADER_SOURCE] == b"journeys-alerts-v1/0@0"
