"""Produce raw lines to a topic, keyed by their person/device id when they have one."""

from __future__ import annotations

from typing import Callable, Sequence

import orjson

from streams.producer import make_producer
from streams.settings import Settings


def key_of(line: bytes) -> bytes | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    for field in ("anonymousId", "userId", "crmContactId", "crmAccountId", "leadId", "opportunityId"):
        if isinstance(obj.get(field), str):
            return obj[field].encode()
    return None


def produce_lines(settings: Settings, topic: str, lines: Sequence[bytes],
                  on_sent: Callable[[int], None] | None = None) -> int:
    producer = make_producer(settings)
    try:
        futures = [producer.send(topic, key=key_of(line), value=line) for line in lines]
        producer.flush()
        for i, future in enumerate(futures, 1):
            future.get(timeout=30)
            if on_sent and i % 100 == 0:
                on_sent(100)
        if on_sent:
            on_sent(len(futures) % 100)
        return len(futures)
    finally:
        producer.close()
