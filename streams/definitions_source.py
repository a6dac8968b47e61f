"""The definitions a process runs with, reloaded when their file changes (no restart).

A timer in every worker process calls :meth:`DefinitionsSource.poll`: when the file's contents
change, the new text is validated (an invalid file is refused with its problems logged; the
running version stays), and it must carry a new ``version`` (the version is what every stage
change records; changed rules under the same version would make two meanings of one name). A
version whose ``activated_at`` is still in the future is held until then: *a version applies from
its activated_at*. Listeners (the journey step, the store's channel map, …) are told each switch.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from schemas.definitions import DEFAULT_PATH, Definitions, check
from schemas.errors import ConfigurationError
from streams import metrics

log = logging.getLogger(__name__)


class DefinitionsSource:
    def __init__(self, path: Path | None = None, *, now: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path or DEFAULT_PATH)
        self._now = now or (lambda: datetime.now(timezone.utc))
        text = self._read()
        self.current: Definitions = check(text, str(self.path))
        self._digest = _digest(text)
        self.pending: Definitions | None = None
        self._listeners: list[Callable[[Definitions], None]] = []
        if self.current.activated_at > self._now():
            log.warning("definitions %s: version %s is activated at %s, in the future; used from now on, as there "
                        "is no earlier version to keep", self.path, self.current.version, self.current.activated_at)

    def _read(self) -> str:
        try:
            return self.path.read_text()
        except OSError as exc:
            raise ConfigurationError(f"cannot read definitions file {self.path}: {exc}") from exc

    def subscribe(self, listener: Callable[[Definitions], None]) -> None:
        self._listeners.append(listener)

    def poll(self) -> Definitions | None:
        """Re-read the file; switch to a new valid version (now, or at its ``activated_at``).
        Return the definitions switched to, or None."""
        try:
            text = self._read()
        except ConfigurationError as exc:
            log.error("%s; keeping version %s", exc, self.current.version)
            metrics.DEFINITIONS_RELOADS.labels("unreadable").inc()
            return self._activate_due()
        digest = _digest(text)
        if digest != self._digest:
            self._digest = digest
            self._consider(text)
        return self._activate_due()

    def _consider(self, text: str) -> None:
        try:
            new = check(text, str(self.path))
        except ConfigurationError as exc:
            log.error("definitions changed but are invalid, keeping version %s:\n%s", self.current.version, exc)
            metrics.DEFINITIONS_RELOADS.labels("invalid").inc()
            return
        known = {self.current.version} | ({self.pending.version} if self.pending else set())
        if new.version in known:
            if new != self.current and new != self.pending:
                log.error("definitions %s changed without a new version (still %r): ignored — give the change a "
                          "new `version` so stage changes say which rules made them", self.path, new.version)
                metrics.DEFINITIONS_RELOADS.labels("same_version").inc()
            return
        self.pending = new
        if new.activated_at > self._now():
            log.warning("definitions version %s loaded; it applies from %s (version %s until then)",
                        new.version, new.activated_at.isoformat(), self.current.version)
            metrics.DEFINITIONS_RELOADS.labels("scheduled").inc()

    def _activate_due(self) -> Definitions | None:
        if self.pending is None or self.pending.activated_at > self._now():
            return None
        old, self.current, self.pending = self.current, self.pending, None
        log.warning("definitions: version %s → %s (%s)", old.version, self.current.version, self.path)
        metrics.DEFINITIONS_RELOADS.labels("applied").inc()
        for listener in self._listeners:
            listener(self.current)
        return self.current


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
