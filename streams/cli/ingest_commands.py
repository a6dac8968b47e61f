"""Ingestion commands: ``collector``, ``schema export``, ``import`` and ``dlq replay``."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from streams import topics as t
from streams.cli.commands import format_option, settings_of
from streams.cli.output import emit, printable
from streams.cli.presets import PRESETS as _PRESETS

if TYPE_CHECKING:
    from streams.cli.importing import PresetReport, Summary
    from streams.cli.presets import Context
    from streams.settings import Settings

PRESET_NAMES = tuple(_PRESETS)

EXIT_REJECTED = 1
EXIT_KAFKA = 3


@click.command()
@click.option("--host", default=None, help="Bind address [env JOURNEYS_COLLECTOR__HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env JOURNEYS_COLLECTOR__PORT; default 8088].")
@click.pass_context
def collector(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the HTTP collector (Segment HTTP Tracking API + /v1/crm) in front of Kafka.

    Write keys: JOURNEYS_COLLECTOR__WRITE_KEYS='{"<key>": "<source name>"}', or per key
    {"source": …, "allow": ["segment"|"crm"], "origins": [...]}: scope browser keys to segment.
    """
    import logging

    from streams.collector.app import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    serve(settings_of(ctx), host=host, port=port)


@click.group()
def schema() -> None:
    """The event contract as JSON Schema (schemas/jsonschema/)."""


@schema.command("export")
@click.option("--check", is_flag=True, help="Exit 1 if the files in --out differ from the models.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory [default: schemas/jsonschema in the package].")
def schema_export(check: bool, out: Path | None) -> None:
    """Write (or with --check, verify) the JSON Schema files generated from the models."""
    from schemas import export

    out = out or export.SCHEMA_DIR
    if check:
        diffs = export.differences(out)
        for diff in diffs:
            click.echo(diff, err=True)
        if diffs:
            raise click.ClickException(f"{len(diffs)} schema file(s) in {out} differ from the models; "
                                       "run `journeys schema export` and commit the result")
        click.echo(f"{out}: up to date")
        return
    for path in export.write(out):
        click.echo(f"wrote {path}")


def _preset_names() -> list[str]:
    from streams.cli.presets import PRESETS

    return sorted(PRESETS)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "ndjson"]), default=None,
              help="File format [default: from the extension: .csv, .ndjson/.jsonl].")
@click.option("--type", "event_type", default=None, help="Event type for CSV rows without a 'type' column.")
@click.option("--preset", default=None, type=click.Choice(sorted(PRESET_NAMES)), metavar="NAME",
              help="Read FILE as a CRM export of this kind (see docs/ingestion.md): "
                   + ", ".join(sorted(PRESET_NAMES)) + ".")
@click.option("--currency", default=None, metavar="ISO",
              help="With --preset: the currency of amounts when the export has no currency column.")
