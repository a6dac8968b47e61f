"""``journeys doctor``: check the broker, topics, ClickHouse schema and definitions; say how to fix.

Prints one row per check (ok / WARN / FAIL / skip) with a hint; exits 1 if anything FAILed.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import urllib.error
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import click
from rich.console import Console
from rich.table import Table

from streams import topics as t
from streams.settings import Settings

OK, WARN, FAIL, SKIP = "ok", "WARN", "FAIL", "skip"
CO_PARTITIONED = (t.EVENTS, t.PERSONS, t.TIMELINE)
"""Keyed stages whose topics (and the Faust changelogs) must have the same partition count."""
RETENTION_SHOWN = (t.INBOUND, t.INBOUND_DLQ)


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str = ""
    hint: str = ""


def _duration(ms: str | None) -> str:
    if ms is None:
        return "?"
    value = int(ms)
    if value < 0:
        return "forever"
    days, hours = divmod(value / 3_600_000, 24)
    return f"{int(days)}d" if not hours else f"{value / 3_600_000:g}h"


# -- Kafka --------------------------------------------------------------------------------------
def _admin(settings: Settings, timeout: float) -> Any:
    from kafka.admin import KafkaAdminClient

    from streams.kafka_config import client_options

    ms = int(timeout * 1000)
    return KafkaAdminClient(**client_options(settings), client_id=f"{settings.effective_app_id}-doctor",
                            request_timeout_ms=ms, bootstrap_timeout_ms=ms)


def changelog_topics(app: Any, settings: Settings, existing: Iterable[str]) -> list[str]:
    """The Faust table changelogs this configuration declares, plus any others of this app id."""
    names = {table.changelog_topic_name for table in app.tables.values()} if app is not None else set()
    names |= {n for n in existing if n.startswith(f"{settings.effective_app_id}-") and n.endswith("-changelog")}
    return sorted(names)


def _topic_configs(admin: Any, names: list[str]) -> dict[str, dict[str, str]]:
    from kafka.admin import ConfigResource, ConfigResourceType

    if not names:
        return {}
    raw = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n, None) for n in names],
                                 config_filter="all")
    return {name: {k: v.get("value") for k, v in cfg.items()} for name, cfg in raw.get("topic", {}).items()}


_AUTH_FAILED = re.compile(r"(Authentication failed[^\n]*|Failed to authenticate[^\n]*)")
_TLS_FAILED = re.compile(r"(\[SSL[^\n]*|certificate verify failed[^\n]*)")
_LAST_FAILURE = re.compile(r"^Connection failed: ([^\n]*)")


class _ConnectFailures(logging.Handler):
    """Why kafka-python could not connect: it logs SASL/TLS failures, then raises only a bootstrap timeout.

    It retries a refused login until the deadline, so ``failed`` is set on the first SASL or TLS
    failure: the caller stops waiting then (a wrong password does not fix itself).
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.auth: list[str] = []
        self.tls: list[str] = []
        self.last: str = ""
        self.failed = threading.Event()
        self.abandoned = False  # a client still retrying in the background: keep its logs swallowed

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        failed = _LAST_FAILURE.search(text)
        if failed:  # e.g. "Connection failed: KafkaConnectionError: 111 ECONNREFUSED"
            self.last = failed.group(1)
        for pattern, found in ((_AUTH_FAILED, self.auth), (_TLS_FAILED, self.tls)):
            match = pattern.search(text)
            if match and match.group(1) not in found:
                found.append(match.group(1))
        if self.auth or self.tls:
            self.failed.set()


