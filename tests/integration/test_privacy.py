"""``journeys privacy forget`` and retention on a real worker (real broker, real chDB): a
person's rows leave every table, the other person's stay, the audit row names no one, the
stream forgets them too; the retention TTLs are on the tables after start."""

from __future__ import annotations

import json

import orjson
import pytest

from sinks.clickhouse.client import Store
from streams.rules import pii
from tests.support import events as ev

pytestmark = pytest.mark.integration

KEY = "privacy-pepper-7c1d"
ANN, BOB = "Ann.Forget@ForgetCorp.com", "bob.stays@forgetcorp.com"


def _rows_naming(store: Store, needles: list[str]) -> dict[str, int]:
    """Table → rows whose any column contains one of ``needles`` (case-insensitive)."""
    _, tables = store.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                            "AND engine LIKE '%MergeTree'")
    found = {}
    for (table,) in tables:
        _, rows = store.query(f"SELECT * FROM {table}")
        text = str(rows).lower()
        hits = sum(1 for row in rows if any(n.lower() in str(row).lower() for n in needles))
        if hits or any(n.lower() in text for n in needles):
            found[table] = hits
    return found


def test_forget_removes_a_person_everywhere_and_keeps_the_other(tracker_factory) -> None:
    tracker = tracker_factory(JOURNEYS_PII__EMAIL_HMAC_KEY=KEY).start()
    ann = pii.pseudonymize_email(ANN, KEY.encode())
    bob = pii.pseudonymize_email(BOB, KEY.encode())
    events = [
        ev.page(1, anon="dev-ann", path="/pricing"),
        ev.identify(2, "dev-ann", "u-ann", email=ANN, title="VP Engineering"),
        ev.page(3, anon="dev-ann", path="/docs"),
        ev.call(4, ANN.lower(), account="forget-crm", rep="rep-3"),
        ev.page(5, anon="dev-bob", path="/pricing"),
        ev.identify(6, "dev-bob", "u-bob", email=BOB),
        ev.call(7, BOB, account="forget-crm", rep="rep-3"),
    ]
    bad = orjson.dumps({"type": "identify", "traits": {"email": ANN}})  # no userId nor anonymousId
    tracker.produce(ev.encode(events) + [bad])
    tracker.wait_for_stored(events=len(events), dead_letters=1)

    def contacts() -> set[str]:
        body = tracker.api("/api/v1/reports/contacts?account=forget-crm") or {"rows": []}
        return {r["contact_id"] for r in body["rows"]}

    tracker.wait_until(lambda: contacts() & {"u-ann", ann} and contacts() & {"u-bob", bob}, 90,
                       f"both contacts scored on forget-crm (now: {sorted(contacts())})")

    out = tracker.journeys("privacy", "forget", "--email", ANN, "--by", "dpo@test", "--timeout", "120")
    assert "forgotten (request" in out.stdout and "timeline" in out.stdout, out.stdout + out.stderr
    assert ANN.lower() not in (out.stdout + out.stderr).lower()
    audit = json.loads(tracker.journeys("privacy", "requests", "--format", "json").stdout)
    assert len(audit) == 1 and audit[0]["kind"] == "email" and audit[0]["requested_by"] == "dpo@test"
    assert audit[0]["rows_deleted"]["timeline"] >= 4 and audit[0]["rows_deleted"]["dead_letters"] == 1
    assert ann not in json.dumps(audit) and "ann.forget" not in json.dumps(audit).lower()
    tracker.wait_until(lambda: not contacts() & {"u-ann", ann}, 30, "the contact report without ann")

    tracker.stop()

    store = Store(f"chdb://{tracker.store_dir}")
    try:
        assert _rows_naming(store, [ann, "u-ann", "dev-ann", "ann.forget"]) == {}
        still = _rows_naming(store, [bob, "u-bob", "dev-bob"])
        assert {"timeline", "event_resolution", "identity_links", "contact_scores"} <= set(still), still
        _, kept = store.query("SELECT count() FROM timeline FINAL WHERE person_id IN ('u-bob', {b:String}) "
                              "OR anonymous_id = 'dev-bob' OR email = {b:String}", {"b": bob})
        assert kept[0][0] == 3
        _, scores = store.query("SELECT count() FROM account_scores")
        assert scores[0][0] > 0, "the account's score history went too"
    finally:
        store.close()

    # the stream forgot her too: her old device's next event is anonymous again, and she comes
    # back on a new device as a new person (the old device is not linked to her again)
    tracker.start()
    tracker.produce(ev.encode([ev.page(8, anon="dev-ann", path="/blog"), ev.identify(9, "dev-new", "u-ann", email=ANN)]))
    tracker.wait_for_stored(events=5)
    tracker.stop()
    store = Store(f"chdb://{tracker.store_dir}")
    try:
        _, rows = store.query("SELECT anonymous_id, person_id FROM timeline FINAL WHERE anonymous_id = 'dev-ann'")
        assert rows == [("dev-ann", "")], rows
        _, links = store.query("SELECT src FROM identity_links FINAL WHERE kind = 'device' AND has(dsts, 'u-ann')")
        assert sorted(r[0] for r in links) == ["dev-new"]
    finally:
        store.close()


def test_retention_ttls_are_set_at_start_and_removed_at_zero(tracker_factory) -> None:
    tracker = tracker_factory(JOURNEYS_RETENTION__EVENTS_DAYS="400", JOURNEYS_RETENTION__DEAD_LETTERS_DAYS="30").start()
    tracker.produce(ev.encode([ev.page(1, anon="dev-ttl")]))
    tracker.wait_for_stored(events=1)
    tracker.stop()
    store = Store(f"chdb://{tracker.store_dir}")
    try:
        def ttl(table: str) -> str:
            return str(store.command(f"SHOW CREATE TABLE {table}"))

        assert "TTL toDateTime(event_time) + toIntervalDay(400)" in ttl("timeline")
        assert "TTL toDateTime(event_time) + toIntervalDay(400)" in ttl("event_resolution")
        assert "TTL toDateTime(rejected_at) + toIntervalDay(30)" in ttl("dead_letters")
    finally:
        store.close()
    tracker.env["JOURNEYS_RETENTION__EVENTS_DAYS"] = "0"
    tracker.start()
    tracker.stop()
    store = Store(f"chdb://{tracker.store_dir}")
    try:
        assert "TTL" not in str(store.command("SHOW CREATE TABLE timeline"))
        assert "toIntervalDay(30)" in str(store.command("SHOW CREATE TABLE dead_letters"))
    finally:
        store.close()
