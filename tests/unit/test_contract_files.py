"""The contract as data: checked-in JSON Schema matches the models; every example validates."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from schemas import export
from schemas.decode import validate
from schemas.events import EVENT_TYPES
from streams.collector.handling import Accepted, Limits, handle

EXAMPLES = sorted(export.EXAMPLES_DIR.glob("*.json"))
BATCHES = {"segment-batch.json": "batch", "crm-batch.json": "crm"}
LIMITS = Limits(max_future=timedelta(minutes=5))


def test_checked_in_schema_equals_the_generated_one() -> None:
    diffs = export.differences()
    assert not diffs, "run `journeys schema export`:\n" + "\n".join(diffs)


def test_every_event_type_has_an_example() -> None:
    names = {p.stem for p in EXAMPLES}
    assert set(EVENT_TYPES) <= names
    assert set(BATCHES) <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.name not in BATCHES], ids=lambda p: p.name)
def test_example_event_validates(path) -> None:
    event = validate(orjson.loads(path.read_bytes()))
    assert event.type == path.stem


@pytest.mark.parametrize("name", sorted(BATCHES))
def test_example_batch_is_accepted_by_the_collector(name: str) -> None:
    raw = (export.EXAMPLES_DIR / name).read_bytes()
    handled = handle(raw, BATCHES[name], received_at=_received(raw), limits=LIMITS)
    assert handled.items and all(isinstance(i, Accepted) for i in handled.items), handled.rejected


def _received(raw: bytes):
    from datetime import datetime

    sent = orjson.loads(raw).get("sentAt") or "2026-10-31T00:00:00Z"
    return datetime.fromisoformat(sent.replace("Z", "+00:00")) + timedelta(seconds=1)


def test_schema_files_are_valid_json_with_ids() -> None:
    for name in export.SCHEMAS:
        schema = orjson.loads((export.SCHEMA_DIR / name).read_bytes())
        assert schema["$id"].endswith(name) and schema["$schema"].startswith("https://json-schema.org/")
