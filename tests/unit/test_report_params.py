"""Report parameters are bounded before any query runs (issue 20: reads never stall writes)."""

from __future__ import annotations

import pytest

from schemas.definitions import load
from streams import reports

DEFS = load()


@pytest.mark.parametrize("name, params, message", [
    ("paths", {"limit": "100000"}, "limit must be an integer between 1 and 1000"),
    ("paths", {"limit": "-1"}, "limit must be an integer between 1 and 1000"),
    ("alerts", {"limit": "1e9"}, "limit must be an integer between 1 and 10000"),
    ("scores", {"account": "a", "limit": "20001"}, "limit must be an integer between 1 and 20000"),
    ("attribution", {"model": "nope"}, "model must be one of first_touch"),
    ("attribution", {"split": "region"}, "split must be one of channel, team, role"),
    ("funnel", {"by": "colour"}, "by must be one of"),
    ("identity", {}, "id is required"),
    ("identity", {"id": "x" * 513}, "id is longer than 512"),
])
def test_out_of_range_parameters_are_refused_before_the_store_is_asked(name, params, message) -> None:
    with pytest.raises(ValueError, match=message):
        reports.run(name, None, DEFS, params)  # no store: nothing may be queried
