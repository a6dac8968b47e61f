"""The collector's abuse limits: the per-key token bucket (429 + Retry-After), the fan-out byte
cap (a batch context copied into many items) and the bounded rejection answer."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import orjson
from aiohttp.test_utils import TestClient, TestServer

from streams.collector.app import build_app
from streams.collector.handling import MAX_LISTED_REASONS, MAX_LISTED_REJECTIONS, Limits, Rejected, handle, response
from streams.collector.ratelimit import RateLimiter, retry_after
from streams.settings import Settings
from tests.support.fake_out import FakeOut, basic_auth

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_burst_then_waits_for_tokens_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.wait("k1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait("k1") == 0.5  # one token every 0.5 s
    assert limiter.wait("k2") == 0.0  # a bucket per key
    clock.now += 0.5
    assert limiter.wait("k1") == 0.0
    assert limiter.wait("k1") > 0
    clock.now += 3600  # refills to the burst, not beyond
    assert [limiter.wait("k1") for _ in range(4)][3] > 0


def test_rate_zero_turns_the_limit_off_and_retry_after_is_whole_seconds() -> None:
    limiter = RateLimiter(rate=0, burst=1, clock=Clock())
    assert all(limiter.wait("k") == 0.0 for _ in range(10_000))
    assert (retry_after(0.01), retry_after(1.0), retry_after(1.2)) == ("1", "1", "2")


def test_the_rate_limit_answers_429_with_retry_after_before_anything_is_stored() -> None:
    settings = Settings(collector={"write_keys": {"wk_live": "website", "wk_other": "crm"},
                                   "rate_limit_per_second": 0.001, "rate_limit_burst": 2})
    out = FakeOut()
    good = orjson.dumps({"messageId": "m", "userId": "u", "event": "e"})

    async def go() -> list[tuple[int, str | None, dict]]:
        async with TestClient(TestServer(build_app(settings, out))) as client:  # type: ignore[arg-type]
            answers = []
            for key, body in [("wk_live", good), ("wk_live", good), ("wk_live", good),
                              (None, b'{"writeKey":"wk_live",' + good[1:]), ("wk_other", good)]:
                resp = await client.post("/v1/track", data=body, headers=basic_auth(key) if key else {})
                answers.append((resp.status, resp.headers.get("Retry-After"), await resp.json()))
            return answers

    answers = asyncio.run(go())
    assert [a[0] for a in answers] == [200, 200, 429, 429, 200]
    status, after, payload = answers[2]
    assert payload["code"] == "rate_limited" and int(after or 0) >= 1
    assert answers[3][1] is not None
    assert len(out.sent) == 3  # nothing of the refused requests


def batch(items: int, context_bytes: int) -> dict:
    return {"context": {"pad": "x" * context_bytes},
            "batch": [{"type": "track", "messageId": f"m{i}", "anonymousId": "a", "event": "e"} for i in range(items)]}


def test_a_batch_context_copied_into_many_items_is_413_past_the_expansion_cap() -> None:
    limits = Limits(max_future=timedelta(minutes=5), max_expanded_bytes=200_000)
    handled = handle(orjson.dumps(batch(100, 3000)), "batch", received_at=NOW, limits=limits)
    assert handled.too_large and handled.accepted == []
    (letter,) = handled.items
    assert isinstance(letter, Rejected) and len(letter.value) <= limits.max_event_bytes
    status, payload = response(handled)
    assert status == 413 and payload["code"] == "payload_too_large"
    assert "the limit is 200000 bytes per request (JOURNEYS_COLLECTOR__MAX_EXPANDED_BYTES)" in payload["message"]
    small = handle(orjson.dumps(batch(50, 3000)), "batch", received_at=NOW, limits=limits)
    assert len(small.accepted) == 50  # under the cap: as before


def test_the_default_cap_holds_a_full_batch_with_a_big_context_to_a_few_mb() -> None:
    """The issue's case: a ~30 KB context copied into 500 minimal items (15 MB) is refused."""
    handled = handle(orjson.dumps(batch(500, 30_000)), "batch", received_at=NOW,
                     limits=Limits(max_future=timedelta(minutes=5)))
    assert handled.too_large and handled.accepted == []
    assert sum(len(i.value) for i in handled.items) <= Limits().max_event_bytes


def test_the_answer_lists_the_first_rejections_and_counts_them_all() -> None:
    body = orjson.dumps({"batch": [0] * 500})
    handled = handle(body, "batch", received_at=NOW, limits=Limits())
    status, payload = response(handled)
    assert status == 400 and payload["rejected_count"] == 500
    assert len(payload["rejected"]) == MAX_LISTED_REJECTIONS and f"first {MAX_LISTED_REJECTIONS}" in payload["message"]
    many_fields = {"type": "opportunity", **{f"x{i}": i for i in range(50)}}  # CRM records are strict
    _, payload = response(handle(orjson.dumps(many_fields), "crm", received_at=NOW, limits=Limits()))
    (listed,) = payload["rejected"]
    assert len(listed["reasons"]) == MAX_LISTED_REASONS + 1 and listed["reasons"][-1].startswith("… and ")


def test_aiohttp_with_the_gzip_bomb_guard_is_required_and_installed() -> None:
    """aiohttp 3.13.3 limits how far a gzip body may inflate; Faust pulls aiohttp in without
    that floor, so the project's own requirement must name it (issue 20, "Smaller")."""
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    (aiohttp,) = [r for r in map(Requirement, pyproject["project"]["dependencies"]) if r.name == "aiohttp"]
    floor = min(Version(s.version) for s in aiohttp.specifier if s.operator in (">=", "=="))
    assert floor >= Version("3.13.3"), aiohttp
    assert Version(version("aiohttp")) in aiohttp.specifier
