"""The project's error tree: one root, and a branch per way things go wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


class JourneysError(Exception):
    """Root of every error this project raises on purpose."""


@dataclass(frozen=True)
class Reason:
    """One path-level reason an input was rejected, e.g. ``$.timestamp: not a datetime``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class InvalidEvent(JourneysError):
    """Input that can never be accepted as it is: don't retry, dead-letter it."""

    def __init__(self, reasons: list[Reason], *, stage: str = "validate", oversized: bool = False):
        self.reasons = reasons
        self.stage = stage
        self.oversized = oversized
        super().__init__("; ".join(str(r) for r in reasons))


class ConfigurationError(JourneysError):
    """A setting or definitions file is wrong; the process should not start."""


class SinkError(JourneysError):
    """A write that left the stream failed."""


class TransientSinkError(SinkError):
    """Retry it: the destination is down, overloaded or timed out."""


class TerminalSinkError(SinkError):
    """Retrying will not help (bad schema, bad credentials); an operator must act."""


class RecordFailed(InvalidEvent):
    """A stage raised while handling one record: the record is dead-lettered with the error as
    its reason (``stage`` names the stage) and the stage goes on with the next record."""


_EMAIL = re.compile(r"[^\s@<>\"'`(),;:\[\]{}]+@[^\s@<>\"'`(),;:\[\]{}]+")
"""Anything shaped like an address (``local@domain``): masked in logged error text."""
MASKED = "[email]"


class LoggedError(Exception):
    """Stands for an exception in a log record: its text is :func:`loggable`'s (paths and error
    types, no input values), its traceback the original's frames (code, never values)."""


def loggable(exc: BaseException, limit: int = 500) -> str:
    """``exc`` as a log line may show it: ``Type: reasons`` with the paths and error types of a
    pydantic ``ValidationError`` but never the input values it would quote (``str(exc)`` has
    ``input_value='jane@acme.com'``), and anything shaped like an email address masked in the
    text of any other exception (a ``KeyError('jane@acme.com')``)."""
    if isinstance(exc, ValidationError):
        found = exc.errors(include_url=False, include_input=False, include_context=False)
        parts = [f"{_path(e['loc'])}: {e['msg']} [{e['type']}]" for e in found]
        text = f"{len(found)} validation error(s): " + "; ".join(parts)
    else:
        text = str(exc)
    return _EMAIL.sub(MASKED, f"{type(exc).__name__}: {text}")[:limit]


def log_exc_info(exc: BaseException, limit: int = 500) -> tuple[type[LoggedError], LoggedError, Any]:
    """``exc_info`` for a log call that shows where ``exc`` was raised without its text:
    ``log.error(..., exc_info=log_exc_info(exc))`` (the chained causes are left out too)."""
    return LoggedError, LoggedError(loggable(exc, limit)), exc.__traceback__


def _path(loc: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
