"""The cross-team questions on the command line: same reports as the API (streams/reports.py)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from schemas.alerts import ALERT_RULES
from schemas.errors import ConfigurationError
from sinks.clickhouse import attribution
from streams.cli import client
from streams.cli.commands import format_option, settings_of
from streams.cli.output import emit


def _report(ctx: click.Context, name: str, fmt: str, title: str, **params: str) -> None:
    try:
        rows = client.report(settings_of(ctx), name, {k: v for k, v in params.items() if v})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if not rows and fmt == "table":
        click.echo(f"{title}: no data yet.", err=True)
    emit(rows, fmt, title=title)


@click.command()
@click.option("--by", type=click.Choice(["source", "persona", "segment", "period"]), default="source", show_default=True)
@click.option("--mode", type=click.Choice(["any", "strict"]), default="any", show_default=True,
              help="strict: count a stage only when reached after all earlier ones, in order.")
@format_option
@click.pass_context
def funnel(ctx: click.Context, by: str, mode: str, fmt: str) -> None:
    """Accounts reaching each funnel stage, by source, persona, segment or period."""
    _report(ctx, "funnel", fmt, f"Funnel by {by} ({mode} order)", by=by, mode=mode)


@click.command()
@format_option
@click.pass_context
def acceptance(ctx: click.Context, fmt: str) -> None:
    """MQL acceptance rate by sales, and rejection reasons, by lead source."""
    _report(ctx, "acceptance", fmt, "MQL acceptance by source")


@click.command()
@click.option("--by", type=click.Choice(["rep", "team"]), default="rep", show_default=True)
@format_option
@click.pass_context
def handoff(ctx: click.Context, by: str, fmt: str) -> None:
    """MQL → first 1:1 sales touch latency and SLA compliance, by rep or team."""
    _report(ctx, "handoff", fmt, f"Handoff latency by {by}", by=by)


@click.command("stage-durations")
@format_option
@click.pass_context
def stage_durations(ctx: click.Context, fmt: str) -> None:
    """Time accounts spend in each stage before moving on (average, median, max hours)."""
    _report(ctx, "stage-durations", fmt, "Time in stage")


@click.command("time-share")
@format_option
@click.pass_context
def time_share(ctx: click.Context, fmt: str) -> None:
    """Share of each stage spent in digital self-service vs 1:1 conversations."""
    _report(ctx, "time-share", fmt, "Digital vs 1:1 by stage")


@click.command()
@click.option("--limit", default=20, show_default=True)
@format_option
@click.pass_context
def paths(ctx: click.Context, limit: int, fmt: str) -> None:
    """The most common channel paths of won vs lost deals."""
    _report(ctx, "paths", fmt, "Channel paths of won and lost deals", limit=str(limit))


@click.command("attribution")
@click.option("--model", default="w_shaped", show_default=True,
              help=f"{', '.join(attribution.MODELS)}, or a model of the definitions file's attribution.models.")
@click.option("--split", type=click.Choice(attribution.SPLITS), default="channel", show_default=True,
              help="team: the marketing vs sales split of the credit; role: marketing vs each rep role (SDR, AE).")
@format_option
@click.pass_context
def attribution_cmd(ctx: click.Context, model: str, split: str, fmt: str) -> None:
    """Multi-touch attribution of won revenue (every won deal, per currency), sales touches included."""
    _report(ctx, "attribution", fmt, f"Attribution ({model}) by {split}", model=model, split=split)


@click.command()
@click.argument("account_id")
@format_option
@click.pass_context
def stages(ctx: click.Context, account_id: str, fmt: str) -> None:
    """ACCOUNT_ID's stage changes: when, which rule, which definitions version."""
    _report(ctx, "stages", fmt, f"Stage changes of {account_id}", account=account_id)


@click.command("alerts")
@click.option("--account", default="", help="Only this account's alerts.")
@click.option("--rule", type=click.Choice([""] + list(ALERT_RULES)), default="")
@click.option("--failed", is_flag=True, help="Only alerts some webhook did not take (retries used up or refused).")
@click.option("--limit", default=200, show_default=True)
@format_option
@click.pass_context
def alerts_cmd(ctx: click.Context, account: str, rule: str, failed: bool, limit: int, fmt: str) -> None:
    """The alerts feed: channel bounces, missed handoffs, rejected leads, stalled deals, committee gaps.

    DELIVERY says how the webhook deliveries ended: delivered, failed (retries used up or refused
    for good; DELIVERY_ERRORS names each receiver and why), failed N of M, or empty (no webhook
    receives it, or not delivered yet)."""
    params = {"account": account, "rule": rule, "failed": "1" if failed else "", "limit": str(limit)}
    rows = client.report(settings_of(ctx), "alerts", {k: v for k, v in params.items() if v})
    if fmt == "table":
        rows = [{k: r.get(k, "") for k in ("at", "rule", "account_id", "owner", "summary", "delivery",
                                            "delivery_errors")} for r in rows]
    emit(rows, fmt, title="Alerts")


@click.group()
def definitions() -> None:
    """The shared definitions file: check it, compare versions."""


@definitions.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def definitions_check(file: Path) -> None:
    """Validate FILE; print every problem as `path: message` and exit 1 if any."""
    from schemas.definitions import load

    try:
        defs = load(file)
    except ConfigurationError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"{file}: ok (version {defs.version}, {len(defs.stages)} stages, activated {defs.activated_at:%Y-%m-%d})")


@definitions.command("backfill")
@click.option("--version", "version_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Definitions file of the version to recompute with.")
@click.option("--from", "start", type=click.DateTime(), required=True, help="Period start (UTC).")
@click.option("--to", "end", type=click.DateTime(), required=True, help="Period end (UTC).")
@click.option("--no-save", is_flag=True, help="Only print the comparison; do not keep it for the UI.")
@format_option
@click.pass_context
def definitions_backfill(ctx: click.Context, version_file: Path, start: datetime, end: datetime, no_save: bool,
                         fmt: str) -> None:
    """Recompute stages for a period under another version; compare with what was recorded (kept
    in the store's definitions_comparisons table: the UI's funnel page shows the latest runs)."""
    from streams.cli.backfill import run_backfill

    rows = run_backfill(settings_of(ctx), version_file, start.replace(tzinfo=timezone.utc),
                        end.replace(tzinfo=timezone.utc), save=not no_save)
    emit(rows, fmt, title=f"Stage entries {start:%Y-%m-%d}..{end:%Y-%m-%d}: recorded vs {version_file.name}")


@click.command("contacts")
@click.argument("account_id")
@click.option("--at", "as_of", default="", help="Decay the scores to this ISO 8601 time instead of now.")
@format_option
@click.pass_context
def contacts(ctx: click.Context, account_id: str, as_of: str, fmt: str) -> None:
    """ACCOUNT_ID's contacts with their own engagement score now, persona and title (the
    contacts of accounts merged into it included), most engaged first."""
    _report(ctx, "contacts", fmt, f"Contacts of {account_id}", account=account_id, at=as_of)


ALL = [alerts_cmd, contacts, stage_durations, funnel, acceptance, handoff, time_share, paths, attribution_cmd, stages, definitions]
