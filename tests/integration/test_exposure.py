"""The explicit opt-in to an open API (issue 20, item 7): a real worker on 0.0.0.0 without a token
starts only with JOURNEYS_WEB_OPEN_WITHOUT_TOKEN=true, and says so in its log. (Without the
opt-in it exits at once: tests/unit/test_exposure.py.)"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_a_worker_opened_on_purpose_serves_and_warns_in_its_log(tracker_factory) -> None:
    tracker = tracker_factory(JOURNEYS_WEB_HOST="0.0.0.0", JOURNEYS_WEB_OPEN_WITHOUT_TOKEN="true").start()
    assert tracker.stats() is not None  # the API answers without a token
    tracker.wait_until(lambda: "INSECURE: JOURNEYS_WEB_HOST=0.0.0.0" in tracker.log_tail(400), 30, "the warning")
    line = next(x for x in tracker.log_tail(400).splitlines() if "INSECURE" in x)
    assert "WARNING" in line and "JOURNEYS_WEB_OPEN_WITHOUT_TOKEN=true" in line and "JOURNEYS_API_TOKEN" in line
