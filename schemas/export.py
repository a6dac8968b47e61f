"""The contract as versioned data: JSON Schema generated from the pydantic models.

``generate()`` is pure and deterministic (sorted keys, two-space indent, trailing newline), so
the checked-in files under ``schemas/jsonschema/`` can be compared byte for byte with what the
models produce now. A model change that alters the wire contract shows up as a diff in review;
a breaking change gets a new ``-v2`` file next to the old one.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable

import orjson
from pydantic import TypeAdapter

from schemas.events import InboundEvent
from schemas.timeline import TimelineEvent

SCHEMA_DIR = Path(__file__).resolve().parent / "jsonschema"
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "urn:buyer-journeys:schema:"


def _inbound() -> dict[str, Any]:
    schema = TypeAdapter(InboundEvent).json_schema(mode="validation")
    schema["title"] = "InboundEvent"
    schema["description"] = (
        "One inbound event (v1): a Segment Spec call (track, page, identify, group, alias; "
        "tolerant: unknown top-level fields are dropped) or a sales/CRM record (conversation, "
        "lead_status, opportunity; strict: unknown fields are rejected). Discriminated by `type`."
    )
    return schema


def _timeline() -> dict[str, Any]:
    schema = TimelineEvent.model_json_schema(mode="serialization")
    schema["description"] = (
        "One timeline entry (v1) as the tracker produces it on the timeline topic. Strict: "
        "consumers may rely on every field being present."
    )
    return schema


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "inbound-v1.json": _inbound,
    "timeline-v1.json": _timeline,
}
"""File name → builder. Add a ``-v2`` entry (keeping ``-v1``) when a contract breaks."""


def generate() -> dict[str, bytes]:
    """File name → the exact bytes that belong in ``schemas/jsonschema/``."""
    out = {}
    for filename, build in SCHEMAS.items():
        schema = {"$schema": DRAFT, "$id": ID_BASE + filename, **build()}
        out[filename] = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    return out


def write(out_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Write every generated schema into ``out_dir``; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, content in generate().items():
        path = out_dir / filename
        path.write_bytes(content)
        written.append(path)
    return written


def differences(out_dir: Path = SCHEMA_DIR, *, context_lines: int = 3, max_lines: int = 80) -> list[str]:
    """Unified diffs (checked-in → generated) for every file that differs or is missing."""
    diffs = []
    for filename, content in generate().items():
        path = out_dir / filename
        current = path.read_text() if path.exists() else ""
        wanted = content.decode()
        if current == wanted:
            continue
        lines = list(
            difflib.unified_diff(
                current.splitlines(keepends=True), wanted.splitlines(keepends=True),
                fromfile=f"{path} (checked in)", tofile=f"{path} (generated)", n=context_lines,
            )
        )  # fmt: skip
        if len(lines) > max_lines:
            lines = lines[:max_lines] + [f"... {len(lines) - max_lines} more diff lines\n"]
        diffs.append("".join(lines) if current else f"{path}: missing\n")
    return diffs