@contextmanager
def _connect_failures() -> Iterator[_ConnectFailures]:
    """Collect kafka-python's connection warnings and errors (not printed) while the block runs."""
    logger, handler = logging.getLogger("kafka"), _ConnectFailures()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield handler
    finally:
        if not handler.abandoned:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _connect(settings: Settings, timeout: float, failures: _ConnectFailures) -> tuple[Any, set[str]]:
    """An admin client and the topic names, or raise; returns early on a refused login or handshake."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            admin = _admin(settings, timeout)
            outcome["admin"] = admin
            outcome["topics"] = set(admin.list_topics())
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc
        finally:
            failures.failed.set()

    # kafka-python's own IO threads are daemons, so a client still retrying does not hold the exit
    threading.Thread(target=run, name="doctor-kafka", daemon=True).start()
    failures.failed.wait(timeout * 2 + 5)
    if "topics" in outcome:
        return outcome["admin"], outcome["topics"]
    if "admin" in outcome:
        outcome["admin"].close()
    failures.abandoned = "error" not in outcome
    raise outcome.get("error") or TimeoutError(f"no answer within {timeout:g}s")


def _unreachable(settings: Settings, exc: Exception, failures: _ConnectFailures) -> Check:
    bootstrap = settings.kafka_bootstrap
    if failures.auth:
        who = f"{settings.kafka_sasl_username!r} ({settings.kafka_sasl_mechanism})"
        return Check("broker reachable", FAIL, f"{bootstrap}: authentication failed for user {who}: "
                     f"{failures.auth[-1]}"[:300],
                     "check JOURNEYS_KAFKA_SASL_USERNAME and JOURNEYS_KAFKA_SASL_PASSWORD (or the file "
                     "journeys_kafka_sasl_password in JOURNEYS_SECRETS_DIR) and JOURNEYS_KAFKA_SASL_MECHANISM")
    if failures.tls:
        return Check("broker reachable", FAIL, f"{bootstrap}: TLS handshake failed: {failures.tls[-1]}"[:300],
                     "check JOURNEYS_KAFKA_SSL_CAFILE (the CA that signed the broker's certificate), the client "
                     "certificate/key (JOURNEYS_KAFKA_SSL_CERTFILE/_KEYFILE) and JOURNEYS_KAFKA_SECURITY_PROTOCOL")
    last = f" (last: {failures.last})" if failures.last else ""
    return Check("broker reachable", FAIL, f"{bootstrap}: {type(exc).__name__}: {exc}{last}"[:300],
                 "start the broker (dev: dev/kafka/kafka.sh start) or fix JOURNEYS_KAFKA_BOOTSTRAP "
                 "(and JOURNEYS_KAFKA_SECURITY_PROTOCOL: the listener's protocol)")


def kafka_checks(settings: Settings, app: Any, timeout: float) -> list[Check]:
    bootstrap = settings.kafka_bootstrap
    with _connect_failures() as failures:
        try:
            admin, existing = _connect(settings, timeout, failures)
        except Exception as exc:  # noqa: BLE001 - any failure: unreachable, say why
            return [_unreachable(settings, exc, failures), Check("topics", SKIP, "broker unreachable")]
    try:
        return [Check("broker reachable", OK, bootstrap)] + _topic_checks(settings, app, admin, existing)
    finally:
        admin.close()


def _topic_checks(settings: Settings, app: Any, admin: Any, existing: set[str]) -> list[Check]:
    prefix, want_p, want_r = settings.topic_prefix, settings.topic_partitions, settings.topic_replicas
    ours = {t.name(spec, prefix): spec for spec in t.ALL}
    changelogs = changelog_topics(app, settings, existing)
    checks: list[Check] = []
    for name in list(ours) + changelogs:
        if name not in existing:
            why = "a stream worker creates it at start" if name in changelogs else "`journeys worker` creates it"
            checks.append(Check(f"topic {name}", FAIL, "missing",
                                f"{why}, or create it with {want_p} partitions, replication {want_r}"))
    present = [n for n in list(ours) + changelogs if n in existing]
    described = {d["name"]: d for d in admin.describe_topics(present)} if present else {}
    configs = _topic_configs(admin, present)
    partitions = {n: len(d.get("partitions") or []) for n, d in described.items()}
    for name in present:
        parts = described.get(name, {}).get("partitions") or []
        replicas = min((len(p.get("replica_nodes") or []) for p in parts), default=0)
        in_sync = min((len(p.get("isr_nodes") or []) for p in parts), default=0)
        cfg = configs.get(name, {})
        problems, status = [], OK
        if partitions.get(name) != want_p:
            status = WARN
            problems.append(f"{partitions.get(name)} partitions, JOURNEYS_TOPIC_PARTITIONS={want_p}")
        if replicas < want_r:
            status = FAIL
            problems.append(f"replication {replicas} < JOURNEYS_TOPIC_REPLICAS={want_r}")
        elif in_sync < replicas:
            status = WARN if status == OK else status
            problems.append(f"under-replicated: {in_sync}/{replicas} in sync")
        compacted = name in changelogs or (name in ours and ours[name].compacted)
        if compacted and "compact" not in (cfg.get("cleanup.policy") or ""):
            status = FAIL
            problems.append(f"cleanup.policy={cfg.get('cleanup.policy')}, must be compact")
        detail = "; ".join(problems) or f"{partitions.get(name)} partitions, replication {replicas}"
        if name in ours and ours[name] in RETENTION_SHOWN:
            detail += (f"; retention {_duration(cfg.get('retention.ms'))}"
                       f" ({cfg.get('retention.ms')} ms, {cfg.get('retention.bytes')} bytes)")
        hint = {OK: "", WARN: "align JOURNEYS_TOPIC_PARTITIONS with the topic (adding partitions re-maps keys: "
                "only on an empty or drained topic); check broker health",
                FAIL: "raise replication with kafka-reassign-partitions / set cleanup.policy=compact "
                "(kafka-configs --alter), or recreate the topic"}[status]
        checks.append(Check(f"topic {name}", status, detail, hint))
    co = [t.name(s, prefix) for s in CO_PARTITIONED] + changelogs
    counts = {n: partitions[n] for n in co if n in partitions}
    if len(set(counts.values())) > 1:
        checks.append(Check("co-partitioning", FAIL, ", ".join(f"{n}={c}" for n, c in counts.items()),
                            "keyed stages and their changelogs need equal partition counts: recreate "
                            "the odd ones (or reset the app's state) with the same count"))
    elif counts:
        checks.append(Check("co-partitioning", OK, f"{len(counts)} topics with {next(iter(counts.values()))} partitions"))
    return checks


# -- ClickHouse ---------------------------------------------------------------------------------
def _schema_direct(url: str) -> dict[str, Any]:
    from sinks.clickhouse import ddl
    from sinks.clickhouse.client import Store

    store = Store(url)
    try:
        store.query("SELECT 1")
        _, rows = store.query("SELECT count() FROM system.tables WHERE database = currentDatabase() "
                              "AND name = 'schema_migrations'")
        done: list[int] = []
        if rows[0][0]:
            _, found = store.query("SELECT DISTINCT version FROM schema_migrations ORDER BY version")
            done = [int(r[0]) for r in found]
        return {"applied": done, "latest": ddl.LATEST}
    finally:
        store.close()


def clickhouse_checks(settings: Settings, timeout: float) -> list[Check]:
    from sinks.clickhouse.client import is_embedded, redact
    from streams.cli.client import api_get

    url = settings.store_url
    schema, via = None, redact(url)
    try:
        if is_embedded(url):
            schema = api_get(settings, "/api/v1/schema", timeout=timeout)
            via = f"worker API {settings.api_url}" if schema is not None else via
        if schema is None:
            schema = _schema_direct(url)
    except urllib.error.HTTPError as exc:
        return [Check("clickhouse reachable", WARN, f"{settings.api_url}/api/v1/schema: HTTP {exc.code}",
                      "upgrade/restart the worker holding the store (it predates /api/v1/schema)")]
    except Exception as exc:  # noqa: BLE001 - any failure: unreachable, say why
        return [Check("clickhouse reachable", FAIL, f"{via}: {type(exc).__name__}: {str(exc)[:200]}",
                      "check JOURNEYS_CLICKHOUSE_URL and the server; with chDB only one process may open "
                      "the data dir: point JOURNEYS_API_URL at the worker that holds it")]
    checks = [Check("clickhouse reachable", OK, via)]
    applied, latest = schema.get("applied", []), schema["latest"]
    current = max(applied, default=0)
    if current == latest:
        checks.append(Check("schema version", OK, f"{current} (latest)"))
    else:
        checks.append(Check("schema version", FAIL, f"{current}, latest is {latest}",
                            "run `journeys db migrate` (with --cluster NAME on a cluster); the store process "
                            "also migrates at start"))
    return checks


def worker_check(settings: Settings, timeout: float) -> Check:
    from streams.cli.client import api_get

    try:
        body = api_get(settings, "/health/ready", timeout=timeout)
    except urllib.error.HTTPError as exc:
        try:
            why = ", ".join(json.loads(exc.read()).get("not_ready", []))
        except ValueError:
            why = ""
        return Check("worker ready", WARN, f"{settings.api_url}: HTTP {exc.code} {why}".strip(),
                     "wait for the rebalance/recovery to finish; see the worker log (/health/ready)")
    if body is None:
        return Check("worker ready", WARN, f"no worker answers at {settings.api_url}",
                     "start one with `journeys worker`, or set JOURNEYS_API_URL")
    return Check("worker ready", OK, f"{settings.api_url}: {body.get('assigned_partitions')} partitions")


def definitions_check(settings: Settings) -> Check:
    try:
        from schemas import definitions
    except ImportError:
        return Check("definitions", SKIP, "skipped: no definitions file yet")
    path = getattr(settings, "definitions", None) or definitions.DEFAULT_PATH
    if not path.exists():
        if getattr(settings, "definitions", None):
            return Check("definitions", FAIL, f"{path}: no such file", "fix JOURNEYS_DEFINITIONS")
        return Check("definitions", SKIP, "skipped: no definitions file yet")
    try:
        loaded = definitions.load(path)
    except Exception as exc:  # noqa: BLE001 - ConfigurationError lists every problem
        return Check("definitions", FAIL, str(exc)[:500], "fix the file; the worker refuses to start with it")
    return Check("definitions", OK, f"{path} (version {getattr(loaded, 'version', '?')})")


# -- command ------------------------------------------------------------------------------------
def run_checks(settings: Settings, app: Any, timeout: float) -> list[Check]:
    for noisy in ("kafka", "clickhouse_connect", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    return (kafka_checks(settings, app, timeout) + clickhouse_checks(settings, timeout)
            + [worker_check(settings, timeout), definitions_check(settings)])


def render(checks: list[Check]) -> Table:
    table = Table(title="journeys doctor")
    for column in ("check", "status", "detail", "how to fix"):
        table.add_column(column, overflow="fold")
    for c in checks:
        style = {FAIL: "bold red", WARN: "yellow", OK: "green"}.get(c.status, "dim")
        table.add_row(c.name, f"[{style}]{c.status}[/]", c.detail, c.hint)
    return table


@click.command()
@click.option("--timeout", type=float, default=10.0, show_default=True, envvar="JOURNEYS_DOCTOR_TIMEOUT",
              show_envvar=True, help="Seconds to wait for the broker, ClickHouse and the worker API.")
@click.pass_context
def doctor(ctx: click.Context, timeout: float) -> None:
    """Check broker, topics, ClickHouse schema and definitions; exit 1 if anything FAILs."""
    from streams.cli.commands import settings_of

    app = ctx.find_root().app
    checks = run_checks(settings_of(ctx), app, timeout)
    Console(width=200).print(render(checks))
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL, SKIP)}
    click.echo(f"{counts[OK]} ok, {counts[WARN]} WARN, {counts[FAIL]} FAIL, {counts[SKIP]} skipped")
    sys.exit(1 if counts[FAIL] else 0)


ALL = [doctor]
