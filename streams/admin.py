"""Create the tracker's topics before a worker starts (Faust won't consume a missing topic)."""

from __future__ import annotations

import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams import topics as t
from streams.kafka_config import client_options
from streams.settings import Settings

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings) -> list[str]:
    """Create any missing topic of :mod:`streams.topics`; return the names created."""
    admin = KafkaAdminClient(**client_options(settings), client_id=f"{settings.app_id}-admin",
                             request_timeout_ms=30000)
    try:
        existing = set(admin.list_topics())
        wanted = []
        for spec in t.ALL:
            name = t.name(spec, settings.topic_prefix)
            if name in existing:
                continue
            config = {"cleanup.policy": "compact"} if spec.compacted else {}
            wanted.append(NewTopic(name, settings.topic_partitions, settings.topic_replicas, topic_configs=config))
        created = []
        for topic in wanted:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics %s", created)
        return created
    finally:
        admin.close()
