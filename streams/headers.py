"""Kafka record headers that entry points (collector, import, replay) put on inbound events.

Dead-letter headers (``journeys.dlq.*``) live with the topics in :mod:`streams.topics`.
"""

from __future__ import annotations

SOURCE_HEADER = "journeys.source"
"""Where the event came from: a collector source name, ``import:<file>``, ... (UTF-8)."""
WRITE_KEY_ID_HEADER = "journeys.write_key_id"
"""Short sha256 id of the collector write key used (never the key itself)."""
REPLAY_OF_HEADER = "journeys.replay_of"
"""On events re-submitted by ``journeys dlq replay``: the dead letter's id."""
RECEIPT_HEADER = "journeys.receipt"
"""On the receipts topic: the inbound record (``topic/partition@offset``) an event was read from."""
ROUTE_HEADER = "journeys.route"
"""On the receipts topic: the stage the event goes to after the dedupe stage (events, persons, timeline)."""
ROUTE_KEY_HEADER = "journeys.route_key"
"""On the receipts topic: the event's key on that stage's topic (raw bytes)."""
