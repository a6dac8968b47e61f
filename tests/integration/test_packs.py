"""Packs on the real stack (streams/packs.py): the stages send each internal hop's records for a
partition as one Kafka record, and the answer is the one records sent one by one give.

The same generated events (identities stitched across devices, persons and accounts) go through
two workers side by side, one packing and one not (``JOURNEYS_PACK_RECORDS=false``), each with
its own topics and store: both store every event once and resolve them to the same accounts,
while the packing worker's internal topics hold a few Kafka records per batch. A worker reads
both kinds on one topic (a rolling upgrade).
"""

from __future__ import annotations

import csv
import io
from itertools import islice

import orjson
import pytest

from bench.synth import SynthConfig, generate
from streams import packs
from tests.support import events as ev
from tests.support.topics import read_all

pytestmark = pytest.mark.integration

EVENTS = 600
HOPS = ("journeys-receipts-v1", "journeys-events-v1", "journeys-persons-v1", "journeys-timeline-v1",
        "journeys-identity-links-v1")


def raw(tracker, name: str) -> list:
    """Every Kafka record of the tracker's topic ``name``, as stored on the broker."""
    return read_all(tracker.bootstrap, tracker.topic(name), int(tracker.env["JOURNEYS_TOPIC_PARTITIONS"]))


def resolved(tracker) -> list[tuple[str, str]]:
    """(event id, accounts) of every stored event, as the reports read them."""
    out = tracker.journeys("sql", "SELECT event_id, arrayStringConcat(accounts, ',') AS a FROM event_resolution "
                           "FINAL ORDER BY event_id", "--format", "csv").stdout
    return [(row[0], row[1]) for row in csv.reader(io.StringIO(out)) if row and row[0] != "event_id"]


def test_packed_hops_store_what_unpacked_hops_store(tracker_factory, tmp_path) -> None:
    lines = [orjson.dumps(s.obj) for s in islice(generate(SynthConfig(events=EVENTS, seed=5)), EVENTS)]
    packing = tracker_factory(JOURNEYS_PACK_RECORDS="true")
    plain = tracker_factory(JOURNEYS_TOPIC_PREFIX=packing.prefix + "plain-", JOURNEYS_APP_ID=packing.prefix + "plain",
                            JOURNEYS_CLICKHOUSE_URL=f"chdb://{tmp_path / 'plain-store'}", JOURNEYS_PACK_RECORDS="false")
    for tracker in (packing, plain):
        tracker.start()
        tracker.produce(lines)
    for tracker in (packing, plain):
        tracker.wait_for_stored(events=EVENTS, timeout=180)
    answer = resolved(packing)
    assert len(answer) == EVENTS and sum(1 for _, accounts in answer if accounts) > EVENTS // 2
    assert answer == resolved(plain)

    for name in HOPS:
        kafka, one_by_one = raw(packing, name), raw(plain, name)
        assert not any(packs.count(r.headers) > 1 for r in one_by_one), name
        inside = packs.unpacked(kafka)
        assert len(kafka) * 5 <= len(inside), (name, len(kafka), len(inside))  # fewer Kafka records
        if name == "journeys-receipts-v1":  # one per event (the other hops' replays depend on the batches)
            assert len(inside) == len(one_by_one) == EVENTS
    receipts = packs.unpacked(raw(packing, "journeys-receipts-v1"))  # each record its own key and headers
    assert sorted(r.key for r in receipts) == sorted(r.key for r in raw(plain, "journeys-receipts-v1"))
    assert all(dict(r.headers)["journeys.receipt"].startswith(packing.topic("journeys-inbound-v1").encode())
               for r in receipts)


def test_a_worker_reads_packs_and_single_records_on_one_topic(tracker_factory) -> None:
    first = [ev.page(h, anon=f"mix-{h % 4}") for h in range(40)] + [ev.identify(41, anon="mix-1", user="mia")]
    tracker = tracker_factory(JOURNEYS_PACK_RECORDS="false").start()
    tracker.produce(ev.encode(first))
    tracker.wait_for_stored(events=len(first))
    tracker.stop()
    again = tracker_factory(JOURNEYS_PACK_RECORDS="true").start()  # the same topics, group and store; packing now
    later = [ev.page(50 + h, anon=f"mix-{h % 4}") for h in range(40)] + [ev.identify(91, anon="mix-2", user="max")]
    again.produce(ev.encode(later))
    again.wait_for_stored(events=len(first) + len(later))
    kinds = {packs.count(r.headers) > 1 for r in raw(again, "journeys-events-v1")}
    assert kinds == {True, False}  # both kinds on the topic, every event stored once
    stored = again.journeys("sql", "SELECT count(), uniqExact(event_id) FROM timeline FINAL", "--format", "csv").stdout
    assert stored.split()[-1] == f"{len(first) + len(later)},{len(first) + len(later)}"
