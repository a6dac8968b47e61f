"""The ``journeys`` console script: Faust's command line (``journeys worker``) plus ours."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from faust.cli.faust import cli

from streams.cli import doctor
from streams.cli import (
    analytics_commands, commands, identity_commands, ingest_commands, privacy_commands, sql_commands,
)
from streams.exposure import Exposure, web_exposure


def main() -> None:
    """The console script; a configuration error ends it with its message and status 78
    (``EX_CONFIG``), not a traceback."""
    from schemas.errors import ConfigurationError
    from streams.exposure import EXIT_CONFIG

    try:
        _main()
    except ConfigurationError as exc:
        sys.stderr.write(f"journeys: configuration error: {exc}\n")
        sys.exit(EXIT_CONFIG)


def worker_exposure(settings: Any) -> Exposure:
    """Whether this worker may serve its web server as configured (:mod:`streams.exposure`)."""
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    return web_exposure(settings.web_host, settings.web_port, token, settings.web_open_without_token)


def _main() -> None:
    from schemas.errors import ConfigurationError
    from streams.app import create_app
    from streams.settings import Settings

    settings = Settings()
    worker = len(sys.argv) > 1 and sys.argv[1] == "worker"
    child = None
    if worker:
        from streams import processes
        from streams.malloc import limit_arenas, set_mmap_threshold

        if processes.count(settings) == 2:  # the stream role in a child process, this one the store's
            child = processes.plan(sys.argv, os.environ)
            settings = settings.model_copy(update={"roles": "store"})

        exposure = worker_exposure(settings)
        if exposure.error:
            raise ConfigurationError(f"the worker refuses to start: {exposure.error}")
        limit_arenas(settings.malloc_arena_max)  # before create_app starts threads (fence, chDB)
        set_mmap_threshold(settings.malloc_mmap_threshold_kb)
    for command in (commands.ALL + ingest_commands.ALL + identity_commands.ALL + analytics_commands.ALL
                    + sql_commands.ALL + privacy_commands.ALL):
        cli.add_command(command)
    commands.dlq.add_command(ingest_commands.dlq_replay)
    cli.add_command(doctor.doctor)
    app = create_app(settings, stream_child=child)
    if worker:
        from streams import gc_tuning
        from streams.admin import ensure_topics

        gc_tuning.tune()  # batches' objects die young; the app's long-lived ones are not walked again

        if exposure.warning:
            warning = exposure.warning

            @app.task
            async def warn_open_web() -> None:  # in the worker's log, once its logging is set up
                logging.getLogger("streams.exposure").warning(warning)

        ensure_topics(settings)
        if child is not None:
            from streams.admin import adopt_store_offsets

            adopted = adopt_store_offsets(settings, {name for agent in app.agents.values()
                                                     for name in agent.channel.topics})
            if adopted:
                said = (f"the store role now commits as {settings.effective_app_id}-store: it starts from "
                        f"{settings.effective_app_id}'s offsets ({sum(adopted.values())} partitions)")

                @app.task
                async def say_adopted() -> None:  # in the worker's log, once its logging is set up
                    logging.getLogger("streams.admin").info(said)

            processes.attach(app, processes.start(child))
    app.main()
