"""Build the Faust app from settings: topics, agents for this process's roles, web views."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import faust
from faust.sensors import Monitor

from schemas.errors import ConfigurationError
from streams import ack_guard, faust_startup, kafka_config, packs, processes, tables
from streams import topics as t
from streams.agents import PACKED_ATTR, delivery
from streams.definitions_source import DefinitionsSource
from streams.settings import Settings
from streams.storehandle import StoreHandle
from streams.web import auth, ops


@dataclass
class Topics:
    """The Faust topic objects of this app, built from :mod:`streams.topics`."""

    inbound: faust.TopicT
    inbound_dlq: faust.TopicT
    receipts: faust.TopicT
    events: faust.TopicT
    persons: faust.TopicT
    timeline: faust.TopicT
    identity_links: faust.TopicT
    identity_overrides: faust.TopicT
    journey_updates: faust.TopicT
    journey_ticks: faust.TopicT
    journey_rebuilds: faust.TopicT
    lead_outcomes: faust.TopicT
    alerts: faust.TopicT
    alert_deliveries: faust.TopicT
    privacy: faust.TopicT


def _topic(app: faust.App, spec: t.TopicSpec, settings: Settings) -> faust.TopicT:
    return app.topic(
        t.name(spec, settings.topic_prefix),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
        replicas=settings.topic_replicas,
        compacting=spec.compacted or None,
    )


class QuietMonitor(Monitor):
    """Faust's monitor without its bookkeeping per record and per table read or write (counts
    and timings by topic, stream and table for Faust's own ``/stats``, which nothing of ours
    reads — our series are ``streams.metrics``): ~2% of a live drain's event loop. Everything
    else it does (commits, sends, assignments, partition end offsets) is Faust's."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None  # no state: on_stream_event_out has nothing to time

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_table_get(self, table: Any, key: Any) -> None:
        return None

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        return None


