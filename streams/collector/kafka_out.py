"""The collector's only Kafka code: records for a handled request, and an acks=all producer.

A request is answered 200 only after the broker acknowledged every record of it
(:meth:`KafkaOut.send_all` returns); anything else raises :class:`BrokerUnavailable` and the
route answers 503, so the client retries. A retry after a timeout can duplicate events on the
topic; downstream deduplicates by ``messageId`` (and dead letters by their deterministic id).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.errors import JourneysError
from streams import topics as t
from streams.agents import dlq
from streams.collector.handling import Accepted, Handled
from streams.collector.settings import Source
from streams.headers import SOURCE_HEADER, WRITE_KEY_ID_HEADER

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)


class BrokerUnavailable(JourneysError):
    """Kafka did not acknowledge in time (or is not connected yet): answer 503, retry later."""


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def records_for(handled: Handled, source: Source, topic_prefix: str) -> list[OutRecord]:
    """Accepted events → inbound topic; rejections → its dead-letter twin (``dlq.headers``)."""
    inbound, dead = t.name(t.INBOUND, topic_prefix), t.name(t.INBOUND_DLQ, topic_prefix)
    origin = [(SOURCE_HEADER, source.name.encode()), (WRITE_KEY_ID_HEADER, source.key_id.encode())]
    where = f"collector:{source.name}:{source.key_id}"
    out = []
    for item in handled.items:
        if isinstance(item, Accepted):
            out.append(OutRecord(inbound, item.key, item.value, origin))
        else:
            headers = dlq.headers("collector", where, item.value, item.error)
            out.append(OutRecord(dead, item.key, item.value, [*headers.items(), *origin]))
    return out


class KafkaOut:
    """An idempotent ``acks='all'`` AIOKafkaProducer that (re)connects in the background."""

    def __init__(self, bootstrap: str, *, client_id: str, linger_ms: int = 5, retry_seconds: float = 2.0,
                 security: Mapping[str, Any] | None = None):
        """``security``: SASL/TLS keywords for AIOKafkaProducer (:func:`streams.kafka_config.security_options`)."""
        self._bootstrap = [b.strip() for b in bootstrap.split(",")]
        self._security: Mapping[str, Any] = security or {}
        self._client_id = client_id
        self._linger_ms = linger_ms
        self._retry_seconds = retry_seconds
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, linger_ms: int = 5, retry_seconds: float = 2.0) -> KafkaOut:
        """The collector's producer for ``settings``: bootstrap servers and SASL/TLS options."""
        from streams.kafka_config import security_options

        return cls(settings.kafka_bootstrap, client_id=f"{settings.effective_app_id}-collector", linger_ms=linger_ms,
                   retry_seconds=retry_seconds, security=security_options(settings))

    @property
    def ready(self) -> bool:
        return self._producer is not None

    def start(self) -> None:
        """Begin connecting; requests get 503 until the broker answers."""
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        delay = self._retry_seconds
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap, client_id=self._client_id, acks="all",
                enable_idempotence=True, linger_ms=self._linger_ms, max_batch_size=256 * 1024, **self._security,
            )  # fmt: skip
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                log.warning("Kafka at %s not reachable (%s); retrying in %.0fs", ",".join(self._bootstrap), exc, delay)
                await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self._producer = producer
            log.info("connected to Kafka at %s", ",".join(self._bootstrap))
            return

    async def stop(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._producer is not None:
            await self._producer.stop()  # flushes what is in flight
            self._producer = None

    async def send_all(self, records: list[OutRecord], timeout: float) -> None:
        """Produce every record and wait for the broker's acknowledgement of each."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable(f"not connected to Kafka at {','.join(self._bootstrap)} yet")

        async def produce() -> None:
            futures = [await producer.send(r.topic, r.value, key=r.key, headers=r.headers) for r in records]
            await asyncio.gather(*futures)

        try:
            await asyncio.wait_for(produce(), timeout)
        except asyncio.TimeoutError as exc:
            raise BrokerUnavailable(f"Kafka did not acknowledge within {timeout:g}s") from exc
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka refused the write: {exc}") from exc
