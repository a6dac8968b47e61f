"""CRM export presets: each fixture (real export headers) maps to valid events, value maps hold,
unmappable rows carry a reason, unknown owners are tallied."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from schemas.decode import decode
from streams.cli.importing import PresetMismatch, Summary, preset_rows
from streams.cli.presets import PRESETS, Cells, Context, Unmappable

FIXTURES = Path(__file__).parents[1] / "fixtures" / "crm"
NOW = datetime(2027, 1, 1, tzinfo=timezone.utc)
FIXTURE_OF = {"salesforce-lead": "salesforce_lead.csv", "salesforce-opportunity": "salesforce_opportunity.csv",
              "salesforce-task": "salesforce_task.csv", "hubspot-deals": "hubspot_deals.csv",
              "hubspot-calls": "hubspot_calls.csv"}


def rows(name: str) -> list[dict[str, str]]:
    with (FIXTURES / FIXTURE_OF[name]).open(newline="") as f:
        return list(csv.DictReader(f))


def mapped(name: str, ctx: Context | None = None) -> tuple[list[dict], Summary]:
    summary = Summary()
    out = list(preset_rows((FIXTURES / FIXTURE_OF[name]).read_bytes(), PRESETS[name], ctx or Context(currency="USD"),
                           summary))
    assert all(r.error is None for r in out), [r.error for r in out if r.error]
    events = [orjson.loads(r.value) for r in out]
    for raw in out:
        decode(raw.value, received_at=NOW, max_future=timedelta(days=1))  # every event satisfies the contract
    return events, summary


def test_every_preset_has_a_fixture_with_its_required_columns() -> None:
    assert set(PRESETS) == set(FIXTURE_OF)
    for name, preset in PRESETS.items():
        header = list(rows(name)[0])
        assert preset.missing(header) == [], name


def test_salesforce_lead_statuses() -> None:
    events, summary = mapped("salesforce-lead")
    assert [(e["leadId"], e["status"]) for e in events] == [
        ("00Q5g00000LEAD01AAA", "sql"), ("00Q5g00000LEAD02AAA", "accepted"), ("00Q5g00000LEAD03AAA", "rejected")]
    first = events[0]
    assert first["crmAccountId"] == "0015g00000ACME01AAA" and first["crmContactId"] == "0035g00000DANA01AAA"
    assert first["changedAt"] == "2026-09-10T14:00:00Z" and first["leadSource"] == "Webinar"
    assert events[2]["reason"] == "Closed - Not Converted"
    assert summary.unmapped_columns == ["FirstName", "LastName", "Company", "Title", "IsConverted"]


def test_salesforce_lead_open_is_mql_and_unknown_status_is_unmappable() -> None:
    preset = PRESETS["salesforce-lead"]
    row = {"Id": "00Q1", "Status": "Open - Not Contacted", "LastModifiedDate": "2026-09-01T09:00:00.000Z"}
    assert preset.map_row(Cells(row), Context())[0]["status"] == "mql"
    with pytest.raises(Unmappable) as err:
        preset.map_row(Cells({**row, "Status": "Nurture"}), Context())
    assert err.value.column == "Status" and "'Nurture' has no mapping" in err.value.message


def test_salesforce_opportunity_history() -> None:
    events, _ = mapped("salesforce-opportunity")
    assert [(e["opportunityId"], e["action"], e.get("stage"), e["changedAt"]) for e in events] == [
        ("0065g00000OPP001AAA", "created", None, "2026-09-12T10:00:00Z"),
        ("0065g00000OPP001AAA", "closed_won", "Closed Won", "2026-10-20T16:45:00Z"),
        ("0065g00000OPP002AAA", "created", None, "2026-10-01T10:00:00Z"),
        ("0065g00000OPP002AAA", "stage_changed", "Proposal/Price Quote", "2026-10-05T12:00:00Z"),
    ]
    assert {(e["amount"], e["currency"], e["ownerId"]) for e in events} == {
        ("48000.00", "EUR", "0055g00000AE0001AAA"), ("12000.00", "EUR", "0055g00000AE0001AAA")}


def test_salesforce_closed_lost_by_stage_name() -> None:
    row = {"Id": "006X", "AccountId": "001X", "StageName": "Closed Lost", "CreatedDate": "2026-01-01",
           "LastModifiedDate": "2026-02-01T00:00:00Z"}
    events = PRESETS["salesforce-opportunity"].map_row(Cells(row), Context())
    assert [e["action"] for e in events] == ["created", "closed_lost"]


def test_salesforce_task_conversations_and_owner_roles() -> None:
    ctx = Context(reps={"0055g00000SDR001AAA": "SDR", "0055g00000AE0001AAA": "AE"})
    events, summary = mapped("salesforce-task", ctx)
    assert [(e["channel"], e["direction"], e["repRole"], e.get("outcome"), e.get("durationSeconds"))
            for e in events] == [("call", "outbound", "SDR", "meeting_booked", "540"),
                                 ("email", "outbound", "AE", None, None),
                                 ("call", "outbound", "other", "voicemail", "35")]
    assert events[0]["crmContactId"] == "0035g00000DANA01AAA" and events[0]["subject"] == "Discovery call"
    assert summary.unknown_owners == {}  # tallied in the context, copied by run_import
    assert ctx.unknown_owners == {"0055g00000XXX999AAA": 1}
    assert summary.unmapped_columns == ["WhatId"]


@pytest.mark.parametrize(("change", "column"), [({"TaskSubtype": "Task"}, "TaskSubtype"),
                                                ({"Status": "Not Started"}, "Status"),
                                                ({"CallType": "Internal"}, "CallType"),
                                                ({"CreatedDate": "yesterday"}, "CreatedDate")])
def test_salesforce_task_unmappable(change: dict[str, str], column: str) -> None:
    row = {**rows("salesforce-task")[0], **change}
    with pytest.raises(Unmappable) as err:
        PRESETS["salesforce-task"].map_row(Cells(row), Context())
    assert err.value.column == column


def test_hubspot_deals() -> None:
    events, summary = mapped("hubspot-deals")
    assert [(e["opportunityId"], e["action"], e.get("stage"), e["changedAt"]) for e in events] == [
        ("9001", "created", None, "2026-09-01T10:00:00Z"),
        ("9001", "closed_won", "Closed Won", "2026-10-15T17:00:00Z"),
        ("9002", "created", "Appointment Scheduled", "2026-10-02T09:00:00Z"),
    ]
    assert {e["crmAccountId"] for e in events} == {"5101"} and events[0]["currency"] == "USD"
    assert summary.unmapped_columns == []


def test_hubspot_internal_stage_ids_and_missing_company() -> None:
    preset = PRESETS["hubspot-deals"]
    row = {"Record ID": "1", "Deal Stage": "closedlost", "Create Date": "2026-01-01",
           "Close Date": "2026-02-01", "associated company ids": "7;8"}  # header case varies
    assert [(e["action"], e["crmAccountId"]) for e in preset.map_row(Cells(row), Context())] == [
        ("created", "7"), ("closed_lost", "7")]
    with pytest.raises(Unmappable) as err:
        preset.map_row(Cells({**row, "associated company ids": ""}), Context())
    assert err.value.column == "Associated Company IDs"


def test_hubspot_calls() -> None:
    ctx = Context(reps={"Sam Sdr": "SDR"})
    events, _ = mapped("hubspot-calls", ctx)
    assert [(e["conversationId"], e["direction"], e["durationSeconds"], e["outcome"], e["repRole"])
            for e in events] == [("7001", "outbound", 540, "connected", "SDR"),
                                 ("7002", "inbound", 40, "voicemail", "SDR")]
    assert events[0]["startedAt"] == "2026-09-05T14:00:00Z" and events[0]["crmAccountId"] == "5101"


def test_missing_required_column_refuses_the_file() -> None:
    data = b"Id,Email\n00Q1,a@b.example\n"
    with pytest.raises(PresetMismatch, match="'Status', 'LastModifiedDate'"):
        preset_rows(data, PRESETS["salesforce-lead"], Context(), Summary())


def test_unmappable_row_is_dead_lettered_with_the_export_row() -> None:
    data = b"Id,Status,LastModifiedDate\n00Q1,Nurture,2026-09-01T09:00:00Z\n"
    [row] = list(preset_rows(data, PRESETS["salesforce-lead"], Context(), Summary()))
    assert row.line == 2 and orjson.loads(row.value) == {"Id": "00Q1", "Status": "Nurture",
                                                          "LastModifiedDate": "2026-09-01T09:00:00Z"}
    assert row.error is not None and str(row.error.reasons[0]).startswith("$.Status: 'Nurture' has no mapping")
