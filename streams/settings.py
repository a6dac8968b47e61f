"""Settings: environment variables with the ``JOURNEYS_`` prefix, built once at the entry point."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SecretsSettingsSource, SettingsConfigDict

from schemas.errors import ConfigurationError
from schemas.events import MAX_DEPTH
from streams.collector.settings import CollectorSettings
from streams.rules.identity import IdentityConfig
from streams.rules.pii import is_email, pseudonymize_email


class IdentitySettings(BaseModel):
    """Caps and lists of identity resolution (env ``JOURNEYS_IDENTITY__<NAME>``)."""

    max_persons_per_device: int = Field(3, ge=1, description="A device identified as more people is shared: no more links.")
    buffer_max_events: int = Field(200, ge=0, description="Anonymous events kept per device for retroactive stitching.")
    buffer_window_days: float = Field(30, gt=0, description="How far back a device's anonymous events are re-sent to the journey stage on identification "
        "(timelines stitch at query time without a limit).")
    max_state_bytes: int = Field(
        256 * 1024, ge=4096, le=512 * 1024,
        description="Bytes of remembered events one device or person keeps (anonymous buffer, recent events); the "
        "oldest go first. Bounded below Faust's 1 MB changelog record.")
    blocked_values: list[str] = Field(
        default_factory=lambda: sorted(IdentityConfig().blocked_values),
        description="Identifier values that never link anything (JSON list).",
    )

    def config(self, email_key: bytes | None = None) -> IdentityConfig:
        """The rules' config; with an email HMAC key, blocked addresses are blocked as pseudonyms too."""
        blocked = {v.lower() for v in self.blocked_values}
        if email_key:
            blocked |= {pseudonymize_email(v, email_key) for v in blocked if is_email(v)}
        return IdentityConfig(
            max_persons_per_device=self.max_persons_per_device,
            buffer_max_events=self.buffer_max_events,
            buffer_window_ms=int(self.buffer_window_days * 86_400_000),
            max_state_bytes=self.max_state_bytes,
            blocked_values=frozenset(blocked),
        )


class PiiSettings(BaseModel):
    """Personal data handling (env ``JOURNEYS_PII__<NAME>``)."""

    email_hmac_key: SecretStr | None = Field(
        None, description="Secret pepper: when set, every email address is stored as a keyed HMAC "
        "(hmac:<hex>@domain, the domain in clear) instead of the address. Changing it splits identities "
        "in two (old and new pseudonyms); keep it as long as the data.",
    )

    def key(self) -> bytes | None:
        return self.email_hmac_key.get_secret_value().encode() if self.email_hmac_key else None


class SqlSettings(BaseModel):
    """The analysts' SQL endpoint on the store process (env ``JOURNEYS_SQL__<NAME>``): a
    read-only subset of the ClickHouse HTTP interface over the embedded store (docs/analytics.md)."""

    port: int = Field(8124, ge=0, le=65535, description="Port of the SQL endpoint (ClickHouse HTTP protocol) "
                      "on the store process with the embedded store; 0 turns it off.")
    host: str = Field("127.0.0.1", description="Bind address of the SQL endpoint; anything but loopback "
                      "needs JOURNEYS_API_TOKEN (clients send it as password or bearer token).")
    url: str | None = Field(None, description="Where `journeys sql` and `journeys export` find the endpoint; "
                            "default http://127.0.0.1:<port>.")
    max_execution_seconds: float = Field(60.0, gt=0, description="Longest an analyst query may run.")
    max_result_rows: int = Field(10_000_000, ge=1, description="Most rows an analyst query may return "
                                 "(more is an error, never a silent cut).")
    max_result_mb: int = Field(2048, ge=1, description="Largest result an analyst query may return, MB.")
    max_memory_mb: int = Field(2048, ge=1, description="Most memory one analyst query may use, MB.")

    def endpoint(self) -> str:
        return (self.url or f"http://127.0.0.1:{self.port}").rstrip("/")


class RetentionSettings(BaseModel):
    """How long the store keeps raw data (env ``JOURNEYS_RETENTION__<NAME>``), set by the store
    process at start as a ClickHouse TTL."""

    events_days: int = Field(
        0, ge=0, description="Days the store keeps events (timeline, event_resolution and its by-account copies, by "
        "event time); 0 keeps them forever (a TTL set before is removed). Expired rows go at ClickHouse's next merges.")
    dead_letters_days: int = Field(
        0, ge=0, description="Days the store keeps dead letters (by rejection time); 0 keeps them forever. The "
        "dead-letter topic keeps its own copy for the topic's retention.ms.")


