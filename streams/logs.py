"""Structured JSON logs (opt-in: ``JOURNEYS_LOG_FORMAT=json``), with secrets and emails scrubbed.

One JSON object per line: ``ts``, ``level``, ``logger``, ``message`` and, when passed with
``extra=``, ``event_id`` / ``account_id``; ``exc`` holds a formatted traceback. Passwords in
URLs (``scheme://user:pass@host``) and email addresses never reach the output.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any

import orjson

EXTRA_FIELDS = ("event_id", "account_id")
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+@")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@(?P<domain>[A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def scrub(text: str) -> str:
    """``http://u:secret@h`` → ``http://u:***@h``; ``jane@acme.com`` → ``***@acme.com``."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _EMAIL.sub(r"***@\g<domain>", text)


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = scrub(str(value))
        if record.exc_info:
            doc["exc"] = scrub(self.formatException(record.exc_info))
        return orjson.dumps(doc).decode()


def logging_config() -> dict[str, Any]:
    """A ``dictConfig`` merged into the Faust worker's own (its ``default`` handler becomes JSON)."""
    return {
        "version": 1,
        "merge": True,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stdout"}},
    }


def install(app: Any, log_format: str) -> None:
    """With ``json``: JSON on the root logger now, and in the worker once Faust sets logging up."""
    if log_format != "json":
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if app is not None:
        app.conf.logging_config = logging_config()
