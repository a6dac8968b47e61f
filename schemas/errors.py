"""The project's error tree: one root, and a branch per way things go wrong."""

from __future__ import annotations

from dataclasses import dataclass


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
