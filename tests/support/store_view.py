"""What the store keeps of the journey stage's outputs, read from an in-memory runner's topics —
for tests that compare stage histories without a store."""

from __future__ import annotations

from typing import Any

from schemas.journey import JourneyUpdate


def stage_changes(runner: Any) -> list[tuple[str, str, str, str]]:
    """The valid stage changes ``(account, at, from, to)`` as the store keeps them: the newest
    record per change id by version, retractions dropping the change."""
    changes: dict[str, tuple[int, tuple]] = {}
    for record in runner.records(runner.names.journey_updates):
        update = JourneyUpdate.model_validate_json(record.value)
        for gone in update.retracted_changes:
            if gone not in changes or changes[gone][0] <= update.version:
                changes[gone] = (update.version, ())
        for c in update.stage_changes:
            if c.change_id not in changes or changes[c.change_id][0] <= update.version:
                changes[c.change_id] = (update.version, (c.account_id, c.at.isoformat(), c.from_stage, c.to_stage))
    return [change for _, change in changes.values() if change]