def create_app(settings: Settings, stream_child: Any = None) -> faust.App:
    """A Faust app wired for the roles in ``settings.roles``; ``stream_child``: the
    :class:`streams.processes.Child` holding the stream role for this one, if any (its metrics
    and health are served with this process's)."""
    problem = settings.legacy_store_problem()
    if problem:
        raise ConfigurationError(problem)
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # the tenant's own (data_dir without a prefix)
    ack_guard.install()  # never commit past a record skipped during a rebalance (B7)
    delivery.install()  # batch agents get a fetch's records at once, not one by one (issue #17)
    faust_startup.install()  # the fetcher's first fetch without Faust's 1 s poll (issue #17)
    # (an inline per-record hand-off, streams/fast_delivery.py, stalled a worker restarted with a backlog in 4 of 42
    # runs and was removed: delivery.install() hands the busy topics' records over a fetch at a time instead)
    # A store-only process reads topics the stream role reads too (timeline, alerts) and needs
    # every record of them: it gets its own consumer group, else Kafka hands each partition to
    # only one of the two roles (found by tests/faults, scenario 2; see docs/faults.md).
    group = settings.effective_app_id if settings.has_role("stream") else f"{settings.effective_app_id}-store"
    app = faust.App(
        group,
        **kafka_config.faust_options(settings),  # broker URLs (+ SASL/TLS credentials)
        store=tables.store_url(settings, ""),  # any table made without tables.table() is bounded too
        datadir=str(settings.state_dir / "faust"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replicas,
        topic_allow_declare=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_enabled=True,
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.producer_linger_ms / 1000,
        producer_max_batch_size=1024 * 1024,
        processing_guarantee="at_least_once",
        autodiscover=False,
        Monitor=QuietMonitor,  # the class Faust makes its monitor from
        TableManager=faust_startup.PromptTableManager,  # without Faust's 1 s sleep at start
    )
    topics = Topics(
        inbound=_topic(app, t.INBOUND, settings),
        inbound_dlq=_topic(app, t.INBOUND_DLQ, settings),
        receipts=_topic(app, t.RECEIPTS, settings),
        events=_topic(app, t.EVENTS, settings),
        persons=_topic(app, t.PERSONS, settings),
        timeline=_topic(app, t.TIMELINE, settings),
        identity_links=_topic(app, t.IDENTITY_LINKS, settings),
        identity_overrides=_topic(app, t.IDENTITY_OVERRIDES, settings),
        journey_updates=_topic(app, t.JOURNEY_UPDATES, settings),
        journey_ticks=_topic(app, t.JOURNEY_TICKS, settings),
        journey_rebuilds=_topic(app, t.JOURNEY_REBUILDS, settings),
        lead_outcomes=_topic(app, t.LEAD_OUTCOMES, settings),
        alerts=_topic(app, t.ALERTS, settings),
        alert_deliveries=_topic(app, t.ALERT_DELIVERIES, settings),
        privacy=_topic(app, t.PRIVACY, settings),
    )
    app.journeys_settings = settings  # type: ignore[attr-defined]
    app.journeys_topics = topics  # type: ignore[attr-defined]
    # the internal topics the stream stages write in packs (streams/packs.py; their readers unpack any)
    setattr(app, PACKED_ATTR, frozenset(getattr(topics, name).get_topic_name() for name in packs.PACKED)
            if settings.pack_records else frozenset())

    definitions = DefinitionsSource(settings.definitions)
    if settings.definitions_reload_seconds > 0:
        @app.timer(interval=settings.definitions_reload_seconds)
        async def reload_definitions() -> None:
            """A valid new version of the definitions file applies without a restart."""
            definitions.poll()  # in the loop, between batches: a step never sees two versions in one

    if settings.has_role("stream"):
        from streams.agents import (
            alerts_delivery,
            dedupe,
            identity_devices,
            identity_persons,
            ingest,
            journey,
            lead_feedback,
        )  # fmt: skip
        from streams.fence import Fence

        # a worker frozen past its session exits before writing from stale state (B6)
        app.journeys_fence = Fence(float(app.conf.broker_session_timeout)).start()  # type: ignore[attr-defined]

        cfg = settings.identity.config(settings.pii.key())
        ingest.register(app, topics, settings)
        if settings.dedupe_days > 0:
            dedupe.register(app, topics, settings)
        identity_devices.register(app, topics, settings, cfg)
        identity_persons.register(app, topics, settings, cfg)
        journey.register(app, topics, settings, definitions)
        lead_feedback.register(app, topics, settings, definitions)
        alerts_delivery.register(app, topics, settings, definitions.current)
    if settings.has_role("store"):
        from sinks.clickhouse import ddl
        from sinks.clickhouse.client import read_limits
        from streams.agents import privacy, rebuilds, store
        from streams.web import api, ui

        faults = None
        if settings.fault_kill_after_inserts or settings.fault_fail_inserts_seconds:
            from sinks.clickhouse.client import FaultHooks

            faults = FaultHooks(settings.fault_kill_after_inserts, settings.fault_fail_inserts_seconds)
        defs = definitions.current
        channels = ddl.channel_rows(defs.channels, defs.version, time.time_ns() // 1000)
        handle = StoreHandle(settings.store_url, faults=faults, reader_url=settings.reader_url, channels=channels,
                             retention_days=(settings.retention.events_days, settings.retention.dead_letters_days),
                             read_limits=read_limits(settings.api_query_seconds, settings.api_query_memory_mb,
                                  settings.api_query_rows))
        definitions.subscribe(lambda d: asyncio.get_running_loop().run_in_executor(
            None, handle.set_channels, ddl.channel_rows(d.channels, d.version, time.time_ns() // 1000)))
        store.register(app, topics, settings, handle)
        privacy.register(app, topics, settings, handle)
        rebuilds.register(app, topics, settings, handle)
        api.register(app, handle, definitions)
        ui.register(app, settings)
        if settings.sql.port and handle.url.startswith("chdb:"):  # with a server, analysts use the server
            from streams.web import sql_endpoint

            sql_endpoint.register(app, settings, handle)
    ops.register(app, settings, handle if settings.has_role("store") else None, stream_child)
    auth.install(app)  # every role: Faust's own /table/ views expose state too
    if stream_child is not None:  # after the guard: the tables are the child's
        app.web.web_app.middlewares.append(processes.proxy(stream_child))
    return app
