"""Never let Kafka commit past a record that no agent processed (bug B7, docs/faults.md).

faust-streaming 0.15 skips a record it takes from a stream's buffer while flow control is off
(a rebalance or table recovery has begun) or whose consumer generation is stale (fetched
before the rebalance), and then *acks* it. The next commit — the one made while partitions
are revoked — moves the group's offset past it, and the partition's next owner starts after a
record nobody handled. The fault suite saw 4 consecutive records lost in a 1 → 2 rebalance
and 1 when a stalled worker rejoined (cf. faust-streaming #216, #221, #223).

The guard refuses the ack of exactly those records: a record of an acking topic that a stream
never *tracked* (Faust tracks a record when it hands it to an agent — also when a processor
filters it out with ``Skip`` — and skips before tracking). Not acked, its offset is never
committed by this worker; after the rebalance the owner seeks to the committed offset and
reads it again. Processed records ack as before, so this costs no duplicate processing.
"""

from __future__ import annotations

import logging

from faust.transport.consumer import Consumer
from faust.types.tuples import Message, ack_lock

log = logging.getLogger(__name__)

_original_ack = Consumer.ack
refused = 0  # records whose ack was refused in this process (for tests and logs)


def _guarded_ack(self: Consumer, message: Message) -> bool:
    global refused
    if not message.tracked and self.app.topics.acks_enabled_for(message.topic):
        with ack_lock:
            # Counted as handled for this delivery (so nothing waits on it), never committed.
            message.acked = True
            self._unacked_messages.discard(message)
            refused += 1
        log.debug("not committing skipped record %s[%d]@%d (rebalance); it will be read again",
                  message.topic, message.partition, message.offset)
        return False
    return _original_ack(self, message)


def install() -> None:
    """Patch Faust's consumer once per process (idempotent)."""
    if Consumer.ack is not _guarded_ack:
        Consumer.ack = _guarded_ack  # type: ignore[method-assign]
