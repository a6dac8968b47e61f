"""Packs (streams/packs.py): a batch's records for one partition as one Kafka record, read back
as the same records in the same order, each where its pack was read."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import packs
from streams.steps import Record

headers = st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=20)), max_size=3)
records = st.lists(st.tuples(st.one_of(st.none(), st.binary(max_size=30)), st.binary(max_size=300), headers),
                   max_size=60)


def read(sent: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]], offset: int = 100) -> list:
    """The Kafka records ``sent`` as a consumer reads them (consecutive offsets), unpacked."""
    return packs.unpacked([Record("t", key, value, tuple(hs), 3, offset + i, 12.5)
                           for i, (key, value, hs) in enumerate(sent)])


@given(records, st.sampled_from([64, 1024, packs.MAX_PACK_BYTES]))
def test_what_is_packed_is_read_back_in_order(batch, max_bytes) -> None:
    sent = packs.packs(batch, max_bytes=max_bytes)
    got = read(sent)
    assert [(r.key, r.value, list(r.headers or ())) for r in got] == [(k, v, h) for k, v, h in batch]
    assert all(r.topic == "t" and r.partition == 3 and r.timestamp == 12.5 for r in got)
    assert sum(packs.count(hs) for _, _, hs in sent) == len(batch)  # what a batch source weighs


def test_a_pack_holds_a_batch_and_its_records_know_their_place() -> None:
    batch = [(f"id-{i}".encode(), b"v" * 100, [("journeys.route", b"events")]) for i in range(500)]
    sent = packs.packs(batch)
    assert len(sent) == 1 and dict(sent[0][2]) == {packs.PACK_HEADER: b"500"}
    assert sent[0][0] == b"id-0"  # keyed by its first record (partitioned by the sender, per record)
    got = read(sent, offset=7)
    assert [(r.offset, r.index) for r in got[:2]] == [(7, 0), (7, 1)]
    assert repr(got[1]) == "<Item t/3@7#1>"


def test_packs_stay_under_their_size_and_a_big_record_goes_alone_as_it_is() -> None:
    small = [(b"k", b"s" * 1000, None)] * 600  # ≈ 600 kB: three packs of 256 KiB at most
    big = (b"big", b"B" * (packs.MAX_PACK_BYTES + 1), [("h", b"1")])
    sent = packs.packs([*small[:300], big, *small[300:]])
    assert all(len(value) <= packs.MAX_PACK_BYTES + 1024 for key, value, _ in sent if key != b"big")
    assert (b"big", big[1], [("h", b"1")]) in sent  # not a pack: no header, its own bytes
    assert [r.value for r in read(sent)] == [r[1] for r in [*small[:300], big, *small[300:]]]


def test_a_record_that_is_not_a_pack_is_itself() -> None:
    plain = Record("t", b"k", b"{}", (("journeys.route", b"events"),), 0, 5)
    assert packs.unpacked([plain]) == [plain]
    assert packs.count(plain.headers) == 1 and packs.count(None) == 1


@pytest.mark.parametrize("value", [b"\xc1garbage", msgpack.packb({"not": "a list"}), b""])
def test_a_pack_that_cannot_be_read_is_handed_on_as_it_is(value, caplog) -> None:
    broken = Record("t", b"k", value, ((packs.PACK_HEADER, b"2"),), 1, 9)
    assert packs.unpacked([broken]) == [broken]  # the stage's guard dead-letters it
    assert "cannot be read" in caplog.text