SECRETS_DIR_ENV = "JOURNEYS_SECRETS_DIR"
"""Directory of secret files: a file ``journeys_<name>`` holds the value of ``JOURNEYS_<NAME>``."""


class Settings(BaseSettings):
    """Every setting of the tracker. Environment: ``JOURNEYS_<NAME>`` (nested with ``__``).

    A setting can also come from a file: with ``JOURNEYS_SECRETS_DIR=/run/secrets``, the file
    ``/run/secrets/journeys_kafka_sasl_password`` holds ``JOURNEYS_KAFKA_SASL_PASSWORD`` (surrounding
    whitespace stripped; an environment variable of the same name wins over the file).
    """

    model_config = SettingsConfigDict(
        env_prefix="JOURNEYS_", env_nested_delimiter="__", extra="ignore"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then files in ``$JOURNEYS_SECRETS_DIR`` (if set)."""
        secrets_dir = os.environ.get(SECRETS_DIR_ENV)
        if secrets_dir:
            if not Path(secrets_dir).expanduser().is_dir():
                raise ConfigurationError(f"{SECRETS_DIR_ENV}={secrets_dir} is not a directory")
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port].")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects: SASL_* authenticate with "
        "JOURNEYS_KAFKA_SASL_USERNAME/_PASSWORD, SSL and SASL_SSL use TLS (JOURNEYS_KAFKA_SSL_*).",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (with a SASL_* protocol)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name (required with a SASL_* protocol).")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password (required with a SASL_* protocol); never logged. Also read from the "
        "file journeys_kafka_sasl_password in JOURNEYS_SECRETS_DIR.",
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="PEM file of the CA(s) that signed the brokers' certificates (SSL, SASL_SSL); "
        "default: the system's trusted CAs.",
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="PEM client certificate (chain) for mutual TLS; needs JOURNEYS_KAFKA_SSL_KEYFILE."
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="PEM private key of JOURNEYS_KAFKA_SSL_CERTFILE (unencrypted; may be the same file)."
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host (or IP) it is reached at."
    )
    clickhouse_url: SecretStr | None = Field(
        None,
        description="chdb:///abs/path (embedded, default: <data_dir>/store, with a tenant prefix "
        "<data_dir>/<tenant>/store) or http(s)://user:password@host:8123/database for a ClickHouse server "
        "(with a tenant prefix the database is <tenant>_<database> unless it already starts with that).",
    )
    reader_clickhouse_url: SecretStr | None = Field(
        None,
        description="A read-only ClickHouse user for the API, the web UI and the analyst CLI "
        "(http(s)://reader:password@host:8123/database; its role: `journeys db grants`). Default: the "
        "main URL; either way every analyst query runs with readonly=2.",
    )
    data_dir: Path = Field(Path(".journeys"), description="Local state: Faust tables and the embedded store "
                           "(with JOURNEYS_TOPIC_PREFIX, in its tenant's subdirectory <data_dir>/<tenant>).")
    app_id: str = Field(
        "journeys", description="Faust application id: the consumer group and the prefix of the state "
        "(changelog) topics. JOURNEYS_TOPIC_PREFIX is prepended unless the id already starts with it."
    )
    topic_prefix: str = Field(
        "", pattern=r"^[A-Za-z0-9._-]*$",
        description="The tenant: prepended to every topic name and to the application id (consumer group, "
        "state topics); the tenant's name (the prefix without trailing '-', '_', '.') also names its local "
        "state directory, its ClickHouse database on a server and the `tenant` label of every metric. "
        "Empty: no tenant, today's names.",
    )
    topic_partitions: int = Field(4, ge=1, description="Partitions for topics the tracker creates.")
    topic_replicas: int = Field(1, ge=1, description="Replication factor for topics the tracker creates.")
    roles: str = Field(
        "stream,store",
        description="Roles this process runs: 'stream' (validate, stitch, journeys) and/or "
        "'store' (ClickHouse sink + query API). With chDB only one process may hold 'store'.",
    )
    worker_processes: int = Field(
        0, ge=0, le=2,
        description="Processes one `journeys worker` runs when it holds both roles: 2 puts the stream role in a "
        "child process (its own core; the parent keeps the store role, the port and the API, and serves the "
        "child's /metrics and health with its own), 1 runs both in one process, 0 (auto) is 2 on a machine "
        "with 2 or more CPUs. A process given one role by JOURNEYS_ROLES is always one process.",
    )
    web_port: int = Field(6066, description="Port of the worker's web server (query API, health); "
                          "also `journeys serve`'s default port (`--port`).")
    web_host: str = Field(
        "127.0.0.1", description="Bind address of the worker's web server (and `journeys serve`'s default "
        "`--host`). Anything but loopback needs JOURNEYS_API_TOKEN (at least 16 characters, not a placeholder): "
        "the worker and `journeys serve` refuse to start without it.",
    )
    web_open_without_token: bool = Field(
        False, description="Serve the worker's web server on a non-loopback JOURNEYS_WEB_HOST without "
        "JOURNEYS_API_TOKEN anyway (only behind a proxy that authenticates); the worker logs a warning at start.",
    )
    api_url: str = Field(
        "http://127.0.0.1:6066", description="Where the CLI finds a running store process (and where `journeys serve` "
        "looks for a process holding the embedded store before it opens it)."
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token required by the JSON API and the web UI's data calls when set "
        "(health and metrics stay open); the CLI sends it too."
    )
    api_query_seconds: float = Field(
        30.0, gt=0, description="Longest one query of the JSON API or web UI (and so the CLI with a worker up) may run on the store (then 503): "
        "with the embedded store reads run in a chDB session of their own (they never hold the writer's lock), "
        "so this bounds the CPU and time one read takes from the worker.",
    )
    api_query_memory_mb: int = Field(
        2048, ge=16, description="Most memory one query of the JSON API or web UI may use (then 503), MB.",
    )
    api_query_rows: int = Field(
        1_000_000, ge=100_000, description="Most rows one query of the JSON API or web UI may answer (then 503, "
        "never an answer cut short); at least the largest `limit` parameter (100000).",
    )
    max_future_seconds: int = Field(
        300, ge=0, description="Events stamped further than this in the future are rejected."
    )
    max_event_depth: int = Field(
        MAX_DEPTH, ge=4, le=128, description="Deepest accepted nesting of one event (collector items and "
        "inbound records); a deeper one is dead-lettered with the path where it goes too deep."
    )
    sink_batch_size: int = Field(5000, ge=1, description="Largest ClickHouse insert block.")
    sink_flush_seconds: float = Field(
        1.0, gt=0, description="Longest wait before a partial block is written, and the shortest interval between two refreshes of the events' resolution (the timeline's, identity links' and overrides' sinks end their blocks as the next refresh may start).")
    stream_batch_size: int = Field(
        1000, ge=1, description="Most records a stream stage handles as one batch (state read and written "
        "once per key, outputs sent together).")
    stream_batch_seconds: float = Field(
        0.02, gt=0, description="Longest a stream stage waits to fill a batch while it keeps up: added latency "
        "per stage when traffic is light.")
    stream_batch_seconds_behind: float = Field(
        0.25, gt=0, description="Longest a stream stage waits to fill a batch while it is behind (the newest "
        "record queued had waited longer than this when the batch began): bigger batches, less work per event, when "
        "throughput matters more than latency (docs/benchmarks.md).")
    pack_records: bool = Field(
        False, description="The stream stages send the records of their internal hops (receipts, events, persons, "
        "timeline, identity links) in packs: a batch's records for one partition as one Kafka record "
        "(streams/packs.py; far fewer records for the broker and the reading stages). Off by default: measured at "
        "700 events/s it made event → queryable p99 worse (docs/benchmarks.md, twenty-eighth session). Every "
        "worker reads packs either way; turn it on only once no worker of an earlier version reads those topics.")
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
    definitions_reload_seconds: float = Field(
        10.0, ge=0, description="How often every worker process re-reads the definitions file: a valid change with "
        "a new `version` applies without a restart (from its `activated_at`); an invalid one is logged and "
        "ignored. 0: read once at start."
    )
    dedupe_days: float = Field(
        7.0, ge=0, description="How long the dedupe stage remembers an event id: a re-send of an id within this "
        "time is dropped (the first receipt wins); after it, a re-send counts as a new receipt (the store still "
        "shows one row per id). One small RocksDB entry per id. 0 turns the stage off (~20% more throughput "
        "in make bench): a re-send of an id then reaches the store (one row per account and id) and, when it "
        "names another account, that account's journey and timeline too.",
    )
    alert_tick_seconds: float = Field(
        10.0, gt=0, description="How often timer alert rules (missed handoff, stalled deal) are checked."
    )
    alert_idle_seconds: float = Field(
        5.0, gt=0, description="While events flow, timer rules use the newest event time; after this idle "
        "time, the wall clock (so a replay of old data raises no timer alerts for the past).",
    )
    alert_webhooks: list[str] = Field(
        default_factory=list, description="Extra webhook URLs for alerts (JSON list), besides the definitions file's: "
        "each gets every alert.",
    )
    alert_delivery_attempts: int = Field(
        5, ge=1, le=100, description="POSTs of one alert to one webhook at most; after the last failure (or a "
        "final refusal, a 4xx other than 408/425/429) the delivery is recorded failed and the next alerts go on. "
        "A webhook whose last delivery failed gets one attempt per alert until it answers again.",
    )
    alert_delivery_backoff_seconds: float = Field(
        1.0, ge=0, description="Wait after a webhook's first failed attempt; doubled after each further one.",
    )
    alert_delivery_max_backoff_seconds: float = Field(
        30.0, ge=0, description="Longest wait between two attempts (also caps a receiver's Retry-After).",
    )
    alert_delivery_timeout_seconds: float = Field(
        10.0, gt=0, description="Time limit of one POST to a webhook.",
    )
    public_url: str = Field(
        "http://127.0.0.1:6066", description="Base URL of the web UI, for links in alerts."
    )
    table_store: str = Field("rocksdb://", description="Faust table store: rocksdb:// (default) or memory://.")
    table_write_buffer_mb: float = Field(
        1.0, gt=0, description="RocksDB write buffer (memtable) per table partition, two at most; all of them "
        "together are capped by table_memory_mb.",
    )
    table_memory_mb: float = Field(
        64.0, gt=0, description="RocksDB memory of all tables in one process: one block cache that memtables "
        "(up to half of it) are charged to, shared by every table partition (journeys_table_memory_bytes).",
    )
    malloc_arena_max: int = Field(
        2, ge=0, description="glibc malloc arenas of a worker process (mallopt at start; 0: glibc's default, "
        "8 x cores). Fewer arenas keep freed memory from piling up in per-thread arenas.",
    )
    malloc_mmap_threshold_kb: int = Field(
        16, ge=0, description="glibc serves each allocation of this many KiB or more with its own mmap and "
        "returns it when freed (mallopt at start; 0: glibc's default, 128 KiB rising with use). Keeps big "
        "transient buffers (JSON parsing, Kafka reads) from fragmenting the heap as journeys grow.",
    )
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
    pii: PiiSettings = Field(default_factory=PiiSettings, description="Personal data (JOURNEYS_PII__*).")
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings, description="Retention of raw data in the store (JOURNEYS_RETENTION__*).")
    collector: CollectorSettings = Field(
        default_factory=CollectorSettings, description="The HTTP collector (JOURNEYS_COLLECTOR__*)."
    )
    sql: SqlSettings = Field(
        default_factory=SqlSettings, description="The analysts' SQL endpoint (JOURNEYS_SQL__*)."
    )

    @property
    def effective_app_id(self) -> str:
        """The application id Kafka sees (consumer group, changelog topics): namespaced by
        ``topic_prefix``, so two tenants with different prefixes never share state, whatever
        their ``app_id``. An id that already starts with the prefix is kept as it is."""
        if not self.topic_prefix or self.app_id.startswith(self.topic_prefix):
            return self.app_id
        return self.topic_prefix + self.app_id

    @property
    def tenant(self) -> str:
        """The tenant's name: ``topic_prefix`` without trailing separators (``acme-`` -> ``acme``);
        empty without a prefix. It names the local state directory, the server database and the
        ``tenant`` label of every metric."""
        return self.topic_prefix.rstrip("-_.") or self.topic_prefix

    @property
    def state_dir(self) -> Path:
        """This tenant's local state (Faust tables, the default embedded store): ``data_dir``
        itself without a prefix, ``data_dir/<tenant>`` with one."""
        return self.data_dir / self.tenant if self.tenant else self.data_dir

    def tenant_url(self, url: str) -> str:
        """``url`` namespaced by the tenant: a server URL's database becomes ``<tenant>_<database>``
        (``-`` and ``.`` as ``_``; ``default`` when the URL names none), unless it already starts
        with ``<tenant>_``. Embedded (``chdb://``) paths are kept as given: one path, one store."""
        if not self.tenant or url.startswith("chdb:"):
            return url
        parts = urlsplit(url)
        prefix = re.sub(r"[^A-Za-z0-9_]", "_", self.tenant) + "_"
        database = parts.path.strip("/") or "default"
        if not database.startswith(prefix):
            database = prefix + database
        return urlunsplit(parts._replace(path="/" + database))

    @property
    def server_database(self) -> str:
        """The tenant's database on a ClickHouse server: the one of ``JOURNEYS_CLICKHOUSE_URL`` (a
        server URL), else ``default`` — either namespaced by the tenant (:meth:`tenant_url`)."""
        url = self.store_url if self.clickhouse_url is not None and not self.store_url.startswith("chdb:") \
            else self.tenant_url("http://localhost/default")
        return urlsplit(url).path.strip("/") or "default"

    def legacy_store_problem(self) -> str | None:
        """Before the tenant had its own state directory, a prefixed tracker kept its embedded
        store in ``data_dir/store``: refuse to start on a fresh tenant store next to it (the events
        would seem gone), saying what to move."""
        if not self.tenant or self.clickhouse_url is not None:
            return None
        old, new = self.data_dir / "store", self.state_dir / "store"
        if old.is_dir() and not new.exists():
            return (f"JOURNEYS_TOPIC_PREFIX={self.topic_prefix} keeps its embedded store in {new}, but a store is in "
                    f"{old} (the layout before tenants had their own directory): if it is this tenant's, move it "
                    f"there (mv {old} {new}); if it is not, create {new} (mkdir -p) to start the tenant's own")
        return None

    @model_validator(mode="after")
    def _kafka_security_is_consistent(self) -> "Settings":
        """Refuse combinations that would fail at connect time or silently skip TLS/authentication.

        Raises :class:`ConfigurationError` itself (not ``ValueError``): pydantic would quote the
        whole input, the SASL password included, in its error message.
        """
        protocol = self.kafka_security_protocol
        sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
        problems = []
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            problems.append(f"JOURNEYS_KAFKA_SECURITY_PROTOCOL={protocol} needs JOURNEYS_KAFKA_SASL_USERNAME and "
                            "JOURNEYS_KAFKA_SASL_PASSWORD (or the file journeys_kafka_sasl_password in "
                            "JOURNEYS_SECRETS_DIR)")
        if not sasl and (self.kafka_sasl_username or self.kafka_sasl_password):
            problems.append(f"JOURNEYS_KAFKA_SASL_USERNAME/_PASSWORD are set but JOURNEYS_KAFKA_SECURITY_PROTOCOL="
                            f"{protocol} does not authenticate: use SASL_PLAINTEXT or SASL_SSL")
        ssl_files = {"JOURNEYS_KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
                     "JOURNEYS_KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
                     "JOURNEYS_KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile}
        if not tls and any(ssl_files.values()):
            given = ", ".join(name for name, value in ssl_files.items() if value)
            problems.append(f"{given} set but JOURNEYS_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS: "
                            "use SSL or SASL_SSL")
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            problems.append("JOURNEYS_KAFKA_SSL_CERTFILE and JOURNEYS_KAFKA_SSL_KEYFILE go together (mutual TLS); "
                            "for one PEM holding both, set both to that file")
        if problems:
            raise ConfigurationError("; ".join(problems))
        return self

    @property
    def store_url(self) -> str:
        if self.clickhouse_url is not None:
            return self.tenant_url(self.clickhouse_url.get_secret_value())
        return f"chdb://{(self.state_dir / 'store').resolve()}"

    @property
    def reader_url(self) -> str | None:
        return self.tenant_url(self.reader_clickhouse_url.get_secret_value()) if self.reader_clickhouse_url else None

    def has_role(self, role: str) -> bool:
        return role in {r.strip() for r in self.roles.split(",")}
