"""Scenarios 5, 6, 7 and 11: poison messages, duplicate ids, late and shuffled events, bad
payloads at the collector and on the inbound topic.

They need no process fault, so they share one tracker (stream + store) and one collector: the
inputs of all four are sent first (each scenario with its own id prefix), the pipeline drains,
the store is read once, and each test checks its own part.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from tests.faults import harness as h
from tests.faults.conftest import Topology
from tests.support.collector import Collector

pytestmark = [pytest.mark.faults, pytest.mark.integration]

WRITE_KEY = "wk_fault_suite_SECRET_7f3a9c"
BROWSER_KEY = "wk_fault_suite_BROWSER_2d81e6"  # scoped to Segment calls: no CRM records
THROTTLED_KEY = "wk_fault_suite_THROTTLED_9b47"  # on a collector with a tiny rate limit


def post(url: str, body: bytes, key: str | None = WRITE_KEY, gz: bool = False) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:  # aiohttp's own 500 page: the status is the finding
            return exc.code, {}


class Shared:
    """Everything the four scenarios sent, and what the store held afterwards."""

    def __init__(self) -> None:
        self.parts: dict[str, list[h.Rec]] = {}
        self.prefixes: dict[str, str] = {}
        self.expect_first: dict[str, tuple] = {}
        self.found: dict = {}
        self.http: list[tuple[str, int, int]] = []  # (what, expected status, got)
        self.notes: dict[str, str] = {}
        self.logs = ""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def poison_part(prefix: str, rng: random.Random) -> list[h.Rec]:
    """5: poison messages between good ones, straight on the inbound topic."""
    good = h.journey_events(prefix, 3 * h.SCALE, _now() - timedelta(days=7), rng)
    bad = h.poison(prefix)
    out = list(good)
    for b in bad:  # spread the poison between the good events
        out.insert(rng.randrange(len(out) + 1), b)
    return out


def duplicates_part(prefix: str, rng: random.Random) -> tuple[list[h.Rec], list[h.Rec], dict[str, tuple]]:
    """6: the same event seconds apart, days apart (later receivedAt), and with another payload.

    Returns (first wave, resends, expectations id → (name, account) of the first receipt)."""
    now = _now()
    first = h.journey_events(prefix, 2, now - timedelta(days=7), rng)
    acct0, acct1 = f"{prefix}a0", f"{prefix}a1"
    user0 = f"{prefix}a0-u"
    expect: dict[str, tuple] = {}
    resend: list[h.Rec] = []
    # seconds apart: identical bytes again
    resend += [h.Rec(r.value, r.key, event_id=r.event_id, account=r.account, obj=r.obj) for r in first[::3]]
    # days apart: the same messageId, received three days later (and with an edited name)
    t = now - timedelta(days=3, hours=1)
    for k in range(3):
        mid = f"{prefix}days-{k}"
        orig = {"type": "page", "messageId": mid, "userId": user0, "name": "/pricing", "receivedAt": h.iso(t),
                "timestamp": h.iso(t - timedelta(minutes=5 + k)), "context": {"page": {"path": "/pricing"}}}
        later = dict(orig, name="/pricing (resent)", receivedAt=h.iso(t + timedelta(days=3)))
        first.append(h.rec(orig, acct0))
        resend.append(h.rec(later, acct0))
        expect[mid] = ("/pricing", "")  # a page by userId: no direct account on the row
    # same id, different payload: the first receipt wins (name), seconds later
    mid = f"{prefix}edit-0"
    orig = {"type": "track", "messageId": mid, "userId": user0, "event": "Plan Viewed",
            "timestamp": h.iso(now - timedelta(days=2))}
    first.append(h.rec(orig, acct0))
    resend.append(h.rec(dict(orig, event="Plan Changed", properties={"plan": "pro"}), acct0))
    expect[mid] = ("Plan Viewed", "")
    # same id, different payload naming another account and an earlier time
    mid = f"{prefix}edit-1"
    orig = {"type": "conversation", "messageId": mid, "conversationId": f"{prefix}edit-call", "channel": "call",
            "repId": "sdr-2", "repRole": "SDR", "direction": "outbound", "outcome": "connected",
            "startedAt": h.iso(now - timedelta(days=1)), "crmAccountId": acct0}
    first.append(h.rec(orig, acct0))
    resend.append(h.rec(dict(orig, crmAccountId=acct1, outcome="no_answer",
                             startedAt=h.iso(now - timedelta(days=2))), acct1))
    expect[mid] = ("call connected", acct0)
    return first, resend, expect


def late_parts(prefix: str, seed: int) -> tuple[list[h.Rec], list[h.Rec], list[h.Rec]]:
    """7: the same journeys (same seed, other ids) sent in event-time order, and shuffled within
    each account with its first day three days late. Returns (in order, shuffled, late)."""
    base = _now() - timedelta(days=9)
    in_order = h.journey_events(prefix + "ino-", 4 * h.SCALE, base, random.Random(seed))
    late_copy = h.journey_events(prefix + "late-", 4 * h.SCALE, base, random.Random(seed))

    def hours(r: h.Rec) -> float:
        t = r.obj.get("timestamp") or r.obj.get("startedAt") or r.obj.get("changedAt")
        return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()

    in_order.sort(key=hours)
    rng = random.Random(seed + 1)
    shuffled, late = [], []
    for acct in sorted({r.account for r in late_copy}):
        mine = [r for r in late_copy if r.account == acct]
        head, rest = mine[0], mine[1:]  # the group call (the user's account evidence) first
        newest = max(hours(r) for r in mine)
        old = [r for r in rest if newest - hours(r) >= 3 * 86400 - 4 * 3600]
        shuffled += [head] + h.shuffled([r for r in rest if r not in old], rng)
        late += old
    return in_order, shuffled, late


def collector_part(prefix: str, c: Collector, shared: Shared, rng: random.Random) -> list[h.Rec]:
    """11 (HTTP side): good events through /v1/batch and /v1/crm, and every kind of bad body."""
    recs: list[h.Rec] = []
    good = h.journey_events(prefix + "http-", 2, _now() - timedelta(days=6), rng)
    segment = [r for r in good if r.obj["type"] in ("page", "track", "identify", "group")]
    crm = [r for r in good if r not in segment]
    batch = {"batch": [dict(r.obj, foo_unknown_field=1) for r in segment], "sentAt": h.iso(_now())}
    # Segment's sentAt with no per-call sentAt: the skew correction keeps event time = timestamp
    # only if sentAt is absent, so send the calls without a batch sentAt
    batch.pop("sentAt")

    def expect(what: str, status: int, got: tuple[int, dict]) -> dict:
        shared.http.append((what, status, got[0]))
        return got[1]

    expect("good /v1/batch (unknown top-level fields: tolerated)", 200, post(c.url + "/v1/batch", orjson.dumps(batch)))
    expect("good /v1/crm batch (gzip)", 200, post(c.url + "/v1/crm", orjson.dumps({"batch": [r.obj for r in crm]}),
                                               gz=True))
    recs += good

    def bad(i: int, endpoint: str, body: bytes, status: int, what: str, key: str | None = WRITE_KEY,
            stored: bool = True) -> None:
        expect(what, status, post(f"{c.url}/v1/{endpoint}", body, key))
        if stored:
            recs.append(h.Rec(body, marker=m(i)))

    m = lambda i: f"{prefix}hbad-{i:02d}"  # noqa: E731
    user = f"{prefix}http-a0-u"
    big = orjson.dumps({"type": "track", "messageId": m(0), "userId": user, "event": "big", "properties": {
        "blob": "x" * 40_000}})
    bad(0, "track", big, 413, "single call over 32 KiB")
    huge = orjson.dumps({"batch": [{"type": "page", "messageId": f"{m(1)}-{k}", "userId": user,
                                    "properties": {"blob": "y" * 20_000}} for k in range(30)]})
    bad(1, "batch", huge, 413, "batch over 500 KiB")
    bad(2, "page", f'{{"type": "page", "messageId": "{m(2)}", broken'.encode(), 400, "malformed JSON")
    bad(3, "track", orjson.dumps({"messageId": m(3), "userId": ["not", "a", "string"], "event": 42,
                                  "timestamp": 12345}), 400, "wrongly typed fields")
    bad(4, "crm", orjson.dumps({"type": "lead_status", "messageId": m(4), "leadId": "l1", "status": "mql",
                                "changedAt": h.iso(_now()), "crmAccountId": "x", "unknownField": 1}), 400,
        "unknown field on a strict CRM record")
    bad(5, "batch", orjson.dumps({"batch": [{"type": "conversation", "messageId": m(5)}]}), 400,
        "CRM record posted to /v1/batch")
    mixed_ok = {"type": "page", "messageId": f"{prefix}http-mixed-ok", "userId": user, "name": "/",
                "timestamp": h.iso(_now() - timedelta(hours=3))}
    mixed_bad = {"type": "page", "messageId": m(6), "userId": user, "timestamp": "yesterday"}
    bad(6, "batch", orjson.dumps({"batch": [mixed_ok, mixed_bad]}), 400, "batch: one good, one bad item")
    recs.append(h.Rec(orjson.dumps(mixed_ok), event_id=mixed_ok["messageId"], account=f"{prefix}http-a0",
                      obj=mixed_ok))
    bad(7, "page", orjson.dumps({"type": "page", "messageId": m(7), "userId": user}), 401,
        "unknown write key: nothing stored", key="wk_wrong_key", stored=False)
    bad(8, "page", orjson.dumps({"type": "page", "messageId": m(8), "userId": user}), 401,
        "no write key: nothing stored", key=None, stored=False)
    # issue 20: an item nested deeper than the limit costs only itself, at 220 levels (past the
    # collector it stopped a later stage) and at 300 (it made the collector answer 500)
    for k, depth in enumerate((220, 300)):
        ok = [deep_neighbour(prefix, f"{k}-{j}") for j in range(2)]
        deep = orjson.dumps({"type": "track", "messageId": m(9 + k), "anonymousId": f"{prefix}deep-dev",
                             "event": "Viewed", "timestamp": h.iso(_now() - timedelta(hours=1))})
        body = b'{"batch":[' + b",".join([orjson.dumps(ok[0]), deep[:-1] + b',"properties":' + nested(depth) + b"}",
                                         orjson.dumps(ok[1])]) + b"]}"
        bad(9 + k, "batch", body, 400, f"batch: one item nested {depth} levels deep, two good ones")
        recs += [h.Rec(orjson.dumps(o), event_id=o["messageId"], obj=o) for o in ok]
    # issue 20, authentication first: 480 KB of zeros with a wrong key was parsed and validated
    # item by item before its 401 (3.3 s, ~2.7 GB resident); now the key is checked first
    zeros = b'{"batch":["' + m(11).encode() + b'",' + b",".join([b"0"] * 240_000) + b"]}"
    started = time.monotonic()
    bad(11, "batch", zeros, 401, "480 KB of zeros, wrong write key: 401 before the body is read",
        key="wk_wrong_key", stored=False)
    shared.notes["401 seconds"] = f"{time.monotonic() - started:.2f}"
    # issue 20, scopes: the public browser key (segment only) posting a closed-won opportunity
    won = {"type": "opportunity", "opportunityId": m(12), "crmAccountId": f"{prefix}http-a0", "action": "closed_won",
           "stage": "Won", "amount": "1000000.00", "currency": "EUR", "changedAt": h.iso(_now())}
    bad(12, "crm", orjson.dumps(won), 403, "CRM record from a browser (segment-only) key: 403, stored nowhere",
        key=BROWSER_KEY, stored=False)
    # issue 20, fan-out: a 30 KB batch context copied into 500 minimal items (15 MB of events)
    # is refused whole (413, one dead letter), not stored as megabytes
    items = b",".join(orjson.dumps({"type": "track", "messageId": f"{m(13)}-fan-{i}", "anonymousId": "a",
                                    "event": "e"}) for i in range(500))
    fan = b'{"context":' + orjson.dumps({"m": m(13), "pad": "x" * 30_000}) + b',"batch":[' + items + b"]}"
    bad(13, "batch", fan, 413, "a 30 KB context copied into 500 items: 413, one dead letter")
    expect("unknown endpoint /v1/nope", 404, post(c.url + "/v1/nope", b"{}"))  # /v1/screen: 400 since issue 21
    shared.notes["never stored"] = f"{m(7)},{m(8)},{m(11)},{m(12)}"
    return recs


def throttled_part(prefix: str, c: Collector, shared: Shared) -> list[h.Rec]:
    """11 (issue 20, abuse): a collector with a tiny rate (burst 2, then one request per 100 s)
    and a 1 s read timeout. A burst from one key gets 429 with ``Retry-After`` past the second
    request (the refused ones stored nowhere); a body that stops arriving gets 408."""
    recs: list[h.Rec] = []
    got: list[tuple[int, str | None]] = []
    for i in range(4):
        ev = {"type": "track", "messageId": f"{prefix}burst-{i}", "anonymousId": f"{prefix}burst-dev",
              "event": "Viewed", "timestamp": h.iso(_now() - timedelta(hours=1))}
        req = urllib.request.Request(c.url + "/v1/track", data=orjson.dumps(ev), method="POST", headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{THROTTLED_KEY}:".encode()).decode()})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                got.append((resp.status, None))
        except urllib.error.HTTPError as exc:
            got.append((exc.code, exc.headers.get("Retry-After")))
        if i < 2:
            recs.append(h.Rec(orjson.dumps(ev), event_id=ev["messageId"], obj=ev))
    for i, (status, retry_after) in enumerate(got):
        want = 200 if i < 2 else 429
        shared.http.append((f"burst request {i + 1} of 4 over a rate of burst 2", want, status))
        if want == 429 and not (retry_after or "").isdigit():
            shared.http.append((f"burst request {i + 1}: Retry-After in whole seconds ({retry_after!r})", 1, 0))
    with socket.create_connection(("127.0.0.1", c.port), timeout=30) as conn:
        conn.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n"
                     + b"Authorization: Basic " + base64.b64encode(f"{WRITE_KEY}:".encode())
                     + b'\r\n\r\n{"type"')
        answer = conn.recv(4096)  # the rest of the body never comes
    shared.http.append(("a body that stops arriving: 408 after the read timeout", 408,
                        int(answer.split()[1]) if answer.startswith(b"HTTP/1.1 ") else 0))
    shared.notes["never stored"] += f",{prefix}burst-2,{prefix}burst-3"
    return recs


def nested(depth: int) -> bytes:
    """An object ``depth`` levels deep, by hand: orjson cannot write 254 levels or more."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def deep_neighbour(prefix: str, n: str) -> dict:
    """A good anonymous event sent next to a deep one (no account: outside the journey check)."""
    return {"type": "track", "messageId": f"{prefix}deep-ok-{n}", "anonymousId": f"{prefix}deep-dev",
            "event": "Viewed", "timestamp": h.iso(_now() - timedelta(hours=1))}


