"""Hostile request bodies through the collector's pure handling (issue 20), by hypothesis: batches
mixing valid calls with deep, oversized, mistyped and broken items, single calls and random bytes.
Invariants: handling never raises; a batch's every item is accepted or rejected exactly once (or the
whole body is rejected, with its bytes kept); what is accepted decodes under the contract; every
rejection carries path-level reasons; the answer is 200, 400 or 413."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from schemas.decode import decode
from streams.collector.handling import CRM_TYPES, ENDPOINTS, Accepted, Limits, Rejected, handle, response
from tests.agents.test_fuzz_steps import FUZZ, hostile

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
LIMITS = Limits(max_future=timedelta(days=3650))


@FUZZ
@given(items=st.lists(hostile(), max_size=12), endpoint=st.sampled_from(ENDPOINTS), as_batch=st.booleans(),
       key=st.sampled_from([b"", b'"writeKey":"k1",']))
def test_every_item_is_accepted_or_rejected_once_and_nothing_raises(items, endpoint, as_batch, key) -> None:
    if as_batch or endpoint in ("batch", "crm") and len(items) != 1:
        body = b"{" + key + b'"batch":[' + b",".join(items) + b"]}"
    else:
        body = items[0] if items else b""
    handled = handle(body, endpoint, received_at=NOW, limits=LIMITS)
    status, payload = response(handled)
    assert status in (200, 400, 413), (status, payload)
    whole = [i for i in handled.items if i.index is None]
    if whole:
        assert len(handled.items) == 1 and isinstance(whole[0], Rejected) and status in (400, 413)
    elif body.startswith(b"{" + key + b'"batch"') and endpoint in ("batch", "crm"):
        assert sorted(i.index for i in handled.items) == list(range(len(items)))
    for item in handled.items:
        if isinstance(item, Accepted):
            event, _ = decode(item.value, received_at=NOW, max_future=LIMITS.max_future)
            if endpoint == "crm":
                assert event.type in CRM_TYPES
        else:
            assert item.error.reasons and all(r.path.startswith("$") and r.message for r in item.error.reasons)
            assert b"k1" not in item.value  # write keys never reach a dead letter
    if status == 200:
        assert not handled.rejected
