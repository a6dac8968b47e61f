"""``journeys identity``: show an identifier's links over time; undo a merge or re-apply it,
with who and why."""

from __future__ import annotations

import getpass
from datetime import datetime, timezone

import click

from schemas.identity import IdentityOverride
from streams import topics as t
from streams.cli import client
from streams.cli.commands import format_option, settings_of
from streams.cli.output import emit
from streams.producer import send_one
from streams.rules import pii
from streams.steps.journey import merge_tick, reresolve_tick

KINDS = click.Choice(["device", "person_account", "person_alias", "account_merge"])


@click.group()
def identity() -> None:
    """Identity links: show them (show), undo one (unmerge) or re-apply an undone one (merge)."""


def _send(ctx: click.Context, action: str, kind: str, src: str, dst: str, reason: str, by: str) -> None:
    settings = settings_of(ctx)
    key = settings.pii.key()
    if key:  # the store holds pseudonyms: an address typed here names the same person
        src, dst = pii.scrub(src, key), pii.scrub(dst, key)
    override = IdentityOverride(action=action, kind=kind, src=src, dst=dst, reason=reason, by=by,
                                at=datetime.now(timezone.utc))
    if kind == "account_merge":  # the stream's journeys follow (the domain journey's facts leave or rejoin)
        send_one(settings, t.JOURNEY_TICKS, src.encode(), merge_tick(src, action, dst))
    send_one(settings, t.IDENTITY_OVERRIDES, override.override_id.encode(), override.to_bytes())
    if kind == "person_account":  # the person's events leave this account's journey (or rejoin it)
        for account in _accounts_of(settings, src, dst):
            send_one(settings, t.JOURNEY_TICKS, account.encode(),
                     reresolve_tick(account, action, [kind, src, dst, action]))
    click.echo(f"{action} recorded: {kind} {src} → {dst} (by {by}: {reason})")


def _accounts_of(settings, person: str, account: str) -> list[str]:
    """``account`` and the person's other accounts (their person → account links): the journeys
    a change of one of its links moves the person's events between. Without a store to ask,
    ``account`` alone."""
    try:
        rows = client.report(settings, "identity", {"id": person})
    except Exception:  # noqa: BLE001 - the journey of the account named still follows
        rows = []
    others = {str(r["dst"]) for r in rows if r.get("kind") == "person_account" and r.get("src") == person}
    return [account] + sorted(others - {account})


_options = [
    click.option("--kind", type=KINDS, required=True, help="Link kind, e.g. account_merge for domain → CRM account."),
    click.option("--src", required=True, help="Source id (device, person or domain account)."),
    click.option("--dst", required=True, help="Destination id (person or account)."),
    click.option("--reason", required=True, help="Why: kept with the override for the audit trail."),
    click.option("--by", default=getpass.getuser, show_default="current user", help="Who decided."),
]


def _with_options(fn):
    for option in reversed(_options):
        fn = option(fn)
    return fn


@identity.command("unmerge")
@_with_options
@click.pass_context
def unmerge(ctx: click.Context, kind: str, src: str, dst: str, reason: str, by: str) -> None:
    """Undo one link: the reports and timelines resolve without it; for an account merge, the
    merged journey's facts also leave the target's journey, and for a person → account link
    the journeys of the person's accounts are rebuilt from the events the store now resolves to
    them (stages and scores follow; the stage history says ``identity unmerge``).
    Stored events are untouched."""
    _send(ctx, "unmerge", kind, src, dst, reason, by)


@identity.command("merge")
@_with_options
@click.pass_context
def merge(ctx: click.Context, kind: str, src: str, dst: str, reason: str, by: str) -> None:
    """Re-apply a link the stream made and an earlier unmerge removed (the newest decision wins).

    It cannot create a link the stream never made."""
    _send(ctx, "merge", kind, src, dst, reason, by)


@identity.command("show")
@click.argument("identifier")
@format_option
@click.pass_context
def show(ctx: click.Context, identifier: str, fmt: str) -> None:
    """IDENTIFIER's links over time (a device, person, email or account id): devices → persons,
    aliases, persons → accounts with the interval of each (job changes), domain → CRM account
    merges, and any manual override with who, why and when."""
    settings = settings_of(ctx)
    key = settings.pii.key()
    if key and "@" in identifier:  # the store holds pseudonyms
        identifier = pii.scrub(identifier, key)
    try:
        rows = client.report(settings, "identity", {"id": identifier})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if not rows and fmt == "table":
        click.echo(f"no links name {identifier}", err=True)
    emit(rows, fmt, title=f"Links of {identifier}")


@identity.command("pseudonym")
@click.argument("emails", nargs=-1, required=True)
@click.pass_context
def pseudonym(ctx: click.Context, emails: tuple[str, ...]) -> None:
    """Print how each EMAIL is stored (its HMAC pseudonym when JOURNEYS_PII__EMAIL_HMAC_KEY is set)."""
    key = settings_of(ctx).pii.key()
    for email in emails:
        if not pii.is_email(email):
            raise click.BadParameter(f"{email!r} is not an email address", param_hint="EMAILS")
        click.echo(pii.pseudonymize_email(email, key) if key else email.strip().lower())


ALL = [identity]
