"""``analytics.event_order``: the string key the reports' ``argMin``/``argMax`` use in place of the
tuple ``(event_time, event_id)`` orders rows exactly as the tuple does, on real chDB — ties in
time broken by id, ids that are prefixes of others, times before 1970 and at millisecond steps,
and a byte 0x00 where ``reinterpretAsString`` would drop one at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.clickhouse import analytics
from sinks.clickhouse.client import Store

pytestmark = pytest.mark.integration

TIMES = ["1969-12-31 23:59:59.999", "1970-01-01 00:00:00.000", "1970-01-01 00:00:00.256",
         "2024-03-01 00:00:00.000", "2024-03-01 00:00:00.001", "2025-11-09 09:47:37.172", "2299-12-31 23:59:59.999"]
IDS = ["", "a", "a~1", "ab", "b", "B", "e-0001", "e-01", "~"]


def test_event_order_sorts_as_the_time_then_the_id(tmp_path: Path) -> None:
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        rows = ", ".join(f"('{acct}', toDateTime64('{t}', 3, 'UTC'), '{i}')"
                         for acct in ("x", "y") for t in TIMES for i in IDS if (acct, i) != ("y", "a"))
        src = f"(SELECT * FROM VALUES('account_id String, event_time DateTime64(3, \\'UTC\\'), event_id String', {rows}))"
        key = analytics.event_order()
        _, by_tuple = store.query(f"SELECT event_time, event_id FROM {src} ORDER BY event_time, event_id")
        _, by_key = store.query(f"SELECT event_time, event_id FROM {src} ORDER BY {key}")
        assert by_key == by_tuple and len(by_key) == 2 * len(TIMES) * len(IDS) - len(TIMES)
        _, lengths = store.query(f"SELECT DISTINCT length({key}) - length(event_id) FROM {src}")
        assert lengths == [(8,)]
        _, picked = store.query(f"""
            SELECT account_id, argMin(event_id, (event_time, event_id)), argMin(event_id, {key}),
                   argMax(event_id, (event_time, event_id)), argMax(event_id, {analytics.event_order('s.')})
            FROM {src} AS s GROUP BY account_id ORDER BY account_id""")
        assert [r[1] == r[2] and r[3] == r[4] for r in picked] == [True, True]
    finally:
        store.close()
