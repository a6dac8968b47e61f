"""The ``journeys`` console script: Faust's command line (``journeys worker``) plus ours."""

from __future__ import annotations

import sys

from faust.cli.faust import cli

from streams.cli import doctor
from streams.cli import (
    analytics_commands, commands, identity_commands, ingest_commands, privacy_commands, sql_commands,
)


def main() -> None:
    from streams.app import create_app
    from streams.settings import Settings

    settings = Settings()
    worker = len(sys.argv) > 1 and sys.argv[1] == "worker"
    if worker:
        from streams.malloc import limit_arenas, set_mmap_threshold

        limit_arenas(settings.malloc_arena_max)  # before create_app starts threads (fence, chDB)
        set_mmap_threshold(settings.malloc_mmap_threshold_kb)
    for command in (commands.ALL + ingest_commands.ALL + identity_commands.ALL + analytics_commands.ALL
                    + sql_commands.ALL + privacy_commands.ALL):
        cli.add_command(command)
    commands.dlq.add_command(ingest_commands.dlq_replay)
    cli.add_command(doctor.doctor)
    app = create_app(settings)
    if worker:
        from streams.admin import ensure_topics

        ensure_topics(settings)
    app.main()
