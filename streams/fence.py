"""Stop a worker that was frozen past its consumer-group session before it writes anything.

A worker stopped (SIGSTOP, a paused VM, a swap storm) for longer than the Kafka session
timeout has lost its partitions: another worker owns them and has restored their state. When it
resumes, its agents still hold records fetched before the freeze and would process them from
the stale state — stage changes and alerts the owner never makes (bug B6, docs/faults.md; the
fault suite saw a committee-gap alert raised twice). Faust has no fencing without transactions.

The fence: a thread notes the time every 0.25 s. A stream agent calls :meth:`Fence.check`
before it handles a record; if the process was frozen longer than the session timeout (the
thread could not run either), the worker exits at once with code 75 (EX_TEMPFAIL), before any
write. Its records were not committed by it, so the owner processes them; a supervisor restarts
the worker, which rejoins the group cleanly (crash-only, like a kill -9, which the suite covers).
A merely busy event loop does not trip it: the thread keeps its own time (chDB releases the GIL).
"""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger(__name__)

EXIT_CODE = 75


class Fence:
    def __init__(self, session_timeout_s: float, interval_s: float = 0.25) -> None:
        self.limit = session_timeout_s
        self.interval = interval_s
        self.last = time.monotonic()
        self.frozen_for = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> "Fence":
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="journeys-fence", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while True:
            time.sleep(self.interval)
            now = time.monotonic()
            gap = now - self.last
            if gap > self.limit:
                self.frozen_for = gap  # set before ``last`` moves on: check() sees one or the other
            self.last = now

    def tripped(self) -> float:
        """Seconds the process was frozen beyond the session timeout's reach, or 0."""
        gap = time.monotonic() - self.last  # read ``last`` first (see _beat)
        return max(gap if gap > self.limit else 0.0, self.frozen_for)

    def check(self) -> None:
        frozen = self.tripped()
        if frozen:
            log.error("this worker was frozen for %.1fs, longer than its session timeout (%.1fs): its partitions "
                      "belong to another worker now. Exiting (code %d) before writing anything stale; restart it "
                      "to rejoin the group.", frozen, self.limit, EXIT_CODE)
            logging.shutdown()
            os._exit(EXIT_CODE)
