"""Alert delivery to webhooks (Slack-compatible JSON) with retries and exponential backoff.

The one module that talks HTTP to alert receivers. A receiver that fails is retried with
backoff until it answers 2xx; the ``X-Journeys-Alert-Id`` header lets a receiver drop a
duplicate if a delivery is repeated after a crash.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

import aiohttp

log = logging.getLogger(__name__)


async def deliver(session: aiohttp.ClientSession, url: str, body: dict, alert_id: str, *,
                  initial_backoff: float = 0.5, max_backoff: float = 60.0, timeout: float = 10.0,
                  on_failure: Callable[[str], None] | None = None) -> int:
    """POST until a 2xx answer; return the number of attempts. Never raises for HTTP failures."""
    attempt, backoff = 0, initial_backoff
    while True:
        attempt += 1
        try:
            async with session.post(url, json=body, headers={"X-Journeys-Alert-Id": alert_id},
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if 200 <= resp.status < 300:
                    return attempt
                reason = f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        log.warning("webhook delivery of alert %s failed (attempt %d: %s); retrying in %.1fs",
                    alert_id, attempt, reason, backoff)
        if on_failure is not None:
            on_failure(reason)
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)
