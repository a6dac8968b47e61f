"""Alert delivery to webhooks (Slack-compatible JSON): bounded retries with backoff.

The one module that talks HTTP to alert receivers. :func:`deliver` POSTs an alert until the
receiver answers 2xx, refuses it for good (a 4xx other than 408/429: a removed Slack webhook
answers 404 or 410), or ``attempts`` are used up; it returns a :class:`Outcome` and never raises
for HTTP failures. The ``X-Journeys-Alert-Id`` header lets a receiver drop a duplicate if a
delivery is repeated after a crash. :class:`Health` remembers receivers that are down, so a dead
one costs each later alert one attempt rather than every backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger(__name__)

RETRYABLE_4XX = frozenset({408, 425, 429})
"""Client errors worth retrying (timeout, too early, rate limited); any other 4xx is final."""

REASON_BODY_CHARS = 120


@dataclass(frozen=True)
class Policy:
    """How hard to try one receiver: ``attempts`` POSTs at most, waiting ``backoff`` seconds after
    the first failure, doubling up to ``max_backoff`` (a ``Retry-After`` answer is honoured up to
    ``max_backoff`` too); each POST may take ``timeout`` seconds."""

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 10.0


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    attempts: int
    reason: str = ""
    """The last failure; empty when delivered."""


def redact(url: str) -> str:
    """A receiver's name for logs, tables and the UI: scheme, host and a short hash of the whole
    URL — never its path or credentials (a Slack webhook URL is a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}/…{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


async def _reason(resp: aiohttp.ClientResponse) -> str:
    try:
        body = (await resp.text(errors="replace")).strip()
    except (aiohttp.ClientError, asyncio.TimeoutError, UnicodeDecodeError):
        body = ""
    body = " ".join(body.split())[:REASON_BODY_CHARS]
    return f"HTTP {resp.status}: {body}" if body else f"HTTP {resp.status}"


async def deliver(session: aiohttp.ClientSession, url: str, body: dict, alert_id: str, policy: Policy = Policy(), *,
                  sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                  on_retry: Callable[[str], None] | None = None) -> Outcome:
    """POST ``body`` to ``url`` until a 2xx answer, a final refusal or ``policy.attempts`` tries."""
    backoff, reason = policy.backoff, ""
    for attempt in range(1, max(1, policy.attempts) + 1):
        wait: float | None = None
        try:
            async with session.post(url, json=body, headers={"X-Journeys-Alert-Id": alert_id},
                                    timeout=aiohttp.ClientTimeout(total=policy.timeout)) as resp:
                if 200 <= resp.status < 300:
                    return Outcome(True, attempt)
                reason = await _reason(resp)
                if 400 <= resp.status < 500 and resp.status not in RETRYABLE_4XX:
                    log.warning("webhook %s refused alert %s (%s); not retrying", redact(url), alert_id, reason)
                    return Outcome(False, attempt, reason)
                wait = _retry_after(resp)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if attempt >= policy.attempts:
            break
        delay = min(policy.max_backoff, wait if wait is not None else backoff)
        log.warning("webhook delivery of alert %s to %s failed (attempt %d of %d: %s); retrying in %.1fs",
                    alert_id, redact(url), attempt, policy.attempts, reason, delay)
        if on_retry is not None:
            on_retry(reason)
        await sleep(delay)
        backoff = min(policy.max_backoff, backoff * 2)
    log.warning("webhook %s did not take alert %s after %d attempt(s) (%s); marked failed",
                redact(url), alert_id, policy.attempts, reason)
    return Outcome(False, max(1, policy.attempts), reason)


class Health:
    """Receivers whose last delivery failed. A receiver that is down gets one attempt per alert
    (so a dead webhook costs each later alert one request, not the whole retry budget); its
    first success brings it back to the full policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._down: set[str] = set()

    def policy_for(self, url: str) -> Policy:
        if url in self._down:
            return Policy(1, self.policy.backoff, self.policy.max_backoff, self.policy.timeout)
        return self.policy

    def record(self, url: str, outcome: Outcome) -> None:
        if outcome.delivered:
            self._down.discard(url)
        else:
            self._down.add(url)
