"""The ack guard (streams/ack_guard.py, bug B7): a record Faust skipped without handing it to an
agent is never marked committable; a handled one is, as before."""

from __future__ import annotations

import faust
from faust.types.tuples import Message

from streams import ack_guard

TOPIC = "ack-guard-in"


def _consumer():
    ack_guard.install()
    app = faust.App("ack-guard-test", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    consumer = app.consumer  # built, never started: no broker needed
    app.topics._acking_topics.add(TOPIC)  # as the conductor does for an agent's topic
    return consumer


def _message(offset: int, tracked: bool) -> Message:
    message = Message(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None)
    message.tracked = tracked
    return message


def test_a_skipped_record_is_not_committable_and_a_handled_one_is():
    consumer = _consumer()
    before = ack_guard.refused
    handled, skipped, after = _message(10, tracked=True), _message(11, tracked=False), _message(12, tracked=True)
    for m in (handled, after):
        consumer.track_message(m)

    assert consumer.ack(handled) is True
    assert consumer.ack(skipped) is False  # skipped during a rebalance: refused
    assert consumer.ack(after) is True
    assert ack_guard.refused == before + 1
    assert skipped.acked  # nothing waits for it in this process
    tp = handled.tp
    assert sorted(consumer._acked[tp]) == [10, 12]
    # The commit stops before the gap: the skipped record is read again after the rebalance.
    assert consumer._new_offset(tp) == 11


def test_install_is_idempotent():
    ack_guard.install()
    ack_guard.install()
    assert faust.transport.consumer.Consumer.ack is ack_guard._guarded_ack


def test_records_of_non_acking_topics_are_untouched():
    consumer = _consumer()
    message = Message("other-topic", 0, 5, 0.0, 0, None, b"k", b"v", None)
    assert consumer.ack(message) is False  # Faust's own rule: no acks for this topic
    assert message.acked
