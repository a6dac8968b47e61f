"""An in-memory stand-in for the collector's Kafka output, for in-process collector tests.

Used only where the test is about request handling (status codes, limits, logging) and runs the
collector's aiohttp app in-process; the real collector process against a real broker is covered
by tests/integration and fault scenario 11.
"""

from __future__ import annotations

import base64

from streams.collector.kafka_out import BrokerUnavailable, OutRecord


class FakeOut:
    """Records what the collector would send; ``fail=True`` acts like a broker that never acks."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.sent, self.ready = fail, [], True

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_all(self, records: list[OutRecord], timeout: float) -> None:
        if self.fail:
            raise BrokerUnavailable("Kafka did not acknowledge within 10s")
        self.sent.extend(records)


def basic_auth(write_key: str) -> dict[str, str]:
    """The ``Authorization`` header a Segment-style source sends (write key as user, no password)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
