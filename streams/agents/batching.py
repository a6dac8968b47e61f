"""Helpers for agents that write batches: a dedup token naming exactly the offsets in a batch."""

from __future__ import annotations

from typing import Sequence

import faust


def offsets_token(table: str, events: Sequence[faust.EventT]) -> str:
    """``table:topic/p:first-last,...`` — a retried identical batch carries the same token."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for event in events:
        msg = event.message
        span = ranges.setdefault((msg.topic, msg.partition), [msg.offset, msg.offset])
        span[0] = min(span[0], msg.offset)
        span[1] = max(span[1], msg.offset)
    parts = ",".join(f"{tp[0]}/{tp[1]}:{a}-{b}" for tp, (a, b) in sorted(ranges.items()))
    return f"{table}:{parts}"

