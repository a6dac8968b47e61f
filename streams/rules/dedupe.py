"""First receipt wins: which receipts of an event id go on down the pipeline (bug B4).

Analysts have always seen the first receipt of an id (the timeline's version is derived from
``receivedAt``). The journey stage is keyed by account, so before this stage a re-send naming
another account counted in that account's journey too. The dedupe stage, keyed by event id,
passes on only the first receipt: a later one (seconds or days apart, same or other payload) is
dropped there, and nothing downstream — identity, journey, store — ever sees it.

A *receipt* is one inbound record (``topic/partition@offset``). The same record read again after
a crash is not a re-send: it goes on again, so an effect lost in the crash is redone
(the downstream stages are idempotent).
"""

from __future__ import annotations

from typing import Any, Optional


def new_receipt(ref: str, now_ms: int) -> dict[str, Any]:
    """The state kept per event id: which inbound record was its first receipt, and when."""
    return {"ref": ref, "at": now_ms}


def passes(state: Optional[dict[str, Any]], ref: str) -> bool:
    """Does this receipt go on? The first one does, and so does that same record read again."""
    return state is None or state.get("ref") == ref


def expired(state: Optional[dict[str, Any]], cutoff_ms: int) -> bool:
    """Was this id first received before ``cutoff_ms``? Then it is forgotten (``JOURNEYS_DEDUPE_DAYS``)."""
    return state is not None and int(state.get("at", 0)) < cutoff_ms
