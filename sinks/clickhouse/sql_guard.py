"""What an analyst's SQL may do, decided by ClickHouse's own parser and analyzer.

An analyst statement is accepted only when ClickHouse itself says it is:

1. **one statement** — ``formatQuery`` parses it (it refuses multi-statements) and the
   statement that runs is ClickHouse's own re-formatting of what it parsed, not our reading of
   the text;
2. **of a reading kind** — the root of ``EXPLAIN AST`` is a SELECT (with UNION / INTERSECT /
   EXCEPT), a SHOW, DESCRIBE or EXISTS; anything else (KILL, USE, SET, SYSTEM, EXPLAIN, writes,
   DDL) is refused here, before ClickHouse's ``readonly`` refuses writes and setting changes
   again; a SELECT may not write a file (``INTO OUTFILE``);
3. **not reading dead-letter payloads** — ``EXPLAIN QUERY TREE`` (the analyzer's resolved tree:
   ``*`` and ``COLUMNS()`` expanded, scalar and ``IN`` subqueries, CTEs and WHERE clauses all
   shown with the table each column comes from) names no column in :data:`HIDDEN` of its table,
   and the query calls no table function outside :data:`TABLE_FUNCTIONS` (``merge()`` would
   reach a table under another name; ``file()``, ``url()`` and the like are refused by
   ``readonly`` already).

Limits, stated honestly: the check sees the tables a query names, not what a view reads inside
(no tracker view exposes the payload: a test keeps it so); ``DESCRIBE (subquery)`` is allowed
and reveals types only. The engine's ``readonly=1`` (see :mod:`sinks.clickhouse.embedded_sql`)
is what stops writes and setting changes; this module adds what ``readonly`` does not cover.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

HIDDEN: dict[str, frozenset[str]] = {"dead_letters": frozenset({"payload"})}
"""Columns analysts may not read, per table (the original bytes of a rejected input may hold
personal data; docs/security.md). Same as the server role's grants (sinks/clickhouse/grants.py)."""

TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series",
                             "generateSeries", "values", "null"})
"""Table functions an analyst query may call: generators that read no stored data."""

READING_KINDS = ("SelectWithUnionQuery", "SelectIntersectExceptQuery", "Show", "DescribeQuery",
                 "ExistsTableQuery", "ExistsDatabaseQuery", "ExistsDictionaryQuery", "ExistsViewQuery")

READONLY = 164  # ClickHouse's error code for "not allowed in readonly mode"
ACCESS_DENIED = 497

Run = Callable[[str], str]
"""Runs one read-only statement and returns its output as text (TabSeparatedRaw)."""

_FORMAT = re.compile(r"\nFORMAT\s+([A-Za-z0-9_]+)\s*$")
_TABLE = re.compile(r"^\s*TABLE id: (\d+),.*\btable_name: (\S+)$", re.MULTILINE)
_COLUMN = re.compile(r"^\s*COLUMN id: \d+, column_name: (.+?), result_type: .*\bsource_id: (\d+)\s*$", re.MULTILINE)
_TABLE_FUNCTION = re.compile(r"^\s*TABLE_FUNCTION id: \d+,.*\btable_function_name: (\S+)\s*$", re.MULTILINE)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Refused(ValueError):
    """The statement is not allowed for analysts; ``code`` is the ClickHouse error code to report."""

    def __init__(self, message: str, code: int = ACCESS_DENIED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Statement:
    """One accepted statement: ClickHouse's formatting of it (no FORMAT clause), its kind and
    the output format it asked for, if any."""

    text: str
    kind: str
    fmt: str | None


def literal(text: str) -> str:
    """``text`` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def identifier(value: str, what: str) -> str:
    if not _IDENT.match(value):
        raise Refused(f"{what} must be a plain identifier, got {value!r}", code=READONLY)
    return value


def parse(run: Run, sql: str) -> Statement:
    """Check ``sql`` (steps 1–2 of the module doc) and return it as ClickHouse formats it."""
    if not sql.strip():
        raise Refused("empty query", code=62)
    text = run(f"SELECT formatQuery({literal(sql)}) FORMAT TabSeparatedRaw").rstrip("\n")
    fmt = None
    found = _FORMAT.search(text)
    if found:
        fmt, text = found.group(1), text[: found.start()]
    ast = run(f"EXPLAIN AST {text}")
    root = ast.split("\n", 1)[0].split(" ", 1)[0]
    if not root.startswith(READING_KINDS):
        raise Refused(f"only SELECT, SHOW, DESCRIBE and EXISTS are allowed here (got {root})", code=READONLY)
    if root.startswith("Select") and any(line.startswith(" Literal ") for line in ast.splitlines()):
        raise Refused("INTO OUTFILE is not allowed here: the result comes back in the response", code=READONLY)
    if root.startswith("Select"):
        check_tree(run(f"EXPLAIN QUERY TREE {text}"))
    return Statement(text, root, fmt)


def check_tree(tree: str) -> None:
    """Refuse a query tree that reads a hidden column or calls a table function not allowed."""
    for name in _TABLE_FUNCTION.findall(tree):
        if name not in TABLE_FUNCTIONS:
            raise Refused(f"the table function {name}() is not allowed here; query the tables and views "
                          f"(allowed: {', '.join(sorted(TABLE_FUNCTIONS))})")
    tables = {node: qualified.rsplit(".", 1)[-1] for node, qualified in _TABLE.findall(tree)}
    for column, source in _COLUMN.findall(tree):
        table = tables.get(source)
        if table in HIDDEN and column.strip("`") in HIDDEN[table]:
            shown = ", ".join(sorted(HIDDEN[table]))
            raise Refused(f"{table}.{shown} is not readable by analysts (it may hold personal data): name the "
                          f"columns you need, e.g. SELECT * EXCEPT ({shown}) FROM {table}")