def inbound_bad_classes(prefix: str) -> list[h.Rec]:
    """11 (topic side): the same classes straight on the inbound topic (no collector in front)."""
    m = lambda i: f"{prefix}tbad-{i:02d}"  # noqa: E731
    user = f"{prefix}http-a1-u"
    out = [
        h.Rec(orjson.dumps({"type": "track", "messageId": m(0), "userId": user, "event": "big",
                            "properties": {"blob": "x" * 40_000}}), marker=m(0)),
        h.Rec(f'{{"type":"page","messageId":"{m(1)}", broken'.encode(), marker=m(1)),
        h.Rec(orjson.dumps({"type": "track", "messageId": m(2), "userId": ["x"], "event": 42,
                            "timestamp": 12345}), marker=m(2)),
        h.Rec(orjson.dumps({"type": "lead_status", "messageId": m(3), "leadId": "l1", "status": "mql",
                            "changedAt": h.iso(_now()), "crmAccountId": "x", "unknownField": 1}), marker=m(3)),
    ]
    for k, depth in enumerate((220, 300)):  # issue 20: straight into Kafka, past the collector's check
        deep = orjson.dumps({"type": "track", "messageId": m(4 + k), "anonymousId": f"{prefix}deep-dev",
                             "event": "Viewed", "timestamp": h.iso(_now() - timedelta(hours=1))})
        out.append(h.Rec(deep[:-1] + b',"properties":' + nested(depth) + b"}", marker=m(4 + k)))
        ok = deep_neighbour(prefix, f"topic-{k}")
        out.append(h.Rec(orjson.dumps(ok), event_id=ok["messageId"], obj=ok))
    tolerant = {"type": "page", "messageId": f"{prefix}topic-unknown-ok", "userId": user, "name": "/",
                "timestamp": h.iso(_now() - timedelta(hours=2)), "someVendorField": {"a": 1}, "_metadata": {}}
    out.append(h.rec(tolerant, f"{prefix}http-a1"))
    return out


