"""CRM export presets for ``journeys import --preset NAME``: each preset is data (the columns it
reads) plus a small pure mapping function from one export row to our events."""

from __future__ import annotations

from streams.cli.presets import hubspot, salesforce
from streams.cli.presets.common import Cells, Context, Preset, Unmappable

PRESETS: dict[str, Preset] = {p.name: p for p in (*salesforce.PRESETS, *hubspot.PRESETS)}

__all__ = ["PRESETS", "Cells", "Context", "Preset", "Unmappable"]
