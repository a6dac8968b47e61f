"""The steps' small shared helpers (streams.steps): the forget control record, the dead letter
of a failing record, identity links on the outbox, and an alert as the record the store keeps."""

from __future__ import annotations

import orjson

from schemas.identity import IdentityLink
from streams import topics as t
from streams.rules.alerts import Alert
from streams.steps import Outbox, Record, dead_letter, is_forget
from streams.steps.identity import add_links
from streams.steps.journey import alert_record


def test_is_forget_reads_the_control_header_in_either_header_form() -> None:
    assert is_forget(Record("x", b"k", None, {t.CONTROL_HEADER: t.CONTROL_FORGET}))
    assert is_forget(Record("x", b"k", None, [("other", b"1"), (t.CONTROL_HEADER, t.CONTROL_FORGET)]))
    assert not is_forget(Record("x", b"k", b"{}", None))
    assert not is_forget(Record("x", b"k", b"{}", {t.CONTROL_HEADER: b"something-else"}))


def test_dead_letter_keeps_the_original_bytes_where_and_why() -> None:
    out = Outbox()
    record = Record("journeys-timeline-v1", b"acct", b'{"broken": true}', partition=2, offset=41)
    dead_letter(out, "journeys-inbound-v1-dlq", record, "journey", ValueError("no stage for this"))
    ((topic, key, value, headers),) = out.items
    assert (topic, key, value) == ("journeys-inbound-v1-dlq", b"acct", b'{"broken": true}')
    h = dict(headers or [])
    assert h[t.DLQ_HEADER_SOURCE] == b"journeys-timeline-v1/2@41" and h[t.DLQ_HEADER_STAGE] == b"journey"
    assert "ValueError: no stage for this" in h[t.DLQ_HEADER_REASONS].decode()


def test_add_links_keys_each_link_by_kind_and_source_with_one_version() -> None:
    out = Outbox()
    links = [IdentityLink(kind="device", src="d1", dsts=("u1",), valid_from_ms=(0,), valid_to_ms=(10,), rules=("id",)),
             IdentityLink(kind="person_alias", src="a@b.co", dsts=("u1",), valid_from_ms=(0,), valid_to_ms=(10,),
                          rules=("alias",))]
    add_links(out, "links", links)
    assert [(topic, key) for topic, key, _, _ in out.items] == [("links", b"device:d1"), ("links", b"person_alias:a@b.co")]
    versions = {orjson.loads(value)["version"] for _, _, value, _ in out.items}
    assert len(versions) == 1 and versions.pop() > 0  # one processing-time version for the batch's links


def test_alert_record_carries_the_path_and_a_link_to_the_account() -> None:
    alert = Alert("al-1", "channel_bounce", "acme-corp", 1_700_000_000_000, "rep-ae", "bounced", "v3",
                  path=((1_700_000_000_000, "digital", "web", "/pricing"),))
    record = alert_record(alert, "http://tracker.example/")
    assert record.link == "http://tracker.example/ui/account/acme-corp"
    assert (record.rule, record.account_id, record.owner, record.definitions_version) == (
        "channel_bounce", "acme-corp", "rep-ae", "v3")
    assert [(p.side, p.channel, p.name) for p in record.path] == [("digital", "web", "/pricing")]
    assert record.at.tzinfo is not None and int(record.at.timestamp() * 1000) == 1_700_000_000_000
