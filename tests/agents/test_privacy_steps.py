"""``journeys privacy forget`` in the stream stages (in memory): the control records the store
process sends drop the device's and the person's state and take the person out of the
account's journey; a later event of the same person starts afresh."""

from __future__ import annotations

from schemas.definitions import load
from streams import topics as t
from streams.steps.journey import tick_value
from streams.steps.memory import MemoryRunner
from tests.support import events as ev

FORGET = {t.CONTROL_HEADER: t.CONTROL_FORGET}


def _journey_mentions(state: dict, ids: set[str]) -> bool:
    text = str(state)
    return any(i in text for i in ids)


def test_forget_control_records_drop_device_person_and_contact_state() -> None:
    runner = MemoryRunner(load())
    runner.feed(ev.encode([
        ev.page(1, anon="dev-1"),
        ev.identify(2, "dev-1", "u-1", email="ann@acme.com", title="VP Engineering"),
        ev.page(3, user="u-1", path="/pricing"),
        ev.identify(4, "dev-2", "u-2", email="bob@acme.com"),
    ]))
    runner.run()
    devices, persons, journeys = (runner.table(n) for n in ("identity-devices", "identity-persons", "journeys"))
    assert {"dev-1", "dev-2"} <= set(devices) and {"u-1", "u-2"} <= set(persons)
    [account] = [a for a, s in journeys.items() if "u-1" in s["contacts"]]
    assert "u-2" in journeys[account]["contacts"]

    # what the store process sends for the person u-1 (ids found in the store)
    ids = ["ann@acme.com", "u-1"]
    runner.produce(runner.names.events, b"dev-1", b"", FORGET)
    for person in ids:
        runner.produce(runner.names.persons, person.encode(), b"", FORGET)
    runner.produce(runner.names.journey_ticks, account.encode(), tick_value(account, 10**13, ids))
    runner.run()

    assert "dev-1" not in devices and "u-1" not in persons
    assert "dev-2" in devices and "u-2" in persons  # the other person is untouched
    journey = journeys[account]
    assert not _journey_mentions(journey, set(ids)), "the journey still names the forgotten person"
    # the account's journey stays: all four events (the anonymous page too: re-sent by the device
    # before the person knew an account, it reached the journey once the identify named one)
    assert "u-2" in journey["contacts"] and len(journey["history"]) == 4
    assert not runner.records(runner.names.inbound_dlq), "a control record was dead-lettered"

    # a later event of the same person starts a fresh person (nothing remembered)
    runner.feed(ev.encode([ev.identify(5, "dev-9", "u-1", email="ann@acme.com")]))
    runner.run()
    assert "u-1" in persons and "dev-9" in devices and "dev-1" not in devices
    assert "dev-1" not in str(persons["u-1"])
