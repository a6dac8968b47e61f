"""A stand-in for ``faust.App`` that only records the function an ``@app.agent`` decorator
registers, so a unit test can drive one agent's loop with a stream of its own.

Used where the test is about what an agent does with one odd record (dead-lettering, retries);
the real agents on a real worker are covered by tests/integration and tests/faults.
"""

from __future__ import annotations

from typing import Any, Callable


class AgentCapture:
    """``register(app, ...)`` calls ``app.agent(topic, name=...)(fn)``; ``fn`` is kept in ``.fn``."""

    fn: Callable[..., Any]

    def agent(self, topic: Any, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.fn = fn
            return fn
        return register
