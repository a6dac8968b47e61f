"""Import presets (the shared part): one CRM export object (as its export tool names the columns) → our events.

A preset is data plus a pure row function: the columns it reads (each with the spellings an
export may use), which of them are required, and ``build(row, ctx) → [event, ...]``. Nothing
here touches Kafka or the clock; :mod:`streams.cli.importing` reads the file and produces.

* Header names match without regard to case, surrounding space or a UTF-8 byte-order mark
  (Data Loader and HubSpot both write ``.csv`` files that spreadsheet tools re-save with one).
* A row the preset cannot map raises :class:`Unmappable` with the column and the reason; the
  importer dead-letters it like any invalid row. A row that is no buyer touch at all (a to-do
  task, a history row of a field we do not track) returns no event and is counted as skipped.
* Owners become rep roles through the definitions file's ``reps:`` map; an owner missing from
  it gets ``reps.default_role`` and is reported (:attr:`Context.unknown_owners`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from schemas.definitions import CrmValues, Reps


class Unmappable(ValueError):
    """This row cannot become an event: ``column`` names the culprit (or ``$``)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass
class Context:
    """What a preset needs besides the row: rep roles, value maps, a default currency."""

    reps: Reps = field(default_factory=Reps)
    values: CrmValues = field(default_factory=CrmValues)
    currency: str | None = None
    unknown_owners: Counter[str] = field(default_factory=Counter)
    dropped_amounts: int = 0

    def role(self, owner: str) -> str:
        role = self.reps.owners.get(owner)
        if role is None:
            self.unknown_owners[owner] += 1
            return self.reps.default_role
        return role


class Cells:
    """One row, read by the preset's canonical column names."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def get(self, column: str) -> str:
        return (self._values.get(column) or "").strip()

    def need(self, column: str) -> str:
        value = self.get(column)
        if not value:
            raise Unmappable(column, "is empty")
        return value


Build = Callable[[Cells, Context], list[dict[str, Any]]]


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    columns: Mapping[str, tuple[str, ...]]
    """Canonical column name → other accepted spellings (HubSpot: label and internal name)."""
    required: tuple[str, ...]
    build: Build

    def resolve(self, header: list[str]) -> tuple[dict[int, str], list[str], list[str]]:
        """(header position → canonical column, required columns missing, unmapped header names)."""
        wanted = {normal(c): c for c in self.columns}
        for column, spellings in self.columns.items():
            wanted.update({normal(s): column for s in spellings})
        positions: dict[int, str] = {}
        unmapped = []
        for i, name in enumerate(header):
            found = wanted.get(normal(name))
            if found is None or found in positions.values():
                unmapped.append(name)
            else:
                positions[i] = found
        missing = [c for c in self.required if c not in positions.values()]
        return positions, missing, unmapped


def normal(name: str) -> str:
    return name.replace("\ufeff", "").strip().lower()


# -- value parsing shared by the presets -------------------------------------------------------


def when(value: str, column: str) -> str:
    """An export's date or date-time → ISO-8601 UTC. A date is midnight UTC; a time without an
    offset is read as UTC (Data Loader exports UTC; convert a local-time export first)."""
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
    except ValueError as exc:
        raise Unmappable(column, f"{text!r} is not a date or date-time (ISO-8601 expected)") from exc
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def truthy(value: str) -> bool:
    return value.strip().lower() in {"true", "1", "yes", "y"}


def ids(value: str) -> list[str]:
    """A list cell (HubSpot writes associated record ids ``;``-separated)."""
    return [p.strip() for p in re.split(r"[;,]", value) if p.strip()]


def lookup(table: Mapping[str, str], overrides: Mapping[str, str], value: str) -> str | None:
    """``value`` through the configured overrides, then the preset's defaults (case-insensitive)."""
    key = value.strip().lower()
    for source in (overrides, table):
        for label, mapped in source.items():
            if label.strip().lower() == key:
                return mapped
    return None


def amount(event: dict[str, Any], value: str, currency: str, ctx: Context) -> None:
    """Put ``amount``/``currency`` on an opportunity event; an amount with no currency anywhere
    (no currency column, no ``--currency``) is dropped and counted."""
    if not value:
        return
    code = currency or ctx.currency
    if not code:
        ctx.dropped_amounts += 1
        return
    event["amount"] = value.replace(",", "")
    event["currency"] = code.upper()
