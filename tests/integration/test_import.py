"""``journeys import``: CSV and NDJSON files → inbound topic → worker → chDB; bad rows → dead letters."""

from __future__ import annotations

import json

import orjson
import pytest

pytestmark = pytest.mark.integration

CSV = """type,conversationId,channel,repId,repRole,direction,startedAt,durationSeconds,outcome,contactEmails,crmAccountId
conversation,call-1,call,rep-1,SDR,outbound,2026-10-01T10:00:00Z,540,connected,ann@globex.example;bo@globex.example,globex
conversation,call-2,meeting,rep-2,AE,outbound,2026-10-02T10:00:00Z,,meeting_held,,globex
conversation,call-3,fax,rep-1,SDR,outbound,2026-10-03T10:00:00Z,,,,globex
conversation,call-4,call,rep-1,SDR,outbound,2026-10-03T11:00:00Z,ninety,,,globex
"""


def ndjson_lines() -> list[bytes]:
    opportunity = {"type": "opportunity", "opportunityId": "opp-1", "crmAccountId": "globex", "action": "created",
                   "amount": "12000.50", "currency": "USD", "changedAt": "2026-10-05T09:00:00Z"}
    lead = {"type": "lead_status", "leadId": "lead-1", "status": "mql", "changedAt": "2026-10-04T09:00:00Z",
            "crmAccountId": "globex"}
    return [orjson.dumps(opportunity), orjson.dumps(lead),
            orjson.dumps({**lead, "status": "rejected"}),  # a rejected lead needs a reason
            b'{"type": "lead_status", oops}',
            orjson.dumps({**lead, "leadId": "lead-2", "owner": "x"})]  # strict: unknown field


def test_import_csv_and_ndjson(tracker_factory, tmp_path) -> None:
    tracker = tracker_factory().start()
    csv_path = tmp_path / "calls.csv"
    csv_path.write_text(CSV)
    ndjson_path = tmp_path / "crm.ndjson"
    ndjson_path.write_bytes(b"\n".join(ndjson_lines()) + b"\n")

    out = tracker.journeys("import", str(csv_path), check=False)
    assert out.returncode == 1, out.stderr
    assert "accepted" in out.stdout and "rejected" in out.stdout
    assert "$.channel: Input should be" in out.stdout
    out = tracker.journeys("import", str(ndjson_path), check=False)
    assert out.returncode == 1, out.stderr

    stats = tracker.wait_for_stored(events=4, dead_letters=5)
    assert stats["events"] == 4 and stats["dead_letters"] == 5
    rows = json.loads(tracker.journeys("timeline", "globex", "--format", "json").stdout)
    assert {r["event_type"] for r in rows} == {"conversation", "opportunity", "lead_status"}

    dead = json.loads(tracker.journeys("dlq", "list", "--format", "json").stdout)
    assert {d["source_kind"] for d in dead} == {"import"}
    by_source = {d["source"]: d["reasons"] for d in dead}
    assert set(by_source) == {"import:calls.csv:4", "import:calls.csv:5", "import:crm.ndjson:3",
                              "import:crm.ndjson:4", "import:crm.ndjson:5"}
    assert by_source["import:calls.csv:5"] == ["$.durationSeconds: Input should be a valid integer, "
                                               "unable to parse string as an integer"]
    assert by_source["import:crm.ndjson:5"] == ["$.owner: unknown field (this event type is strict)"]
    assert by_source["import:crm.ndjson:4"][0].startswith("$: malformed JSON")


def test_import_all_good_exits_zero(tracker_factory, tmp_path) -> None:
    tracker = tracker_factory()  # no worker needed: only the broker
    path = tmp_path / "good.jsonl"
    path.write_bytes(ndjson_lines()[0] + b"\n")
    out = tracker.journeys("import", str(path), check=False)
    assert out.returncode == 0, out.stderr + out.stdout


def _topic_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes, list]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        got = [(r.key, r.value, [(k, v) for k, v in r.headers if k != "journeys.dlq.rejected_at"])
               for r in consumer]
    finally:
        consumer.close()
    return sorted(got, key=lambda r: (r[1], r[2]))


def test_a_large_file_is_validated_in_a_second_process_with_the_same_records(kafka_bootstrap, tmp_path,
                                                                             monkeypatch) -> None:
    """``journeys import`` validates big files in a second process (streams.cli.importing._checked):
    the records produced and dead-lettered are exactly those of the one-process path."""
    import uuid

    from streams import topics as t
    from streams.admin import ensure_topics
    from streams.cli import importing
    from streams.settings import Settings

    monkeypatch.setattr(importing, "_CHUNK", 7)  # many chunks, some in flight at once
    lines = [line for n in range(12) for line in ndjson_lines()
             for line in [line.replace(b'"lead-1"', f'"lead-{n}"'.encode())]]
    path = tmp_path / "big.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    got = {}
    for parallel in (False, True):
        prefix = f"imp{uuid.uuid4().hex[:6]}-"
        settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix)
        ensure_topics(settings)
        summary = importing.run_import(settings, path, "ndjson", parallel=parallel)
        got[parallel] = (summary.accepted, summary.rejected, dict(summary.reasons),
                         _topic_records(kafka_bootstrap, t.name(t.INBOUND, prefix)),
                         _topic_records(kafka_bootstrap, t.name(t.INBOUND_DLQ, prefix)))
    assert got[True][:2] == (24, 36)
    assert got[True] == got[False]
