"""Read back what a scenario left in the store, with direct SQL (no CLI, no API).

    python -m tests.faults.probe STORE_URL [PREFIX]   → one JSON object on stdout

Run it only after the store process stopped: with chDB only one process may open a data
path. Everything is filtered to ids starting with PREFIX (each scenario namespaces its ids).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sinks.clickhouse.client import Store


def _rows(store: Store, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cols, rows = store.query(sql, params)
    out = []
    for row in rows:
        item = {}
        for col, value in zip(cols, row):
            if hasattr(value, "isoformat"):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            item[col] = value
        out.append(item)
    return out


def probe(url: str, prefix: str = "") -> dict[str, Any]:
    store = Store(url)
    p = {"p": prefix + "%"}
    try:
        raw = _rows(store, "SELECT event_id, count() AS n FROM timeline WHERE event_id LIKE {p:String} "
                           "GROUP BY event_id", p)
        visible_rows = _rows(store, "SELECT event_id, account_id, name, event_time FROM timeline_v "
                                    "WHERE event_id LIKE {p:String}", p)
        view = _rows(store, "SELECT count() AS visible, uniqExact(event_id) AS uniq FROM timeline_v "
                            "WHERE event_id LIKE {p:String}", p)[0]
        dead = _rows(store, "SELECT dlq_id, source_kind, source, stage, reasons, payload FROM dead_letters FINAL", {})
        dead_raw = _rows(store, "SELECT count() AS n FROM dead_letters", {})[0]["n"]
        changes = _rows(store, "SELECT change_id, account_id, from_stage, to_stage, at, rule, event_id "
                               "FROM stage_changes_v WHERE account_id LIKE {p:String}", p)
        snapshot = _rows(store, "SELECT account_id, stage FROM account_snapshot WHERE account_id LIKE {p:String}", p)
        alerts_raw = _rows(store, "SELECT alert_id, rule, account_id, count() AS n FROM alerts "
                                  "GROUP BY alert_id, rule, account_id", {})
        alerts = _rows(store, "SELECT alert_id, rule, account_id, at FROM alerts FINAL", {})
    finally:
        store.close()
    return {
        "raw_rows": sum(r["n"] for r in raw),
        "raw_counts": {r["event_id"]: r["n"] for r in raw},
        "stored_ids": sorted(r["event_id"] for r in raw),
        "visible": view["visible"],
        "visible_uniq": view["uniq"],
        "visible_rows": visible_rows,
        "dead_letters": dead,
        "dead_letter_rows_raw": dead_raw,
        "stage_changes": changes,
        "snapshot": snapshot,
        "alerts_raw": alerts_raw,
        "alerts": alerts,
    }


if __name__ == "__main__":
    json.dump(probe(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""), sys.stdout)
