"""``journeys privacy``: forget a person (store rows and stream state, audited); list the audit."""

from __future__ import annotations

import getpass
import time
from datetime import datetime, timezone

import click
from rich.console import Console

from schemas.privacy import ForgetRequest
from streams import topics as t
from streams.cli import client
from streams.cli.commands import format_option, settings_of
from streams.cli.output import emit
from streams.producer import send_one
from streams.rules import pii
from streams.settings import Settings


@click.group()
def privacy() -> None:
    """Privacy operations: forget a person (forget), show what was forgotten (requests)."""


def stored_form(kind: str, value: str, key: bytes | None) -> str:
    """How the store holds ``value``: an address trimmed and lower-cased, pseudonymised with
    the email key (a user id that is an address too, as the ingest stage does)."""
    value = value.strip()
    if kind == "email":
        address = pii.address_of(value)  # ``Jane Doe <jane@acme.com>`` too
        if not address:
            raise click.BadParameter(f"{value!r} is not an email address", param_hint="--email")
        return pii.pseudonymize_email(address, key) if key else address
    if kind == "user_id" and value.endswith(">"):  # as the ingest stage stores it: the address
        value = pii.address_of(value) or value
    if kind == "user_id" and key and pii.is_email(value):
        return pii.pseudonymize_email(value, key)
    return value


def _request(email: str | None, user_id: str | None, anonymous_id: str | None) -> tuple[str, str]:
    given = [(k, v) for k, v in (("email", email), ("user_id", user_id), ("anonymous_id", anonymous_id)) if v]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --email, --user-id, --anonymous-id")
    return given[0]


def _wait(settings: Settings, request_id: str, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    console = Console(stderr=True)
    with console.status("waiting for the store process to forget (and the stream stages to be told)…"):
        while time.monotonic() < deadline:
            rows = client.privacy_requests(settings, request_id)
            if rows:
                return rows[0]
            time.sleep(1.0)
    return None


def _summary(row: dict) -> str:
    deleted = {k: v for k, v in row["rows_deleted"].items() if v}
    changed = {k: v for k, v in row["rows_pseudonymised"].items() if v}
    lines = [f"forgotten (request {row['request_id']}, completed {row['completed_at']}):"]
    lines.append("  rows deleted: " + (", ".join(f"{k} {v}" for k, v in sorted(deleted.items())) or "none"))
    lines.append("  rows kept without them: " + (", ".join(f"{k} {v}" for k, v in sorted(changed.items())) or "none"))
    lines.append("  stream state: dropped for their devices and person ids; removed from their accounts' journeys")
    return "\n".join(lines)


@privacy.command("forget")
@click.option("--email", default=None, help="The person's email address (pseudonymised here when "
              "JOURNEYS_PII__EMAIL_HMAC_KEY is set, as the store holds it).")
@click.option("--user-id", "user_id", default=None, help="The person's userId.")
@click.option("--anonymous-id", "anonymous_id", default=None,
              help="A device's anonymousId: the device and the person(s) it was identified as.")
@click.option("--by", default=getpass.getuser, show_default="current user", help="Who asked (kept in the audit).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the store process has done it.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait with --wait.")
@click.pass_context
def forget(ctx: click.Context, email: str | None, user_id: str | None, anonymous_id: str | None, by: str,
           wait: bool, timeout: float) -> None:
    """Forget one person: delete their events, identity links, contact scores and dead letters
    from the store, clear them from the account rows that stay (stage changes, score
    committees, alert summaries), drop their state in the stream stages, and record an audit
    row (a hash of the identifier, never the identifier). Runs in the store process: the
    request is written to the privacy topic and done in order, once. Kafka topics keep their
    copies until their retention.ms (docs/security.md, "Privacy operations")."""
    settings = settings_of(ctx)
    kind, value = _request(email, user_id, anonymous_id)
    request = ForgetRequest(kind=kind, identifier=stored_form(kind, value, settings.pii.key()),  # type: ignore[arg-type]
                            requested_by=by, requested_at=datetime.now(timezone.utc))
    send_one(settings, t.PRIVACY, request.request_id.encode(), request.to_bytes())
    click.echo(f"privacy request {request.request_id} sent: forget {kind} (sha256 {request.identifier_hash[:16]}…)")
    if not wait:
        click.echo(f"see it done with: journeys privacy requests --id {request.request_id}")
        return
    row = _wait(settings, request.request_id, timeout)
    if row is None:
        raise click.ClickException(f"not done after {timeout:g}s: is a store process running? The request stays on "
                                   f"the topic and is done when one runs (journeys privacy requests --id "
                                   f"{request.request_id})")
    click.echo(_summary(row))


@privacy.command("requests")
@click.option("--id", "request_id", default=None, help="One request.")
@format_option
@click.pass_context
def requests(ctx: click.Context, request_id: str | None, fmt: str) -> None:
    """The audit of privacy requests, newest first (who, when, what kind, rows per table)."""
    rows = client.privacy_requests(settings_of(ctx), request_id)
    emit(rows, fmt, title="Privacy requests")


ALL = [privacy]
