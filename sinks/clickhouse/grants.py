"""The read-only analyst role for a ClickHouse server: SELECT on every tracker table and view,
on ``dead_letters`` every column except ``payload`` (the original bytes may hold PII).

chDB has no users; there every analyst query still runs with ``readonly=2``
(:class:`~sinks.clickhouse.client.ReadOnlyStore`).
"""

from __future__ import annotations

import re

from sinks.clickhouse import ddl

ROLE = "journeys_reader"
HIDDEN = {"dead_letters": ("payload",)}
DEAD_LETTER_COLUMNS = ("dlq_id", "rejected_at", "source_kind", "source", "stage", "reasons", "replayed")

_CREATED = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|MATERIALIZED\s+VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)",
    re.IGNORECASE,
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def objects() -> list[str]:
    """Every table and view the migrations create, in order of first creation."""
    seen: list[str] = []
    for migration in ddl.MIGRATIONS:
        for statement in migration.statements:
            for name in _CREATED.findall(statement):
                if name not in seen and name not in migration.scratch:
                    seen.append(name)
    return seen + ["schema_migrations"]


def _ident(value: str, what: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(f"{what} must be a plain identifier (letters, digits, _), got {value!r}")
    return value


def reader_statements(database: str = "default", role: str = ROLE, users: tuple[str, ...] = ()) -> list[str]:
    """SQL that creates the read-only role (and grants it to existing ``users``)."""
    db, role = _ident(database, "database"), _ident(role, "role")
    out = [f"CREATE ROLE IF NOT EXISTS {role} SETTINGS readonly = 2"]
    for name in objects():
        if name in HIDDEN:
            columns = ", ".join(c for c in DEAD_LETTER_COLUMNS if c not in HIDDEN[name])
            out.append(f"GRANT SELECT({columns}) ON {db}.{name} TO {role}")
        else:
            out.append(f"GRANT SELECT ON {db}.{name} TO {role}")
    for user in users:
        out.append(f"GRANT {role} TO {_ident(user, 'user')}")
        out.append(f"ALTER USER {user} DEFAULT ROLE {role}")
    return out
