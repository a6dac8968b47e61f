"""``journeys import --preset``: a Salesforce Data Loader set and a HubSpot export set, as
exported (tests/fixtures/crm/), through the real CLI, broker, worker and chDB; each account's
journey (timeline rows and stage history) is checked through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from schemas.definitions import DEFAULT_PATH

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "crm"
ACME = "001Dn000004AcmeIAA"
HOOLI = "hubspot-company-7001"
SALESFORCE = [("salesforce-account", "Account"), ("salesforce-contact", "Contact"), ("salesforce-lead", "Lead"),
              ("salesforce-lead-history", "LeadHistory"), ("salesforce-opportunity", "Opportunity"),
              ("salesforce-opportunity-history", "OpportunityHistory"), ("salesforce-task", "Task"),
              ("salesforce-event", "Event")]
HUBSPOT = [("hubspot-companies", "companies"), ("hubspot-contacts", "contacts"), ("hubspot-deals", "deals"),
           ("hubspot-calls", "calls"), ("hubspot-meetings", "meetings"), ("hubspot-emails", "emails")]


def accepted(stdout: str) -> int:
    match = re.search(r"accepted\D+(\d+)", stdout)
    assert match, stdout
    return int(match.group(1))


def test_salesforce_and_hubspot_exports_become_checked_journeys(tracker_factory, tmp_path) -> None:
    defs = yaml.safe_load(DEFAULT_PATH.read_text())
    defs["reps"] = {"default_role": "AE", "owners": {"005Dn000001SdrAIAA": "SDR", "005Dn000001AeBoIAA": "AE",
                                                     "Erlich Bachman": "SDR", "Richard Hendricks": "AE"}}
    path = tmp_path / "defs.yaml"
    path.write_text(yaml.safe_dump(defs))
    tracker = tracker_factory(JOURNEYS_DEFINITIONS=str(path)).start()

    total = 0
    for preset, name in SALESFORCE:
        out = tracker.journeys("import", "--preset", preset, "--currency", "EUR",
                               str(FIXTURES / "salesforce" / f"{name}.csv"), check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "rejected (dead-lettered)" in out.stdout and "unmapped columns" in out.stdout
        total += accepted(out.stdout)
    for preset, name in HUBSPOT:
        out = tracker.journeys("import", "--preset", preset, "--currency", "USD",
                               str(FIXTURES / "hubspot" / f"{name}.csv"), check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        total += accepted(out.stdout)
    calls = tracker.journeys("import", "--preset", "hubspot-calls", str(FIXTURES / "hubspot" / "calls.csv"))
    assert re.search(r"Dinesh Chugtai\D+1", calls.stdout), calls.stdout  # owner not in reps: default role
    tracker.wait_for_stored(events=total, timeout=150)

    def stages(account: str) -> list[str]:
        rows = json.loads(tracker.journeys("stages", account, "--format", "json").stdout or "[]")
        return [r["to_stage"] for r in sorted(rows, key=lambda r: r["at"])]

    tracker.wait_until(lambda: stages(ACME)[-1:] == ["won"] and stages(HOOLI)[-1:] == ["won"], 120,
                       "both accounts' journeys to end won")

    acme = json.loads(tracker.journeys("timeline", ACME, "--format", "json").stdout)
    conversations = {r["event_id"]: r for r in acme if r["event_type"] == "conversation"}
    assert {(r["channel"], r["rep_role"]) for r in conversations.values()} >= {
        ("call", "SDR"), ("sales_email", "AE"), ("meeting", "AE")}
    assert {r["event_type"] for r in acme} >= {"conversation", "lead_status", "opportunity", "group", "identify"}
    assert any(r["event_type"] == "lead_status" and r["name"] == "lead accepted" for r in acme)
    assert {r["name"] for r in acme if r["event_type"] == "opportunity"} == {
        "opportunity created", "opportunity stage_changed", "opportunity closed_won"}
    acme_stages = stages(ACME)
    assert {"sal", "sql", "opportunity", "won"} <= set(acme_stages), acme_stages
    assert acme_stages.index("opportunity") < acme_stages.index("won")

    hooli = json.loads(tracker.journeys("timeline", HOOLI, "--format", "json").stdout)
    assert {r["channel"] for r in hooli if r["event_type"] == "conversation"} == {"call", "meeting", "sales_email"}
    assert {r["contact_id"] for r in hooli if r["event_type"] == "conversation"} >= {"hubspot-contact-51"}
    hooli_stages = stages(HOOLI)
    assert {"mql", "sql", "opportunity", "won"} <= set(hooli_stages), hooli_stages
    # nothing from these clean exports was dead-lettered
    dead = json.loads(tracker.journeys("dlq", "list", "--format", "json").stdout or "[]")
    assert dead == []


def test_a_preset_refuses_a_file_without_its_required_columns(tracker_factory, tmp_path) -> None:
    tracker = tracker_factory()  # the broker only
    path = tmp_path / "Opportunity.csv"
    path.write_text('"Id","Name","StageName"\n"006A","x","Closed Won"\n')
    out = tracker.journeys("import", "--preset", "salesforce-opportunity", str(path), check=False)
    assert out.returncode == 2
    assert "the file has no column 'AccountId', 'CloseDate', 'CreatedDate' (required)" in out.stderr


DANA_LEAD, DANA_CONTACT = "00QDn00000DanaLIAA", "003Dn00000DanaCIAA"


def test_a_converted_lead_and_its_contact_are_one_person_in_one_account(tracker_factory) -> None:
    """Dana was a lead (an SDR's call logged on the lead, its status history), then converted into
    a contact of Acme: the Lead export's ``ConvertedContactId`` makes every one of her rows the
    contact's person, in Acme's timeline — not a second person beside the contact."""
    tracker = tracker_factory().start()
    total = 0
    for preset, name in (("salesforce-lead", "Lead"), ("salesforce-lead-history", "LeadHistory"),
                         ("salesforce-contact", "Contact"), ("salesforce-task", "Task")):
        out = tracker.journeys("import", "--preset", preset, str(FIXTURES / "salesforce" / f"{name}.csv"))
        assert "ConvertedContactId" not in out.stdout  # read, not listed as unmapped
        total += accepted(out.stdout)
    tracker.wait_for_stored(events=total, timeout=150)

    def dana() -> list[dict]:
        acme = json.loads(tracker.journeys("timeline", ACME, "--format", "json").stdout)
        return [r for r in acme if {r["user_id"], r["contact_id"]} & {DANA_LEAD, DANA_CONTACT}]

    def links() -> list[dict]:
        return json.loads(tracker.journeys("identity", "show", DANA_LEAD, "--format", "json").stdout or "[]")

    # the call the SDR logged on the lead before conversion is in Acme's timeline too
    tracker.wait_until(lambda: any(r["event_type"] == "conversation" and r["contact_id"] == DANA_LEAD
                                   for r in dana()), 60, "the lead's call in Acme's timeline")
    # the Lead row's identify and current status, the history's status changes, the Contact row's
    # identify: one person, the contact
    own = [r for r in dana() if r["event_type"] in ("identify", "lead_status")]
    assert {r["name"] for r in own if r["event_type"] == "lead_status"} >= {"lead new", "lead accepted", "lead sql"}
    assert len([r for r in own if r["event_type"] == "identify"]) == 2, own  # the lead's and the contact's
    assert {r["person_id"] for r in own} == {DANA_CONTACT}, own
    # and the lead id is an alias of the contact (query-time resolution goes through it)
    tracker.wait_until(lambda: any(link["kind"] == "person_alias" and link["src"] == DANA_LEAD
                                   and link["dst"] == DANA_CONTACT for link in links()), 60, "the alias link")


def test_opportunity_field_history_alone_builds_the_opportunity_journey(tracker_factory) -> None:
    """The one Salesforce preset the two-CRM test leaves out (its rows are the same facts as
    OpportunityHistory's, deduplicated by id there): on its own, its StageName rows make Acme's
    opportunity journey; the Amount row is skipped."""
    tracker = tracker_factory().start()
    out = tracker.journeys("import", "--preset", "salesforce-opportunity-field-history",
                           str(FIXTURES / "salesforce" / "OpportunityFieldHistory.csv"))
    assert accepted(out.stdout) == 3 and re.search(r"rows skipped \(no buyer touch\)\D+1", out.stdout), out.stdout
    assert re.search(r"unmapped columns \(not read\)\D+1", out.stdout) and "DataType" in out.stdout, out.stdout
    tracker.wait_for_stored(events=3)

    def stages() -> list[str]:
        rows = json.loads(tracker.journeys("stages", ACME, "--format", "json").stdout or "[]")
        return [r["to_stage"] for r in sorted(rows, key=lambda r: r["at"])]

    tracker.wait_until(lambda: stages()[-1:] == ["won"], 60, "Acme's journey to end won")
    assert stages().index("opportunity") < stages().index("won"), stages()
    acme = json.loads(tracker.journeys("timeline", ACME, "--format", "json").stdout)
    assert sorted(r["name"] for r in acme) == [
        "opportunity closed_won", "opportunity created", "opportunity stage_changed"]
