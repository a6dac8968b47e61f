"""Our commands on the ``journeys`` command line (Faust provides ``worker`` and friends)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
from rich.progress import Progress

from streams import topics as t
from streams.cli import client
from streams.cli.output import FORMATS, emit
from streams.settings import Settings


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_root().app.journeys_settings  # type: ignore[attr-defined]


format_option = click.option(
    "--format", "fmt", type=FORMATS, default="table", show_default=True, help="Output format."
)


@click.command()
@click.argument("account_id")
@format_option
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Most events to show (a page).")
@click.option("--after", default=None, metavar="CURSOR",
              help="Show the events after this cursor (the next page; the previous page names it).")
@click.pass_context
def timeline(ctx: click.Context, account_id: str, fmt: str, limit: int, after: str | None) -> None:
    """Show ACCOUNT_ID's journey: every touch, in event-time order, each event once.

    A page holds --limit events; when there are more, the command ends by saying (on stderr)
    the --after CURSOR that shows the next page."""
    if not account_id.strip():
        raise click.BadParameter("must not be empty", param_hint="ACCOUNT_ID")
    try:
        records, after_last = client.timeline_page(settings_of(ctx), account_id, limit, after)
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("after "), param_hint="--after") from exc
    if not records and fmt == "table":
        click.echo(f"No events for account {account_id!r}. Try `journeys accounts`.", err=True)
    emit(records, fmt, title=f"Journey of {account_id}",
         columns=["event_time", "side", "channel", "event_type", "name", "contact_id", "rep_role", "event_id"]
         if fmt == "table" else None)
    if after_last is not None:
        click.echo(f"More events: journeys timeline {shlex.quote(account_id)} --limit {limit} "
                   f"--after {shlex.quote(after_last)}", err=True)


@click.command()
@format_option
@click.pass_context
def accounts(ctx: click.Context, fmt: str) -> None:
    """List accounts with their event counts and last activity."""
    emit(client.accounts(settings_of(ctx)), fmt, title="Accounts")


@click.group()
def dlq() -> None:
    """Dead letters: rejected inputs with their reasons."""


@dlq.command("list")
@format_option
@click.pass_context
def dlq_list(ctx: click.Context, fmt: str) -> None:
    """Show the latest dead letters and why they were rejected."""
    emit(client.dead_letters(settings_of(ctx)), fmt, title="Dead letters")


@click.group()
def db() -> None:
    """ClickHouse schema: migrations and status."""


cluster_option = click.option(
    "--cluster", default=None, metavar="NAME",
    help="ClickHouse cluster (remote_servers name): Replicated*/Distributed DDL run ON CLUSTER NAME.")


@db.command("migrate")
@cluster_option
@click.pass_context
def db_migrate(ctx: click.Context, cluster: str | None) -> None:
    """Apply missing schema migrations (idempotent; the store process also runs this at start)."""
    from sinks.clickhouse import cluster as cluster_ddl, ddl
    from sinks.clickhouse.client import Store, is_embedded

    url = settings_of(ctx).store_url
    if cluster and is_embedded(url):
        raise click.UsageError("--cluster needs a ClickHouse server: set JOURNEYS_CLICKHOUSE_URL=http(s)://…")
    store = Store(url)
    ran = cluster_ddl.migrate(store, cluster) if cluster else ddl.migrate(store)
    click.echo(f"applied {[m.version for m in ran]}" if ran else f"up to date (version {ddl.LATEST})")


@db.command("ddl")
@cluster_option
def db_ddl(cluster: str | None) -> None:
    """Print every migration as SQL (single node, or the ON CLUSTER variant with --cluster)."""
    from sinks.clickhouse import cluster as cluster_ddl

    click.echo(cluster_ddl.script(cluster), nl=False)


@db.command("status")
@cluster_option
@click.pass_context
def db_status(ctx: click.Context, cluster: str | None) -> None:
    """Show applied and pending schema migrations."""
    from sinks.clickhouse import cluster as cluster_ddl, ddl
    from sinks.clickhouse.client import Store

    store = Store(settings_of(ctx).store_url)
    done = set(cluster_ddl.applied(store, cluster) if cluster else ddl.applied(store))
    for m in ddl.MIGRATIONS:
        click.echo(f"{m.version:>4}  {'applied' if m.version in done else 'PENDING'}  {m.name}")


@db.command("grants")
@click.option("--database", default=None, help="Database of the tracker's tables [default: the one of "
              "JOURNEYS_CLICKHOUSE_URL, namespaced by the tenant prefix; else default, or <tenant>_default].")
@click.option("--role", default="journeys_reader", show_default=True, help="Role to create.")
@click.option("--user", "users", multiple=True, metavar="NAME", help="Existing user(s) to give the role.")
def db_grants(database: str | None, role: str, users: tuple[str, ...]) -> None:
    """Print the SQL of the read-only analyst role for a ClickHouse server: SELECT on every tracker
    table and view, dead-letter payloads (PII) excluded. Run it as an admin; then point
    JOURNEYS_READER_CLICKHOUSE_URL at a user holding the role."""
    from sinks.clickhouse import grants

    if database is None:
        database = Settings().server_database
    try:
        statements = grants.reader_statements(database, role, users)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(";\n".join(statements) + ";")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", default=t.INBOUND.name, show_default=True, help="Topic (before JOURNEYS_TOPIC_PREFIX).")
@click.pass_context
def replay(ctx: click.Context, file: Path, topic: str) -> None:
    """Produce every line of an NDJSON FILE, as is, to the inbound topic (bad lines included)."""
    from streams.cli.replaying import produce_lines

    settings = settings_of(ctx)
    lines = [line for line in file.read_bytes().splitlines() if line.strip()]
    with Progress(transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"replaying {file.name}", total=len(lines))
        sent = produce_lines(settings, settings.topic_prefix + topic, lines,
                             on_sent=lambda n: progress.update(task, advance=n))
    click.echo(f"produced {sent} events to {settings.topic_prefix + topic}")


@click.command()
@click.option("--keep-running", is_flag=True, help="Leave the worker running after the replay.")
@click.option("--account", default="acme-corp", show_default=True, help="Account whose journey to print.")
@click.pass_context
def demo(ctx: click.Context, keep_running: bool, account: str) -> None:
    """Run the tracker on the embedded store, replay the bundled sample, print a journey."""
    from streams.cli.demo import run_demo

    sys.exit(run_demo(settings_of(ctx), keep_running=keep_running, account=account))


@click.command()
@click.option("--host", default=None, metavar="HOST", help="Bind address [default: JOURNEYS_WEB_HOST].")
@click.option("--port", default=None, type=click.IntRange(0, 65535), metavar="PORT",
              help="Port [default: JOURNEYS_WEB_PORT].")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the JSON API and the web UI without a stream worker, read-only (for analysts'
    machines): against JOURNEYS_CLICKHOUSE_URL (JOURNEYS_READER_CLICKHOUSE_URL if set), or the
    embedded store when no worker holds it. Beyond loopback JOURNEYS_API_TOKEN is required."""
    from schemas.errors import ConfigurationError
    from sinks.clickhouse.client import is_embedded
    from streams.exposure import web_exposure
    from streams.web import serve as serving

    settings = settings_of(ctx)
    host = settings.web_host if host is None else host
    port = settings.web_port if port is None else port
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    exposure = web_exposure(host, port, token, settings.web_open_without_token)
    if exposure.error:
        raise ConfigurationError(f"journeys serve refuses to start: {exposure.error}")
    if exposure.warning:
        click.echo(exposure.warning, err=True)
    if is_embedded(settings.store_url) and serving.held_by_other(settings):
        raise click.ClickException(
            f"the embedded store {settings.store_url.removeprefix('chdb://')} is held by the tracker answering at "
            f"{settings.api_url} (only one process may open it): use that process's /ui/ and /api/, stop it, "
            "or point JOURNEYS_CLICKHOUSE_URL at a ClickHouse server")
    handle = serving.ReaderHandle(settings)
    try:
        handle.open()
    except ConfigurationError as exc:
        handle.close()
        if not is_embedded(settings.store_url):
            raise
        raise click.ClickException(
            f"cannot open the embedded store {settings.store_url.removeprefix('chdb://')}: another process may hold "
            f"it (a worker or `journeys serve` not answering at JOURNEYS_API_URL={settings.api_url}): {exc}") from exc
    click.echo(f"journeys serve: read-only API and UI on http://{host}:{port}/ui/ (Ctrl-C stops)", err=True)
    try:
        serving.run(settings, handle, host, port)
    except OSError as exc:
        raise click.ClickException(f"journeys serve cannot listen on {host}:{port}: {exc}") from exc


ALL = [timeline, accounts, dlq, db, replay, demo, serve]
