"""``journeys import --preset``: each CRM export object's mapping, on the fixtures under
tests/fixtures/crm/ (real export column names), without Kafka."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from schemas.decode import validate
from schemas.definitions import CrmValues, Reps
from schemas.definitions import check as check_definitions
from schemas.errors import ConfigurationError
from streams.cli.importing import MissingColumns, PresetReport, check, read_preset
from streams.cli.presets import PRESETS, Context, get

FIXTURES = Path(__file__).parents[1] / "fixtures" / "crm"
FILES = {
    "salesforce-account": "salesforce/Account.csv", "salesforce-contact": "salesforce/Contact.csv",
    "salesforce-lead": "salesforce/Lead.csv", "salesforce-lead-history": "salesforce/LeadHistory.csv",
    "salesforce-opportunity": "salesforce/Opportunity.csv",
    "salesforce-opportunity-history": "salesforce/OpportunityHistory.csv",
    "salesforce-opportunity-field-history": "salesforce/OpportunityFieldHistory.csv",
    "salesforce-task": "salesforce/Task.csv", "salesforce-event": "salesforce/Event.csv",
    "hubspot-companies": "hubspot/companies.csv", "hubspot-contacts": "hubspot/contacts.csv",
    "hubspot-deals": "hubspot/deals.csv", "hubspot-calls": "hubspot/calls.csv",
    "hubspot-meetings": "hubspot/meetings.csv", "hubspot-emails": "hubspot/emails.csv",
}  # fmt: skip
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
REPS = Reps(default_role="AE", owners={"005Dn000001SdrAIAA": "SDR", "Erlich Bachman": "SDR"})


def mapped(name: str, data: bytes | None = None, ctx: Context | None = None) -> tuple[list, PresetReport, Context]:
    ctx = ctx or Context(reps=REPS)
    report = PresetReport(name)
    rows = list(read_preset(data if data is not None else (FIXTURES / FILES[name]).read_bytes(), get(name), ctx,
                            report))
    return rows, report, ctx


def events(name: str, **kw) -> list[dict]:
    rows, _, _ = mapped(name, **kw)
    return [orjson.loads(r.value) for r in rows if not r.skip and r.error is None]


def test_every_preset_has_a_fixture() -> None:
    assert set(FILES) == set(PRESETS)


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_preset_imports_its_fixture_with_every_row_valid(name: str) -> None:
    rows, report, _ = mapped(name)
    produced = [r for r in rows if not r.skip]
    assert produced
    for row in produced:
        key, error = check(row, NOW, timedelta(minutes=5))
        assert error is None, (row.line, error.reasons if error else None, row.value)
        assert key
    assert set(get(name).required) <= set(get(name).columns)


def test_salesforce_lead_statuses_map_and_a_closed_lead_is_rejected_with_its_status_as_reason() -> None:
    out = events("salesforce-lead")
    statuses = [e for e in out if e["type"] == "lead_status"]
    assert [(e["leadId"], e["status"]) for e in statuses] == [
        ("00QDn00000DanaLIAA", "sql"), ("00QDn00000SamKLIAA", "rejected"), ("00QDn00000PatRLIAA", "accepted")]
    converted, rejected = statuses[0], statuses[1]
    assert converted["crmAccountId"] == "001Dn000004AcmeIAA" and converted["changedAt"] == "2026-10-06T00:00:00.000Z"
    assert converted["crmContactId"] == "003Dn00000DanaCIAA" and converted["leadSource"] == "Webinar"
    assert rejected["reason"] == "Closed - Not Converted" and "crmAccountId" not in rejected
    assert rejected["crmContactId"] == "00QDn00000SamKLIAA"  # not converted: the lead is the person
    sam = next(e for e in out if e["type"] == "identify" and e["userId"] == "00QDn00000SamKLIAA")
    assert sam["traits"]["email"] == "sam.kim@initech.example"


def test_salesforce_converted_lead_is_its_contacts_person_and_its_id_an_alias() -> None:
    dana = [e for e in events("salesforce-lead") if "Dana" in str(e)]
    assert [e["type"] for e in dana] == ["identify", "alias", "group", "lead_status"]
    identify, alias, group, status = dana
    assert identify["userId"] == "003Dn00000DanaCIAA"  # ConvertedContactId
    assert identify["traits"]["email"] == "dana.lee@acme.example"  # one person: the email stays
    assert (alias["previousId"], alias["userId"]) == ("00QDn00000DanaLIAA", "003Dn00000DanaCIAA")
    # rows still naming the lead (a task logged before conversion) count for the converted account
    assert (group["userId"], group["groupId"]) == ("00QDn00000DanaLIAA", "001Dn000004AcmeIAA")
    assert (status["leadId"], status["crmContactId"]) == ("00QDn00000DanaLIAA", "003Dn00000DanaCIAA")
    # converted, ConvertedContactId not exported: the lead stays its own person, the email the contact's
    data = (b"Id,Email,Status,CreatedDate,IsConverted,ConvertedAccountId\n"
            b"00Q1,a@b.example,Closed - Converted,2026-09-01T09:00:00.000Z,true,001A\n")
    identify, status = events("salesforce-lead", data=data)
    assert identify["userId"] == "00Q1" and "email" not in identify["traits"]
    assert (status["crmContactId"], status["crmAccountId"]) == ("00Q1", "001A")
    # the history's relationship column names the contact too
    data = (b"LeadId,Lead.ConvertedAccountId,Lead.ConvertedContactId,Field,NewValue,CreatedDate\n"
            b"00Q1,001A,003A,Status,Working - Contacted,2026-09-02T09:00:00.000Z\n"
            b"00Q2,,,Status,Working - Contacted,2026-09-02T09:00:00.000Z\n")
    assert [e["crmContactId"] for e in events("salesforce-lead-history", data=data)] == ["003A", "00Q2"]


def test_salesforce_lead_history_keeps_status_rows_and_skips_other_fields() -> None:
    rows, report, _ = mapped("salesforce-lead-history")
    assert report.skipped == 1 and report.unmapped == ["DataType"]
    out = [orjson.loads(r.value) for r in rows if not r.skip]
    assert [(e["status"], e["changedAt"]) for e in out] == [
        ("new", "2026-09-20T10:00:00.000Z"), ("accepted", "2026-09-22T14:45:00.000Z"),
        ("sql", "2026-10-06T15:00:00.000Z")]
    assert {(e["crmAccountId"], e["crmContactId"]) for e in out} == {("001Dn000004AcmeIAA", "003Dn00000DanaCIAA")}


def test_salesforce_opportunity_created_then_closed_won_and_amount_needs_a_currency() -> None:
    rows, _, ctx = mapped("salesforce-opportunity")
    out = [orjson.loads(r.value) for r in rows]
    assert [(e["opportunityId"][-8:], e["action"]) for e in out] == [
        ("AcmeOIAA", "created"), ("AcmeOIAA", "closed_won"), ("GlbxOIAA", "created"), ("GlbxOIAA", "stage_changed")]
    assert out[1]["changedAt"] == "2026-11-20T00:00:00.000Z" and "amount" not in out[1]
    assert ctx.dropped_amounts == 2
    out = events("salesforce-opportunity", ctx=Context(currency="eur"))
    assert (out[1]["amount"], out[1]["currency"]) == ("48000.00", "EUR")


def test_salesforce_history_stage_names_through_the_configured_map() -> None:
    out = events("salesforce-opportunity-history", ctx=Context(currency="EUR"))
    assert [e["action"] for e in out] == ["stage_changed", "stage_changed", "closed_won"]
    assert out[0]["crmAccountId"] == "001Dn000004AcmeIAA" and out[0]["stage"] == "Prospecting"
    custom = Context(values=CrmValues(opportunity_stage={"proposal/price quote": "lost"}))
    assert [e["action"] for e in events("salesforce-opportunity-history", ctx=custom)][1] == "closed_lost"
    field = events("salesforce-opportunity-field-history")
    assert [(e["action"], e.get("stage")) for e in field] == [
        ("created", None), ("stage_changed", "Proposal/Price Quote"), ("closed_won", "Closed Won")]


def test_salesforce_tasks_are_calls_and_emails_with_rep_roles_and_to_dos_are_skipped() -> None:
    rows, report, ctx = mapped("salesforce-task")
    assert report.skipped == 1
    call, email, inbound = (orjson.loads(r.value) for r in rows if not r.skip)
    assert call["channel"] == "call" and call["durationSeconds"] == "540" and call["outcome"] == "meeting_booked"
    assert (call["repRole"], call["crmContactId"], call["startedAt"]) == (
        "SDR", "00QDn00000DanaLIAA", "2026-09-22T14:30:00.000Z")
    assert "crmAccountId" not in call  # a lead's task: the account comes from the lead
    assert email["channel"] == "email" and email["crmAccountId"] == "001Dn000004AcmeIAA" and email["repRole"] == "AE"
    assert inbound["direction"] == "inbound" and inbound["outcome"] == "connected"
    assert ctx.unknown_owners == {"005Dn000001AeBoIAA": 1, "005Dn000001NewRIAA": 1}


def test_salesforce_events_are_held_meetings_and_contacts_accounts_are_identify_and_group() -> None:
    first = events("salesforce-event")[0]
    assert (first["channel"], first["outcome"], first["durationSeconds"]) == ("meeting", "meeting_held", 2700)
    identify, group = events("salesforce-contact")[:2]
    assert identify["traits"] == {"email": "dana.lee@acme.example", "firstName": "Dana", "lastName": "Lee",
                                  "title": "VP Engineering"}
    assert (group["userId"], group["groupId"]) == ("003Dn00000DanaCIAA", "001Dn000004AcmeIAA")
    assert "traits" not in group
    account = events("salesforce-account")[0]
    assert account["traits"]["employees"] == "1200" and account["groupId"] == account["userId"]


def test_hubspot_contacts_lifecycle_dates_then_lead_status() -> None:
    out = events("hubspot-contacts")
    gavin = [e for e in out if e.get("leadId") == "hubspot-contact-51"]
    assert [(e["status"], e["changedAt"]) for e in gavin] == [  # In Progress (accepted) is behind SQL: left out
        ("new", "2026-09-10T08:00:00.000Z"), ("mql", "2026-09-18T12:00:00.000Z"),
        ("sql", "2026-10-01T09:30:00.000Z")]
    assert {e["crmAccountId"] for e in gavin} == {"hubspot-company-7001"}
    identify = out[0]
    assert identify["userId"] == "hubspot-contact-51" and identify["traits"]["title"] == "CEO"
    data = (b"Record ID,Email,Create Date,Lifecycle Stage,Lead Status,Last Modified Date\n"
            b"9,a@b.example,2026-10-01,marketingqualifiedlead,IN_PROGRESS,2026-10-02\n"
            b"8,c@b.example,2026-10-01,salesqualifiedlead,BAD_TIMING,2026-10-03\n")
    assert [e["status"] for e in events("hubspot-contacts", data=data) if e["type"] == "lead_status"] == [
        "mql", "accepted", "sql", "recycled"]


def test_hubspot_deals_close_won_and_lost_with_reason() -> None:
    out = events("hubspot-deals", ctx=Context(currency="USD"))
    assert [(e["opportunityId"], e["action"]) for e in out] == [
        ("hubspot-deal-901", "created"), ("hubspot-deal-901", "closed_won"),
        ("hubspot-deal-902", "created"), ("hubspot-deal-902", "closed_lost")]
    assert out[1]["amount"] == "120000" and out[1]["crmAccountId"] == "hubspot-company-7001"
    assert out[3]["reason"] == "Chose a competitor"


def test_hubspot_activities() -> None:
    calls = events("hubspot-calls")
    assert (calls[0]["durationSeconds"], calls[0]["outcome"], calls[0]["repRole"]) == (420, "connected", "SDR")
    assert calls[1]["outcome"] == "voicemail" and calls[2]["direction"] == "inbound"
    assert calls[2]["repRole"] == "AE"  # Dinesh is not in reps: the default role
    meetings = events("hubspot-meetings")
    assert [m["outcome"] for m in meetings] == ["meeting_held", "no_show"] and meetings[0]["durationSeconds"] == 3600
    assert meetings[0]["crmContactId"] == "hubspot-contact-51"
    emails = events("hubspot-emails")
    assert [(e["direction"], e.get("outcome")) for e in emails] == [("outbound", None), ("inbound", "replied")]


def test_hubspot_internal_property_names_and_guid_outcomes() -> None:
    data = (b"hs_object_id,hs_timestamp,hubspot_owner_id,hs_call_direction,hs_call_duration,hs_call_disposition,"
            b"associatedcompanyid\n"
            b"1,2026-10-01T10:00:00Z,77,OUTBOUND,60000,b2cf5968-551e-4856-9783-52b3da59a7d0,9\n")
    rows, report, _ = mapped("hubspot-calls", data)
    assert report.unmapped == []
    call = orjson.loads(rows[0].value)
    assert (call["outcome"], call["durationSeconds"], call["crmAccountId"]) == ("voicemail", 60, "hubspot-company-9")
    validate(call)


def test_headers_match_without_case_or_bom_and_missing_required_columns_stop_the_import() -> None:
    data = "\ufeffID,ACCOUNTID,NAME,STAGENAME,CLOSEDATE,CREATEDDATE\n006A,001A,x,Closed Lost,2026-10-02,2026-10-01\n"
    out = events("salesforce-opportunity", data=data.encode())
    assert [e["action"] for e in out] == ["created", "closed_lost"]
    with pytest.raises(MissingColumns, match="'AccountId'"):
        mapped("salesforce-opportunity", b"Id,StageName,CloseDate,CreatedDate\n")
    with pytest.raises(MissingColumns) as refused:  # the file's column names, printed: no terminal escapes
        mapped("salesforce-opportunity", b"Id,StageName,CloseDate,CreatedDate,\x1b]0;pwned\x07\x1b[2J\n")
    assert "\x1b" not in str(refused.value) and "\\x1b]0;pwned\\x07" in str(refused.value)


def test_an_unmappable_row_becomes_an_invalid_row_and_the_value_map_is_configurable() -> None:
    data = b"Id,Status,CreatedDate,Email\n00Q1,Hot Prospect,2026-10-01T00:00:00.000Z,a@b.example\n"
    rows, _, _ = mapped("salesforce-lead", data)
    assert len(rows) == 1 and rows[0].error is not None
    assert [str(r) for r in rows[0].error.reasons] == [
        "$.Status: lead status 'Hot Prospect' has no mapping; add it under crm_values.lead_status in the "
        "definitions file"]
    assert orjson.loads(rows[0].value) == {"Id": "00Q1", "Status": "Hot Prospect",
                                          "CreatedDate": "2026-10-01T00:00:00.000Z", "Email": "a@b.example"}
    ctx = Context(values=CrmValues(lead_status={"hot prospect": "mql"}))
    assert [e["status"] for e in events("salesforce-lead", data=data, ctx=ctx) if e["type"] == "lead_status"] == ["mql"]
    rows, _, _ = mapped("salesforce-task", b"Id,WhoId,OwnerId,CreatedDate,TaskSubtype\nT1,,U1,2026-10-01,Call\n")
    assert str(rows[0].error.reasons[0]).startswith("$.WhoId: names no contact or lead")


def test_definitions_reps_and_crm_values() -> None:
    base = Path(__file__).parents[2] / "schemas" / "defaults" / "definitions.yaml"
    text = base.read_text()
    defs = check_definitions(text + "\nreps:\n  default_role: SDR\n  owners: {'005A': AE}\n"
                             "crm_values:\n  lead_status: {Hot: mql}\n")
    assert defs.reps.owners == {"005A": "AE"} and defs.crm_values.lead_status == {"Hot": "mql"}
    with pytest.raises(ConfigurationError, match=r"reps\.owners\.005A: Input should be"):
        check_definitions(text + "\nreps:\n  owners: {'005A': Closer}\n")


# -- from the h2-crm branch's tests: its fixtures (other export variants of the same objects:
# IsClosed/IsWon, HubSpot label capitalisation, H:MM:SS durations) through the merged presets,
# and its definitions form (the short `reps:` map, unlisted owners → other) ------------------

VARIANTS = {"salesforce-lead": "salesforce_lead.csv", "salesforce-opportunity": "salesforce_opportunity.csv",
            "salesforce-task": "salesforce_task.csv", "hubspot-deals": "hubspot_deals.csv",
            "hubspot-calls": "hubspot_calls.csv"}


def variant(name: str, ctx: Context | None = None) -> tuple[list[dict], PresetReport, Context]:
    rows, report, ctx = mapped(name, (FIXTURES / VARIANTS[name]).read_bytes(), ctx or Context(currency="USD"))
    assert all(r.error is None for r in rows), [r.error.reasons for r in rows if r.error]
    produced = [r for r in rows if not r.skip]
    for row in produced:  # every event satisfies the contract
        assert check(row, NOW, timedelta(minutes=5))[1] is None, row.value
    return [orjson.loads(r.value) for r in produced], report, ctx


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_fixtures_have_the_required_columns(name: str) -> None:
    header = (FIXTURES / VARIANTS[name]).read_text().splitlines()[0].split(",")
    assert get(name).resolve(header)[1] == []


def test_variant_salesforce_lead_statuses() -> None:
    out, report, _ = variant("salesforce-lead")
    statuses = [e for e in out if e["type"] == "lead_status"]
    assert [(e["leadId"], e["status"]) for e in statuses] == [
        ("00Q5g00000LEAD01AAA", "sql"), ("00Q5g00000LEAD02AAA", "accepted"), ("00Q5g00000LEAD03AAA", "rejected")]
    first = statuses[0]
    assert first["crmAccountId"] == "0015g00000ACME01AAA" and first["leadSource"] == "Webinar"
    assert first["changedAt"] == "2026-09-10T14:00:00.000Z"  # converted, no ConvertedDate: LastModifiedDate
    assert statuses[2]["reason"] == "Closed - Not Converted"
    assert report.unmapped == [] and first["crmContactId"] == "0035g00000DANA01AAA"


def test_salesforce_lead_default_picklist_and_unknown_status_is_unmappable() -> None:
    data = (b"Id,Status,CreatedDate\n00Q1,Open - Not Contacted,2026-09-01T09:00:00.000Z\n"
            b"00Q2,Nurture,2026-09-01T09:00:00.000Z\n")
    rows, _, _ = mapped("salesforce-lead", data)
    assert orjson.loads(rows[1].value)["status"] == "new"
    assert rows[2].error is not None and rows[2].error.reasons[0].path == "$.Status"


def test_variant_salesforce_opportunities() -> None:
    out, _, _ = variant("salesforce-opportunity")
    assert [(e["opportunityId"], e["action"], e.get("stage"), e["changedAt"]) for e in out] == [
        ("0065g00000OPP001AAA", "created", None, "2026-09-12T10:00:00.000Z"),
        ("0065g00000OPP001AAA", "closed_won", "Closed Won", "2026-10-20T00:00:00.000Z"),
        ("0065g00000OPP002AAA", "created", None, "2026-10-01T10:00:00.000Z"),
        ("0065g00000OPP002AAA", "stage_changed", "Proposal/Price Quote", "2026-10-05T12:00:00.000Z"),
    ]
    assert [(e.get("amount"), e.get("currency")) for e in out] == [
        (None, None), ("48000.00", "EUR"), (None, None), ("12000.00", "EUR")]
    assert {e["ownerId"] for e in out} == {"0055g00000AE0001AAA"}


def test_salesforce_closed_lost_by_stage_name_without_close_date() -> None:
    data = b"Id,AccountId,StageName,CloseDate,CreatedDate,LastModifiedDate\n006X,001X,Closed Lost,,2026-01-01,2026-02-01\n"
    rows, _, _ = mapped("salesforce-opportunity", data)
    assert [orjson.loads(r.value)["action"] for r in rows] == ["created", "closed_lost"]


def test_variant_salesforce_tasks_with_short_form_reps() -> None:
    ctx = Context(reps=Reps.model_validate({"0055g00000SDR001AAA": "SDR", "0055g00000AE0001AAA": "AE"}))
    out, report, ctx = variant("salesforce-task", ctx)
    assert [(e["channel"], e["direction"], e["repRole"], e.get("outcome"), e.get("durationSeconds"))
            for e in out] == [("call", "outbound", "SDR", "other", "540"),  # free text outside the map
                              ("email", "outbound", "AE", None, None),
                              ("call", "outbound", "other", "voicemail", "35")]  # unlisted owner: other
    assert out[0]["crmContactId"] == "0035g00000DANA01AAA" and out[0]["subject"] == "Discovery call"
    assert ctx.unknown_owners == {"0055g00000XXX999AAA": 1}
    assert report.unmapped == ["ActivityDate"]


@pytest.mark.parametrize("change", [{"TaskSubtype": "Task", "Type": "Other"}, {"Status": "Not Started"},
                                    {"CallType": "Internal"}])
def test_salesforce_tasks_that_are_no_conversation_are_skipped(change: dict[str, str]) -> None:
    row = {"Id": "00T1", "WhoId": "003A", "OwnerId": "005A", "CreatedDate": "2026-09-08T15:00:00.000Z",
           "TaskSubtype": "Call", "Type": "Call", "Status": "Completed", "CallType": "Outbound", **change}
    data = (",".join(row) + "\n" + ",".join(row.values()) + "\n").encode()
    rows, report, _ = mapped("salesforce-task", data)
    assert [r.skip for r in rows] == [True] and report.skipped == 1


def test_salesforce_task_with_a_bad_date_is_unmappable() -> None:
    rows, _, _ = mapped("salesforce-task", b"Id,WhoId,OwnerId,CreatedDate,TaskSubtype\nT1,003A,U1,yesterday,Call\n")
    assert rows[0].error is not None and rows[0].error.reasons[0].path == "$.CreatedDate"


def test_variant_hubspot_deals() -> None:
    out, report, _ = variant("hubspot-deals")
    assert [(e["opportunityId"], e["action"], e.get("stage"), e["changedAt"]) for e in out] == [
        ("hubspot-deal-9001", "created", None, "2026-09-01T10:00:00.000Z"),
        ("hubspot-deal-9001", "closed_won", "Closed Won", "2026-10-15T17:00:00.000Z"),
        ("hubspot-deal-9002", "created", None, "2026-10-02T09:00:00.000Z"),
        ("hubspot-deal-9002", "stage_changed", "Appointment Scheduled", "2026-10-02T09:00:00.000Z"),
    ]
    assert {e["crmAccountId"] for e in out} == {"hubspot-company-5101"} and out[1]["currency"] == "USD"
    assert report.unmapped == []


def test_hubspot_internal_stage_ids_header_case_and_missing_company() -> None:
    data = (b"record id,deal stage,create date,close date,associated company ids\n"
            b"1,closedlost,2026-01-01,2026-02-01,7;8\n1,closedlost,2026-01-01,2026-02-01,\n")
    rows, _, _ = mapped("hubspot-deals", data)
    assert [(orjson.loads(r.value)["action"], orjson.loads(r.value)["crmAccountId"]) for r in rows[:2]] == [
        ("created", "hubspot-company-7"), ("closed_lost", "hubspot-company-7")]
    assert rows[2].error is not None and rows[2].error.reasons[0].path == "$.Associated Company IDs"


def test_variant_hubspot_calls() -> None:
    out, _, _ = variant("hubspot-calls", Context(reps=Reps.model_validate({"Sam Sdr": "SDR"})))
    assert [(e["conversationId"], e["direction"], e["durationSeconds"], e["outcome"], e["repRole"])
            for e in out] == [("hubspot-call-7001", "outbound", 540, "connected", "SDR"),
                              ("hubspot-call-7002", "inbound", 40, "voicemail", "SDR")]
    assert out[0]["startedAt"] == "2026-09-05T14:00:00.000Z" and out[0]["crmAccountId"] == "hubspot-company-5101"


def test_hubspot_call_owner_alias() -> None:
    data = b"Record ID,Activity date,Call owner,Associated Company IDs\n1,2026-10-01T10:00:00Z,Sam Sdr,9\n"
    rows, report, _ = mapped("hubspot-calls", data)
    assert report.unmapped == [] and orjson.loads(rows[0].value)["repId"] == "Sam Sdr"


def test_missing_required_columns_are_all_named() -> None:
    with pytest.raises(MissingColumns, match="'Status', 'CreatedDate'"):
        mapped("salesforce-lead", b"Id,Email\n00Q1,a@b.example\n")


def test_unmappable_row_is_dead_lettered_with_the_export_row_and_its_line() -> None:
    data = b"Id,Status,CreatedDate\n00Q1,Nurture,2026-09-01T09:00:00Z\n"
    [row] = mapped("salesforce-lead", data)[0]
    assert row.line == 2 and orjson.loads(row.value) == {"Id": "00Q1", "Status": "Nurture",
                                                          "CreatedDate": "2026-09-01T09:00:00Z"}
    assert row.error is not None and str(row.error.reasons[0]).startswith("$.Status: lead status 'Nurture'")


def test_definitions_reps_short_form_and_the_shipped_file() -> None:
    base = Path(__file__).parents[2] / "schemas" / "defaults" / "definitions.yaml"
    text = base.read_text()
    shipped = check_definitions(text)
    assert shipped.reps == Reps() and shipped.reps.default_role == "other"
    short = check_definitions(text.replace("reps: {}", "reps:\n  005A: SDR\n  Ada Rep: AE"))
    assert short.reps.owners == {"005A": "SDR", "Ada Rep": "AE"} and short.reps.default_role == "other"
    with pytest.raises(ConfigurationError, match=r"reps\.owners\.005A: Input should be"):
        check_definitions(text.replace("reps: {}", "reps:\n  005A: Closer"))
    ctx = Context(reps=short.reps)
    assert (ctx.role("005A"), ctx.role("nobody")) == ("SDR", "other") and ctx.unknown_owners == {"nobody": 1}
