"""``journeys import --preset``: a Salesforce lead + opportunity + task export set for one account
(the h2-crm fixtures: another variant of those exports), with the short ``reps:`` form in the
definitions, through the real broker, worker and chDB; the journey is read back through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.definitions import DEFAULT_PATH

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "crm"
ACME = "0015g00000ACME01AAA"


def test_salesforce_exports_build_the_journey(tracker_factory, tmp_path) -> None:
    definitions = tmp_path / "definitions.yaml"
    definitions.write_text(DEFAULT_PATH.read_text().replace(
        "reps: {}", "reps:\n  0055g00000SDR001AAA: SDR\n  0055g00000AE0001AAA: AE"))
    tracker = tracker_factory(JOURNEYS_DEFINITIONS=str(definitions)).start()

    lead = tracker.journeys("import", "--preset", "salesforce-lead", str(FIXTURES / "salesforce_lead.csv"))
    assert "unmapped columns" in lead.stdout and "ConvertedContactId" not in lead.stdout  # read: Dana converted
    tracker.journeys("import", "--preset", "salesforce-opportunity", str(FIXTURES / "salesforce_opportunity.csv"))
    task = tracker.journeys("import", "--preset", "salesforce-task", str(FIXTURES / "salesforce_task.csv"))
    assert "0055g00000XXX999AAA" in task.stdout  # an owner the reps map does not know: reported
    bad = tmp_path / "leads.csv"
    bad.write_text("Id,Status,CreatedDate,ConvertedAccountId\n00Q9,Nurture,2026-09-01T00:00:00Z,"
                   f"{ACME}\n")
    out = tracker.journeys("import", "--preset", "salesforce-lead", str(bad), check=False)
    assert out.returncode == 1 and "$.Status: lead status 'Nurture' has no mapping" in out.stdout
    missing = tracker.journeys("import", "--preset", "salesforce-task", str(FIXTURES / "salesforce_lead.csv"),
                               check=False)
    assert missing.returncode == 2 and "WhoId" in missing.stderr

    # a lead: identify + lead_status; the converted one also alias (lead → contact) + group (lead → account)
    tracker.wait_for_stored(events=3 * 2 + 2 + 4 + 3, dead_letters=1)
    rows = json.loads(tracker.journeys("timeline", ACME, "--format", "json").stdout)
    by_type: dict[str, list[dict]] = {}
    for row in rows:
        by_type.setdefault(row["event_type"], []).append(row)
    assert len(by_type["opportunity"]) == 4 and len(by_type["conversation"]) == 3
    assert len(by_type["lead_status"]) >= 1
    dead = json.loads(tracker.journeys("dlq", "list", "--format", "json").stdout)
    assert [d["source"] for d in dead] == ["import:leads.csv:2"]

    def stage_names() -> list[str]:
        out = tracker.journeys("stages", ACME, "--format", "json").stdout
        return [r["to_stage"] for r in json.loads(out)]

    tracker.wait_until(lambda: "won" in stage_names(), 60, "the won stage")
    stages = stage_names()
    assert {"sql", "opportunity", "won"} <= set(stages), stages
    assert stages.index("opportunity") < stages.index("won")
