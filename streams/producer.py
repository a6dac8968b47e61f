"""A Kafka producer for entry points outside the worker (collector, import, replay, demo).

acks=all with the idempotent producer: a send counts only once the broker has it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafka import KafkaProducer

from streams.kafka_config import client_options
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.topics import TopicSpec


def make_producer(settings: Settings, **overrides: object) -> KafkaProducer:
    config = client_options(settings)  # bootstrap servers + SASL/TLS (streams.kafka_config)
    config.update(
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        retries=10,
        max_in_flight_requests_per_connection=5,
        client_id=f"{settings.effective_app_id}-producer",
    )
    config.update(overrides)
    return KafkaProducer(**config)


def send_one(settings: Settings, spec: "TopicSpec", key: bytes, value: bytes, timeout: float = 30) -> None:
    """One record to one of our topics (a CLI command's request: an override, a privacy request),
    waited for: the command says it is recorded only once the broker has it."""
    from streams import topics as t

    producer = make_producer(settings)
    try:
        producer.send(t.name(spec, settings.topic_prefix), key=key, value=value).get(timeout=timeout)
    finally:
        producer.close()
