"""Security subset of the fault suite: write keys never logged, request size limits enforced.

The collector runs in-process (aiohttp test server, a fake producer) so ``caplog`` sees every
log record at DEBUG; the real collector process's log is checked in scenario 11.
"""

from __future__ import annotations

import asyncio
import gzip
import logging

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.collector.app import build_app
from streams.collector.settings import key_id
from streams.settings import Settings
from tests.support.fake_out import FakeOut, basic_auth

pytestmark = [pytest.mark.faults]

SECRET = "wk_live_S3CRET_do_not_log_8c1f"


def call(out: FakeOut, requests: list[tuple[str, bytes, dict[str, str]]], **collector: object) -> list[int]:
    settings = Settings(collector={"write_keys": {SECRET: "website"}, **collector})

    async def go() -> list[int]:
        async with TestClient(TestServer(build_app(settings, out))) as client:  # type: ignore[arg-type]
            statuses = []
            for path, body, headers in requests:
                resp = await client.post(path, data=body, headers=headers)
                await resp.read()
                statuses.append(resp.status)
            return statuses

    return asyncio.run(go())


def test_write_keys_are_never_logged_nor_forwarded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = orjson.dumps({"messageId": "m1", "userId": "u", "event": "e"})
    in_body = orjson.dumps({"writeKey": SECRET, "messageId": "m2", "userId": "u", "event": "e"})
    bad_in_body = orjson.dumps({"writeKey": SECRET, "messageId": "m3", "userId": "u", "event": 42})
    near_miss = SECRET[:-1] + "X"  # an unknown key that looks like the real one
    out = FakeOut()
    statuses = call(out, [
        ("/v1/track", good, basic_auth(SECRET)),
        ("/v1/track", in_body, {}),
        ("/v1/track", bad_in_body, {}),
        ("/v1/track", good, basic_auth(near_miss)),
        ("/v1/batch", orjson.dumps({"batch": [], "writeKey": near_miss}), {}),
        ("/v1/batch", b"x" * 600_000, basic_auth(SECRET)),
        ("/v1/track", b"{broken", basic_auth(SECRET)),
    ])
    assert statuses == [200, 200, 400, 401, 401, 413, 400]
    statuses = call(FakeOut(fail=True), [("/v1/track", good, basic_auth(SECRET))])
    assert statuses == [503]
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert caplog.records, "the collector logged nothing: the check would be vacuous"
    assert SECRET not in logged and near_miss not in logged
    assert key_id(near_miss) in logged  # what is logged instead: the key id
    stored = b"".join(r.value + b"".join(v for _, v in r.headers) for r in out.sent)
    assert SECRET.encode() not in stored and near_miss.encode() not in stored
    assert SECRET not in repr(Settings(collector={"write_keys": {SECRET: "website"}}))


def test_request_size_limits_are_enforced() -> None:
    event = {"messageId": "m", "userId": "u", "event": "e", "properties": {"blob": "x" * 40_000}}
    bomb = gzip.compress(orjson.dumps({"batch": [], "pad": "0" * 5_000_000}))  # 5 MB in ~5 KB
    small_batch = orjson.dumps({"batch": [{"type": "track", "messageId": f"m{i}", "userId": "u", "event": "e"}
                                          for i in range(100)]})
    out = FakeOut()
    statuses = call(out, [
        ("/v1/track", orjson.dumps(event), basic_auth(SECRET)),                       # one call > 32 KiB
        ("/v1/batch", orjson.dumps({"batch": [event] * 20}), basic_auth(SECRET)),     # body > 500 KiB
        ("/v1/batch", bomb, {**basic_auth(SECRET), "Content-Encoding": "gzip"}),      # > 500 KiB inflated
        ("/v1/batch", small_batch, basic_auth(SECRET)),                               # within the limits
        ("/v1/batch", orjson.dumps({"batch": [event]}), basic_auth(SECRET)),          # item > 32 KiB: 400
    ])
    assert statuses == [413, 413, 413, 200, 400]
    dead = [r for r in out.sent if r.topic.endswith("-dlq")]
    assert len(dead) == 4  # the three 413 bodies keep their first 32 KiB; a rejected item is kept whole
    assert [len(r.value) <= 32 * 1024 for r in dead] == [True, True, True, False]
    # a lower configured limit is honoured too
    assert call(FakeOut(), [("/v1/batch", small_batch, basic_auth(SECRET))], max_request_bytes=2048) == [413]
