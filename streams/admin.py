"""Create the tracker's topics before a worker starts (Faust won't consume a missing topic).

Creation is acknowledged before the broker's metadata lists the topic. A worker that subscribes
in between finds it missing, joins with an empty assignment and only looks again at its next
metadata refresh — 5 minutes later (seen in a split-role soak: the store stored nothing for
5 min). So :func:`ensure_topics` returns once every topic it created is visible with leaders.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, SaslAuthenticationFailedError, TopicAlreadyExistsError

from schemas.errors import ConfigurationError
from streams import topics as t
from streams.kafka_config import client_options
from streams.settings import Settings

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings) -> list[str]:
    """Create any missing topic of :mod:`streams.topics`; return the names created. A broker that
    refuses the login is a :class:`ConfigurationError` naming the user (never the password)."""
    try:
        admin = KafkaAdminClient(**client_options(settings), client_id=f"{settings.effective_app_id}-admin",
                                 request_timeout_ms=30000)
    except SaslAuthenticationFailedError as exc:
        raise ConfigurationError(
            f"Kafka at {settings.kafka_bootstrap} refused the login of user '{settings.kafka_sasl_username}' "
            f"({settings.kafka_sasl_mechanism}): {exc.args[0] if exc.args else exc} — check "
            "JOURNEYS_KAFKA_SASL_USERNAME and JOURNEYS_KAFKA_SASL_PASSWORD") from exc
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
            wait_visible(admin, created)
        return created
    finally:
        admin.close()


def wait_visible(admin: Any, names: list[str], timeout: float = 30.0) -> bool:
    """Wait until the broker's metadata lists ``names`` with a leader for every partition."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            described = admin.describe_topics(names)
            if all(d.get("error_code") == 0 and d.get("partitions")
                   and all(p.get("leader_id", -1) >= 0 for p in d["partitions"]) for d in described):
                return True
        except Exception as exc:  # noqa: BLE001 - keep asking until the deadline
            log.debug("topics not visible yet: %s", exc)
        if time.monotonic() >= deadline:
            log.warning("topics %s created but not yet visible after %.0f s; a worker may wait for its next "
                        "metadata refresh (up to 5 min) before consuming them", names, timeout)
            return False
        time.sleep(0.2)


def adopt_store_offsets(settings: Settings, store_topics: set[str]) -> dict[str, int]:
    """When a worker that ran both roles in one process starts again as two (``streams.processes``),
    its store role commits as ``<app>-store`` from then on — a group with no offsets yet, which
    would read every store topic again from its start (idempotent, but hours on a long history).
    So, before the store's consumer joins: if ``<app>-store`` has no committed offset at all and
    ``<app>`` has committed one for a topic only the store role reads (proof that ``<app>`` ran
    the store role; a stream-only group's offsets for the shared topics would skip records the
    store never wrote), the store group starts from ``<app>``'s offsets for ``store_topics``
    (in one process an offset is committed once every agent on the topic has acked it, the
    store's included). Returns the partitions adopted per topic (empty: nothing to adopt)."""
    app_id = settings.effective_app_id
    store_group = f"{app_id}-store"
    only_store = {name for name in store_topics
                  if name not in {t.name(s, settings.topic_prefix) for s in t.STREAM_READS}}
    admin = KafkaAdminClient(**client_options(settings), client_id=f"{app_id}-admin", request_timeout_ms=30000)
    try:
        try:
            found = _retrying(lambda: admin.list_group_offsets({app_id: None, store_group: None}))
        except KafkaError as exc:  # the store then reads its topics from their start: slower, never wrong
            log.warning("could not read the consumer groups' offsets (%s): the store role reads its topics from "
                        "%s's own offsets, or from their start", type(exc).__name__, store_group)
            return {}
        if any(meta.offset >= 0 for meta in (found.get(store_group) or {}).values()):
            return {}
        old = {tp: meta for tp, meta in (found.get(app_id) or {}).items() if meta.offset >= 0}
        if not any(tp.topic in only_store for tp in old):
            return {}
        offsets = {tp: meta for tp, meta in old.items() if tp.topic in store_topics}
        try:
            errors = _retrying(lambda: admin.alter_group_offsets(store_group, offsets))
        except KafkaError as exc:
            log.warning("could not start %s from %s's offsets (%s); its store role reads its topics from their "
                        "start", store_group, app_id, type(exc).__name__)
            return {}
        failed = {f"{tp.topic}/{tp.partition}": err.__name__ for tp, err in errors.items()
                  if getattr(err, "errno", 0) != 0}
        if failed:  # e.g. a store process of this app already runs: it has its own offsets
            log.warning("could not start %s from %s's offsets (%s); its store role reads from its own", store_group,
                        app_id, failed)
            return {}
        adopted: dict[str, int] = {}
        for tp in offsets:
            adopted[tp.topic] = adopted.get(tp.topic, 0) + 1
        return adopted
    finally:
        admin.close()


def _retrying(call: Any, seconds: float = 30.0) -> Any:
    """``call()``, again while the broker answers with a retriable error (a fresh broker has no
    group coordinator for its first seconds: ``CoordinatorNotAvailableError``) for ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
