"""Import presets: ``journeys import --preset NAME FILE`` for CRM exports as they come.

One preset per export object; see :mod:`.core` for the shape, :mod:`.salesforce` and
:mod:`.hubspot` for the column lists and value maps, docs/ingestion.md for the user's view.
"""

from __future__ import annotations

from streams.cli.presets import hubspot, salesforce
from streams.cli.presets.core import Cells, Context, Preset, Unmappable

PRESETS: dict[str, Preset] = {p.name: p for p in (*salesforce.PRESETS, *hubspot.PRESETS)}


def get(name: str) -> Preset:
    """The preset called ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None


__all__ = ["PRESETS", "Cells", "Context", "Preset", "Unmappable", "get"]
