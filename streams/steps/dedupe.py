"""Step: dedupe (keyed by event id) — the first receipt of each id goes on; re-sends stop.

Ingest sends every valid event here keyed by its id, already serialised for the stage it goes
to next, with headers naming that stage, its key there, and the inbound record the event came
from; this step forwards the bytes without parsing them. The rule is :mod:`streams.rules.dedupe`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams import metrics
from streams.headers import RECEIPT_HEADER, ROUTE_HEADER, ROUTE_KEY_HEADER
from streams.rules.dedupe import new_receipt, passes
from streams.steps import Names, Outbox, States
from streams.steps.ingest import ROUTES

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Dedupe:
    names: Names
    name: str = "dedupe"

    def group(self, records: Sequence[Any], out: Outbox) -> dict[str, list[tuple[Any, ...]]]:
        groups: dict[str, list[tuple[Any, ...]]] = {}
        for record in records:
            key = record.key.decode("utf-8", "replace") if record.key else ""
            groups.setdefault(key, []).append((record,))
        return groups

    def handle(self, key: str, items: list[tuple[Any, ...]], states: States, out: Outbox) -> None:
        for (record,) in items:
            headers = dict(record.headers or {})
            stage = headers.get(ROUTE_HEADER, b"").decode("utf-8", "replace")
            if stage not in ROUTES or record.key is None:  # only ingest writes here: a bug, say so
                log.error("receipt without a route at %s[%d]@%d skipped", record.topic, record.partition, record.offset)
                metrics.child(metrics.EVENTS_OUT, "dedupe", "unroutable").inc()
                continue
            ref = headers.get(RECEIPT_HEADER, b"").decode("utf-8", "replace")
            state = states.get(key)
            if not passes(state, ref):
                metrics.child(metrics.EVENTS_OUT, "dedupe", "resent").inc()
                continue
            if state is None:
                states.put(key, new_receipt(ref, now_ms()), record)  # written with the batch: a redelivery re-sends
            out.add(getattr(self.names, stage), headers.get(ROUTE_KEY_HEADER, b""), record.value or b"")
            metrics.child(metrics.EVENTS_OUT, "dedupe", "first").inc()