@pytest.fixture(scope="module")
def shared(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Shared:
    tmp = tmp_path_factory.mktemp("inputs")
    topo = Topology(kafka_bootstrap, tmp, f"fin{int(time.time()) % 100000}-")
    s = Shared()
    rng = random.Random(9)
    try:
        tracker = topo.add("stream,store").start()
        collector = Collector(tracker, {WRITE_KEY: "website",
                                               BROWSER_KEY: {"source": "website", "allow": ["segment"]}}).start()
        p = topo.prefix
        s.prefixes = {"poison": p + "poi-", "duplicates": p + "dup-", "in order": p + "ino-",
                      "late": p + "late-", "collector": p + "col-"}
        s.parts["poison"] = poison_part(p + "poi-", rng)
        first, resend, s.expect_first = duplicates_part(p + "dup-", rng)
        in_order, shuffled, late = late_parts(p, seed=7)
        topic = tracker.topic(h.INBOUND)

        h.produce(topo.bootstrap, topic, s.parts["poison"] + first + in_order + shuffled)
        s.parts["collector"] = collector_part(p + "col-", collector, s, rng)
        throttled = Collector(tracker, {WRITE_KEY: "website", THROTTLED_KEY: "website"})
        throttled.env.update(JOURNEYS_COLLECTOR__RATE_LIMIT_PER_SECOND="0.01", JOURNEYS_COLLECTOR__RATE_LIMIT_BURST="2",
                             JOURNEYS_COLLECTOR__READ_TIMEOUT_SECONDS="1")
        try:
            s.parts["collector"] += throttled_part(p + "col-", throttled.start(), s)
        finally:
            throttled.stop()
        s.logs += throttled.log()
        s.parts["collector"] += (topic_bad := inbound_bad_classes(p + "col-"))
        h.produce(topo.bootstrap, topic, topic_bad)
        time.sleep(2)  # "seconds apart": the resends are received later, so the first receipt is clear
        h.produce(topo.bootstrap, topic, resend)
        expect_events = len({r.event_id for part in (s.parts["poison"], first, in_order, shuffled,
                                                     s.parts["collector"]) for r in part if r.event_id})
        topo.drain(expect_events)  # the late events come after everything else was processed
        h.produce(topo.bootstrap, topic, late)
        s.parts["duplicates"] = first + resend
        s.parts["in order"] = in_order
        s.parts["late"] = shuffled + late
        s.notes["late"] = str(len(late))
        everything = [r for part in s.parts.values() for r in part]
        accepted = {r.event_id for r in everything if r.event_id}
        rejected = [r for r in everything if r.event_id is None]
        topo.drain(len(accepted), len(rejected), timeout=180)
        collector.stop()
        s.logs += collector.log() + "\n".join(pr.log_text() for pr in topo.procs)
        s.found = topo.finish(event_prefix=p)
    finally:
        topo.close()
    return s


def check(shared: Shared, name: str, part: str, **kw) -> h.Result:
    return h.verify(h.Result(name), h.only(shared.found, shared.prefixes[part]), shared.parts[part], **kw)


def test_5_poison_messages_between_good_ones(shared: Shared) -> None:
    result = check(shared, "5. poison messages between good ones", "poison")
    result.conclude()


def test_6_duplicates_seconds_and_days_apart_first_receipt_wins(shared: Shared) -> None:
    # the id re-sent for another account (a1) stops at the dedupe stage: a1's journey must not count
    # it (B4, fixed), which compare_journeys checks with every other account
    result = check(shared, "6. duplicate ids (seconds, days apart, other payload)", "duplicates")
    rows = {r["event_id"]: r for r in shared.found["visible_rows"]}
    for mid, (name, account) in shared.expect_first.items():
        got = rows.get(mid)
        seen = ((got or {}).get("name"), (got or {}).get("account_id"))
        if seen == (name, account):
            continue
        if mid.endswith("edit-1") and got is not None and got["account_id"] != account:
            result.known["B3"] = f"{mid}: want {(name, account)}, analysts see {seen}"
        else:
            result.problems.append(f"{mid}: first receipt must win: want {(name, account)}, got {seen}")
    result.notes = f"{len(shared.parts['duplicates']) - result.accepted} resends"
    result.conclude()


def test_7_late_and_shuffled_events_end_in_the_in_order_journey(shared: Shared) -> None:
    r1 = check(shared, "7a. in-order baseline", "in order")
    r2 = check(shared, "7b. shuffled + 3 days late", "late")
    # the two copies are the same journeys under other ids: same stages at the same times
    p_ino, p_late = shared.prefixes["in order"], shared.prefixes["late"]
    a = {(c["to_stage"], c["at"]) for c in shared.found["stage_changes"] if c["account_id"].startswith(p_ino)}
    b = {(c["to_stage"], c["at"]) for c in shared.found["stage_changes"] if c["account_id"].startswith(p_late)}
    if a != b:
        r2.problems.append(f"shuffled journeys differ from in-order: {sorted(a ^ b)[:4]}")
    r2.notes = f"{shared.notes['late']} events ≥ 3 days late"
    h.Result("7", problems=r1.problems + r2.problems, known={**r1.known, **r2.known}).conclude()


def test_11_bad_payloads_at_the_collector_and_on_the_topic(shared: Shared) -> None:
    result = check(shared, "11. bad payloads: collector + topic", "collector")
    for what, want, got in shared.http:
        if want != got:
            result.problems.append(f"HTTP {what}: want {want}, got {got}")
    never = shared.notes["never stored"].split(",")
    leaked = [d["source"] for d in shared.found["dead_letters"] if any(m in d["payload"] for m in never)]
    if leaked:
        result.problems.append(f"401 requests reached the dead letters: {leaked}")
    for key in (WRITE_KEY, BROWSER_KEY, THROTTLED_KEY):
        if key in shared.logs:
            result.problems.append("a write key appears in a log")
        if any(key in d["source"] or key in d["payload"] for d in shared.found["dead_letters"]):
            result.problems.append("a write key appears in a dead letter")
    if float(shared.notes["401 seconds"]) > 2:  # it was 3.3 s when every item was parsed first
        result.problems.append(f"a 480 KB body with a wrong key took {shared.notes['401 seconds']} s to refuse")
    result.notes = f"{len(shared.http)} HTTP cases; 480 KB wrong-key 401 in {shared.notes['401 seconds']} s"
    result.conclude()
