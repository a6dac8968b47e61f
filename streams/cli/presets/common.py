"""What every CRM preset shares: the preset record, cell access, value parsing, owner roles.

Pure: no I/O, no clock. A mapping function takes one export row (``Cells``) and a ``Context`` and
returns the events it stands for, or raises ``Unmappable`` with the column and the reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping


class Unmappable(ValueError):
    """A row the preset cannot turn into events: dead-letter it with this column and reason."""

    def __init__(self, column: str, message: str):
        self.column, self.message = column, message
        super().__init__(f"{column}: {message}")


@dataclass
class Context:
    """What a mapping needs besides the row: owner → rep role, a default currency, and a tally
    of owners the ``reps:`` map does not know (they are imported with role ``other``)."""

    reps: Mapping[str, str] = field(default_factory=dict)
    currency: str | None = None
    unknown_owners: Counter[str] = field(default_factory=Counter)

    def role(self, owner: str) -> str:
        role = self.reps.get(owner)
        if role is None:
            self.unknown_owners[owner] += 1
            return "other"
        return role


class Cells:
    """One export row; columns are looked up ignoring case and surrounding blanks."""

    def __init__(self, row: Mapping[str, str | None]):
        self._cells = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}

    def get(self, *names: str) -> str | None:
        """The first non-empty cell among ``names`` (aliases), or None."""
        for name in names:
            value = self._cells.get(name.lower())
            if value:
                return value
        return None

    def need(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise Unmappable(name, "empty; this preset needs it")
        return value


Mapper = Callable[[Cells, Context], list[dict[str, Any]]]


@dataclass(frozen=True)
class Preset:
    """A CRM export: the columns it reads (``required`` ones must be in the header) and the mapping."""

    name: str
    crm: str
    object: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    map_row: Mapper
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def known(self) -> set[str]:
        names = {*self.required, *self.optional, *(a for group in self.aliases.values() for a in group)}
        return {n.lower() for n in names}

    def missing(self, header: list[str]) -> list[str]:
        """Required columns absent from ``header`` (an alias counts)."""
        present = {h.strip().lower() for h in header}
        return [c for c in self.required if not ({c.lower(), *(a.lower() for a in self.aliases.get(c, ()))} & present)]

    def unmapped(self, header: list[str]) -> list[str]:
        """Columns of ``header`` this preset does not read."""
        known = self.known()
        return [h for h in header if h.strip() and h.strip().lower() not in known]


def timestamp(value: str | None, column: str) -> str | None:
    """An export time as ISO-8601 UTC. Salesforce writes ``2026-10-01T10:00:00.000Z``; a date
    (``2026-10-01``) is midnight UTC; a time without an offset (HubSpot) is taken as UTC."""
    if value is None:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise Unmappable(column, f"{value!r} is not a date or time (ISO-8601 expected)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def amount(value: str | None, column: str) -> str | None:
    """A money cell as a plain decimal string (thousands separators and blanks removed)."""
    if value is None:
        return None
    text = value.replace(",", "").replace(" ", "")
    try:
        return str(Decimal(text).quantize(Decimal("0.01")))
    except InvalidOperation:
        raise Unmappable(column, f"{value!r} is not an amount") from None


def flag(value: str | None) -> bool:
    """A Salesforce/HubSpot boolean cell (``true``/``false``, ``1``/``0``)."""
    return (value or "").strip().lower() in ("true", "1", "yes")


def first_id(value: str | None) -> str | None:
    """The first id of a ``;``-separated association list (HubSpot ``Associated Company IDs``)."""
    if value is None:
        return None
    parts = [p.strip() for p in value.replace(",", ";").split(";") if p.strip()]
    return parts[0] if parts else None


def deal_events(*, deal_id: str, account: str, stage: str | None, closed: str | None, created: str | None,
                modified: str | None, closed_at: str | None, money: dict[str, Any], owner: str | None
                ) -> list[dict[str, Any]]:
    """A deal snapshot (one export row) as opportunity events: ``created`` at its creation time;
    then, if closed, ``closed_won``/``closed_lost`` at the close time, else ``stage_changed`` to the
    current stage if it was modified after creation (otherwise the creation carries the stage)."""
    base: dict[str, Any] = {"type": "opportunity", "opportunityId": deal_id, "crmAccountId": account, **money}
    if owner:
        base["ownerId"] = owner
    later = closed or (stage if modified and created and modified > created else None)
    events: list[dict[str, Any]] = []
    if created:
        first = {**base, "action": "created", "changedAt": created}
        if stage and not later:
            first["stage"] = stage
        events.append(first)
    if closed:
        events.append({**base, "action": closed, "stage": stage, "changedAt": closed_at or modified or created})
    elif later:
        events.append({**base, "action": "stage_changed", "stage": stage, "changedAt": modified})
    if not events:
        raise Unmappable("CreatedDate", "no creation, change or close time: nothing to place on the timeline")
    return [{k: v for k, v in e.items() if v is not None} for e in events]
