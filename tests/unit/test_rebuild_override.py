"""A re-resolving journey rebuild (``journeys identity unmerge|merge --kind person_account``)
is answered only once the store has the override: answered before, the store would resolve
the account without it and the journey would not change."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from streams.agents import rebuilds


def test_the_store_waits_for_the_override_before_it_answers() -> None:
    answers = [[], [("merge",)], [("unmerge",)]]  # not stored yet, an older decision, then this one
    asked: list[dict] = []

    def query(sql: str, params: dict) -> tuple[list[str], list[tuple]]:
        asked.append(params)
        return ["action"], answers.pop(0)

    handle = SimpleNamespace(get=lambda: SimpleNamespace(query=query))
    override = rebuilds.override_of(b'{"account": "a", "id": "r", "override": ["person_account", "p", "a", "unmerge"]}')
    assert override == ["person_account", "p", "a", "unmerge"]
    asyncio.run(asyncio.wait_for(rebuilds.overridden(handle, override, "r"), timeout=10))  # type: ignore[arg-type]
    assert not answers and asked[-1] == {"k": "person_account", "s": "p", "d": "a"}


def test_a_request_without_an_override_does_not_wait() -> None:
    assert rebuilds.override_of(b'{"account": "a", "id": "r"}') is None
    assert rebuilds.override_of(b'{"account": "a", "id": "r", "override": 5}') is None
    asyncio.run(asyncio.wait_for(rebuilds.overridden(None, None, "r"), timeout=1))  # type: ignore[arg-type]
