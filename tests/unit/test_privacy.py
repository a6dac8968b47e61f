"""Privacy operations, the pure parts: the stored form of an identifier, which dead letters name
a person, the journey without a person, the audit hash, and the retention TTL plan."""

from __future__ import annotations

from datetime import datetime, timezone

import click
import pytest

from schemas.privacy import ForgetRequest, identifier_hash
from sinks.clickhouse import privacy as store_privacy
from sinks.clickhouse import retention
from streams.cli.privacy_commands import stored_form
from streams.rules import pii
from streams.rules import privacy as rules
from streams.rules.journey import forget_contacts

KEY = b"pepper"


def test_the_cli_sends_an_identifier_as_the_store_holds_it() -> None:
    assert stored_form("email", "  Ann@Acme.com ", None) == "ann@acme.com"
    assert stored_form("email", "Ann@Acme.com", KEY) == pii.pseudonymize_email("ann@acme.com", KEY)
    assert stored_form("user_id", "ann@acme.com", KEY).startswith("hmac:")  # ingest pseudonymises it too
    assert stored_form("user_id", "u-1", KEY) == "u-1"
    assert stored_form("anonymous_id", "dev-1", KEY) == "dev-1"
    with pytest.raises(click.BadParameter):
        stored_form("email", "not-an-address", None)


def test_the_request_carries_no_clear_address_and_the_audit_a_hash() -> None:
    stored = stored_form("email", "ann@acme.com", KEY)
    request = ForgetRequest(kind="email", identifier=stored, requested_by="dpo",
                            requested_at=datetime.now(timezone.utc))
    assert b"ann@" not in request.to_bytes()
    assert request.identifier_hash == identifier_hash(stored) and stored not in request.identifier_hash
    assert ForgetRequest.model_validate_json(request.to_bytes()) == request


def test_dead_letters_naming_the_person_in_clear_or_through_a_pseudonym() -> None:
    assert rules.names_them('{"traits":{"email":"ANN@acme.com"}}', ["ann@acme.com"], None)
    assert not rules.names_them('{"email":"joanne@acme.co"}', ["ann@acme.com"], None)
    assert rules.names_them('{"userId":"u-1"}', ["u-1"], None)
    assert not rules.names_them('{"userId":"u-12"}', ["u-1"], None)  # a whole JSON string only
    pseudonym = pii.pseudonymize_email("ann@acme.com", KEY)
    assert rules.names_them('Jane <Ann@Acme.com> broken json', [pseudonym], KEY)
    assert not rules.names_them('{"email":"bob@acme.com"}', [pseudonym], KEY)
    assert rules.needles([pseudonym, "u-1"]) == ["@acme.com", "u-1"]  # the clear address is unknown


def test_a_journey_without_the_person_keeps_the_account() -> None:
    state = {
        "stage": "mql", "engagement": 3.0,
        "contacts": {"u-1": {"persona": "champion"}, "u-2": {"persona": ""}},
        "history": [[1, "e1", ["page", "/", "web", "digital", "u-1", "", "ann@acme.com", "", "", {}]],
                    [2, "e2", ["page", "/", "web", "digital", "u-2", "", "", "", "", {}]]],
        "base": {"contacts": {"u-1": {"persona": "champion"}}},
        "alert_log": [["e1", '{"summary":"u-1 visited pricing"}'], ["e2", '{"summary":"someone"}']],
    }
    out = forget_contacts(state, ["u-1", "ann@acme.com"])
    assert set(out["contacts"]) == {"u-2"} and out["base"]["contacts"] == {}
    assert out["history"][0][2][4] == "" and out["history"][0][2][6] == "" and out["history"][1][2][4] == "u-2"
    assert out["alert_log"] == [["e2", '{"summary":"someone"}']]
    assert out["stage"] == "mql" and out["engagement"] == 3.0
    assert "u-1" not in str(out) and "ann@" not in str(out)


def test_account_rows_kept_have_the_person_replaced() -> None:
    [(_, _, sc, _), (_, _, committee, cp), (_, _, summary, sp)] = store_privacy.pseudonymised(["u-1"])
    assert "contact_id IN {p:Array(String)}" in sc
    assert cp["n0"] == '"u-1"' and "{rq:String}" in committee  # a whole JSON string in the committee
    assert sp["n0"] == "u-1" and "{r:String}" in summary


def test_retention_plan_sets_changes_and_removes_ttls_only_when_needed() -> None:
    want = retention.wanted(30, 0)
    thirty = "toDateTime(event_time) + toIntervalDay(30)"
    assert want == {"timeline": thirty, "event_resolution": thirty, "account_events": thirty,
                    "resolution_history": thirty, "dead_letters": ""}
    query = ("CREATE TABLE default.timeline (`event_id` String) ENGINE = ReplacingMergeTree(version) ORDER BY "
             "(account_id, event_id) TTL toDateTime(event_time) + toIntervalDay(30) SETTINGS index_granularity = 8192")
    assert retention.current_ttl(query) == want["timeline"]
    assert retention.current_ttl("CREATE TABLE t (x String) ENGINE = MergeTree ORDER BY x") == ""
    current = {"timeline": want["timeline"], "event_resolution": "", "account_events": thirty,
               "resolution_history": thirty, "dead_letters": "toDateTime(rejected_at) + toIntervalDay(7)"}
    assert retention.plan(current, want) == [
        "ALTER TABLE event_resolution MODIFY TTL toDateTime(event_time) + toIntervalDay(30)",
        "ALTER TABLE dead_letters REMOVE TTL",
    ]
    assert retention.plan(want, want) == []


def test_forget_accepts_the_name_addr_form_as_ingest_stores_it() -> None:
    assert stored_form("email", "Ann Lee <Ann@Acme.com>", None) == "ann@acme.com"
    assert stored_form("email", "Ann Lee <ann@acme.com>", KEY) == pii.pseudonymize_email("ann@acme.com", KEY)
    assert stored_form("user_id", "Ann Lee <ann@acme.com>", KEY) == pii.pseudonymize_email("ann@acme.com", KEY)
    assert stored_form("user_id", "Ann Lee <ann@acme.com>", None) == "ann@acme.com"
