"""A token bucket per write key: the collector answers ``429`` with ``Retry-After`` to a key that
posts faster than ``JOURNEYS_COLLECTOR__RATE_LIMIT_PER_SECOND`` (bursts of up to
``RATE_LIMIT_BURST`` requests pass). Pure: the clock is injected (``time.monotonic`` by default)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class TokenBucket:
    """``rate`` tokens a second into a bucket of ``burst``; a request takes one."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0.0 if a token was taken, else the seconds until one will be there."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class RateLimiter:
    """One bucket per key id (keys are the configured, authenticated ones, so their number is
    bounded). ``rate`` 0: no limit."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def wait(self, key: str) -> float:
        """0.0: the request may go on; else the seconds the key must wait (answer 429)."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.rate, max(1.0, float(self.burst)), max(1.0, float(self.burst)),
                                                     now)
        return bucket.take(now)


def retry_after(wait: float) -> str:
    """``Retry-After`` in whole seconds, at least 1 (the header has no fractions)."""
    return str(max(1, math.ceil(wait)))
