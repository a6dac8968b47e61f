"""Settings: environment variables with the ``JOURNEYS_`` prefix, built once at the entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.collector.settings import CollectorSettings

from streams.rules.identity import IdentityConfig


class IdentitySettings(BaseModel):
    """Caps and lists of identity resolution (env ``JOURNEYS_IDENTITY__<NAME>``)."""

    max_persons_per_device: int = Field(3, ge=1, description="A device identified as more people is shared: no more links.")
    max_devices_per_person: int = Field(20, ge=1, description="Most devices linked to one person.")
    buffer_max_events: int = Field(200, ge=0, description="Anonymous events kept per device for retroactive stitching.")
    buffer_window_days: float = Field(30, gt=0, description="How far back a device's anonymous events are re-sent to the journey stage on identification "
        "(timelines stitch at query time without a limit).")
    blocked_values: list[str] = Field(
        default_factory=lambda: sorted(IdentityConfig().blocked_values),
        description="Identifier values that never link anything (JSON list).",
    )

    def config(self) -> IdentityConfig:
        return IdentityConfig(
            max_persons_per_device=self.max_persons_per_device,
            max_devices_per_person=self.max_devices_per_person,
            buffer_max_events=self.buffer_max_events,
            buffer_window_ms=int(self.buffer_window_days * 86_400_000),
            blocked_values=frozenset(v.lower() for v in self.blocked_values),
        )


class Settings(BaseSettings):
    """Every setting of the tracker. Environment: ``JOURNEYS_<NAME>`` (nested with ``__``)."""

    model_config = SettingsConfigDict(
        env_prefix="JOURNEYS_", env_nested_delimiter="__", extra="ignore"
    )

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port].")
    clickhouse_url: SecretStr | None = Field(
        None,
        description="chdb:///abs/path (embedded, default: <data_dir>/store) or "
        "http(s)://user:password@host:8123/database for a ClickHouse server.",
    )
    data_dir: Path = Field(Path(".journeys"), description="Local state: Faust tables and the embedded store.")
    app_id: str = Field("journeys", description="Faust application id (consumer group prefix).")
    topic_prefix: str = Field("", description="Prepended to every topic name (isolates test runs, tenants).")
    topic_partitions: int = Field(4, ge=1, description="Partitions for topics the tracker creates.")
    topic_replicas: int = Field(1, ge=1, description="Replication factor for topics the tracker creates.")
    roles: str = Field(
        "stream,store",
        description="Roles this process runs: 'stream' (validate, stitch, journeys) and/or "
        "'store' (ClickHouse sink + query API). With chDB only one process may hold 'store'.",
    )
    web_port: int = Field(6066, description="Port of the worker's web server (query API, health).")
    web_host: str = Field("127.0.0.1", description="Bind address of the worker's web server.")
    api_url: str = Field(
        "http://127.0.0.1:6066", description="Where the CLI finds a running store process."
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token required by the JSON API and the web UI's data calls when set "
        "(health and metrics stay open); the CLI sends it too."
    )
    max_future_seconds: int = Field(
        300, ge=0, description="Events stamped further than this in the future are rejected."
    )
    sink_batch_size: int = Field(5000, ge=1, description="Largest ClickHouse insert block.")
    sink_flush_seconds: float = Field(1.0, gt=0, description="Longest wait before a partial block is written.")
    fault_kill_after_inserts: int = Field(
        0, ge=0, description="For fault tests only (tests/faults): the store process kills itself (SIGKILL) right "
        "after its n-th successful ClickHouse insert, before that batch is acked. 0 (default): off."
    )
    fault_fail_inserts_seconds: float = Field(
        0, ge=0, description="For fault tests only (tests/faults): every ClickHouse insert fails with a transient "
        "error for this many seconds after the first successful one (ClickHouse unavailable). 0 (default): off."
    )
    definitions: Path | None = Field(
        None, description="Shared definitions file (YAML); default: the one shipped in schemas/defaults/."
    )
    alert_tick_seconds: float = Field(
        10.0, gt=0, description="How often timer alert rules (missed handoff, stalled deal) are checked."
    )
    alert_idle_seconds: float = Field(
        5.0, gt=0, description="While events flow, timer rules use the newest event time; after this idle "
        "time, the wall clock (so a replay of old data raises no timer alerts for the past).",
    )
    alert_webhooks: list[str] = Field(
        default_factory=list, description="Extra webhook URLs for alerts (JSON list), besides the definitions file's."
    )
    public_url: str = Field(
        "http://127.0.0.1:6066", description="Base URL of the web UI, for links in alerts."
    )
    table_store: str = Field("rocksdb://", description="Faust table store: rocksdb:// (default) or memory://.")
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    session_timeout_seconds: float = Field(
        30.0, ge=6, description="Kafka consumer-group session timeout: how soon a dead worker's partitions move."
    )
    producer_linger_ms: float = Field(
        5.0, ge=0, description="How long the worker's producer waits to fill a batch (throughput vs latency)."
    )
    commit_interval: float = Field(1.0, gt=0, description="Seconds between Kafka offset commits.")
    log_format: Literal["text", "json"] = Field(
        "text", description="'json': one JSON object per log line (ts, level, logger, message, event_id, "
        "account_id), emails and URL passwords scrubbed."
    )
    collector: CollectorSettings = Field(
        default_factory=CollectorSettings, description="The HTTP collector (JOURNEYS_COLLECTOR__*)."
    )

    @property
    def store_url(self) -> str:
        if self.clickhouse_url is not None:
            return self.clickhouse_url.get_secret_value()
        return f"chdb://{(self.data_dir / 'store').resolve()}"

    def has_role(self, role: str) -> bool:
        return role in {r.strip() for r in self.roles.split(",")}