@click.pass_context
def import_file(ctx: click.Context, file: Path, fmt: str | None, event_type: str | None, preset: str | None,
                currency: str | None) -> None:
    """Validate and produce the events of a CSV or NDJSON FILE; bad rows go to the dead letters.

    With --preset, FILE is a Salesforce Data Loader or HubSpot export as exported; owners get
    their rep role from the definitions file's `reps:` map (JOURNEYS_DEFINITIONS).

    Exit status: 0 every row accepted; 1 some rows rejected (dead-lettered, see the summary);
    2 usage error (a preset's required column missing); 3 Kafka failed (re-running is safe:
    events and dead letters are deduplicated by id).
    """
    from schemas.definitions import load
    from schemas.errors import ConfigurationError
    from streams.admin import ensure_topics
    from streams.cli.importing import KafkaError, MissingColumns, PresetReport, infer_format, run_import
    from streams.cli.presets import Context, get

    try:
        fmt = fmt or ("csv" if preset else infer_format(file))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if preset and fmt != "csv":
        raise click.UsageError("--preset reads CSV exports; drop --format ndjson")
    settings = settings_of(ctx)
    chosen, context, report = None, None, None
    if preset:  # owners' rep roles and value maps: only a preset needs the definitions file
        try:
            definitions = load(settings.definitions)
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from exc
        chosen = get(preset)
        context = Context(reps=definitions.reps, values=definitions.crm_values, currency=currency)
        report = PresetReport(preset)
    from streams import gc_tuning

    # the collector's thresholds as the worker's: it took 12% of a 100,000-event import's CPU
    with gc_tuning.fewer_collections(), Progress(console=Console(stderr=True),
                                                 transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
        try:
            ensure_topics(settings)
            summary = run_import(settings, file, fmt, event_type=event_type, preset=chosen, ctx=context,
                                 report=report, on_progress=lambda n: progress.update(task, advance=n))
        except MissingColumns as exc:
            raise click.UsageError(str(exc)) from exc
        except KafkaError as exc:
            click.echo(f"Kafka failed: {exc}; nothing is guaranteed stored, re-run the import", err=True)
            sys.exit(EXIT_KAFKA)
        progress.update(task, completed=file.stat().st_size)
    _print_summary(settings, file, summary, preset, report, context)
    sys.exit(EXIT_REJECTED if summary.rejected else 0)


def _print_summary(settings: Settings, file: Path, summary: Summary, preset: str | None,
                   report: PresetReport | None, context: Context | None) -> None:
    dlq_topic = t.name(t.INBOUND_DLQ, settings.topic_prefix)
    title = f"Import of {file.name}" + (f" (preset {preset})" if preset else "")
    table = Table(title=title, caption=f"dead letters: topic {dlq_topic}; see `journeys dlq list`"
                  if summary.rejected else None)
    table.add_column("result")
    table.add_column("count", justify="right")
    table.add_row("accepted" + (" (events)" if preset else ""), str(summary.accepted))
    table.add_row("rejected (dead-lettered)", str(summary.rejected))
    for reason, count in summary.reasons.most_common(5):
        table.add_row(_inert(f"  {reason}"), str(count))
    if report is not None and context is not None:
        _preset_rows(table, report, context)
    Console(width=200).print(table)


def _inert(text: str) -> Text:
    """A cell with text from the file (reasons name its keys and values, owners are its cells):
    Rich markup shown, not applied; control characters such as ESC shown as ``\\x1b``."""
    return Text(printable(text))


def _preset_rows(table: Table, report: PresetReport, context: Context) -> None:
    table.add_row("rows skipped (no buyer touch)", str(report.skipped))
    table.add_row("unmapped columns (not read)", str(len(report.unmapped)))
    if report.unmapped:
        table.add_row(_inert(f"  {', '.join(report.unmapped)}"[:190]), "")
    table.add_row(f"owners not in reps: (role {context.reps.default_role})", str(len(context.unknown_owners)))
    for owner, rows in context.unknown_owners.most_common(10):
        table.add_row(_inert(f"  {owner}"), str(rows))
    if context.dropped_amounts:
        table.add_row("amounts dropped (no currency; pass --currency)", str(context.dropped_amounts))


@click.command("replay")
@click.option("--source-kind", default=None, help="Only letters from this source kind (kafka, collector, import).")
@click.option("--since", default=None, help="Only letters rejected since: ISO-8601 time or a look-back (90m, 2h, 7d).")
@click.option("--reason-contains", default=None, help="Only letters with a reason containing this (case-insensitive).")
@click.option("--id", "ids", multiple=True, help="Only this dead-letter id (repeatable).")
@click.option("--dry-run", is_flag=True, help="List what would be re-submitted; produce nothing.")
@format_option
@click.pass_context
def dlq_replay(ctx: click.Context, source_kind: str | None, since: str | None, reason_contains: str | None,
               ids: tuple[str, ...], dry_run: bool, fmt: str) -> None:
    """Re-submit dead letters' original bytes to the inbound topic (after a fix).

    Reads the dead-letter topic from the beginning; each re-submitted event carries the header
    journeys.replay_of=<dlq id>. Still-invalid events are dead-lettered again.
    """
    from streams.cli import dlq_replay as r

    settings = settings_of(ctx)
    try:
        since_at = r.parse_since(since, datetime.now(timezone.utc)) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    letters = r.selected(r.read_letters(settings), source_kind=source_kind, since=since_at,
                         reason_contains=reason_contains, ids=ids)
    if dry_run:
        listed = list(letters)  # a listing: printed whole anyway
        emit([x.as_record() for x in listed], fmt, title="Dead letters that would be replayed",
             columns=["dlq_id", "rejected_at", "source_kind", "source", "reasons", "bytes"] if fmt == "table" else None)
        click.echo(f"dry run: {len(listed)} dead letter(s) would be replayed", err=True)
        return
    kinds: dict[str, int] = {}

    def sent_one(letter: r.DeadLetter) -> None:
        kinds[letter.source_kind] = kinds.get(letter.source_kind, 0) + 1
        progress.update(task, advance=1)

    # streamed: the letters are replayed while the topic is read, so the total is not known up front
    with Progress(console=Console(stderr=True), transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task("replaying dead letters", total=None)
        sent = r.replay(settings, letters, on_sent=sent_one)
    click.echo(f"replayed {sent} dead letter(s) to the inbound topic "
               f"({', '.join(f'{k}: {n}' for k, n in sorted(kinds.items())) or 'none matched'})")


ALL = [collector, schema, import_file]
"""Top-level commands; ``dlq_replay`` joins the ``dlq`` group of :mod:`streams.cli.commands`."""
