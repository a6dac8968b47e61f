"""``because``: a recompute the identity graph caused names the merge or unmerge in the rule of
every stage change it entered, never in one it only re-stated, and never twice."""

from __future__ import annotations

from streams.rules.journey import MERGE_REASON, UNMERGE_REASON, JourneyOutcome, StageChange, because


def change(change_id: str, rule: str) -> StageChange:
    return StageChange(change_id=change_id, account_id="acme", from_stage="", to_stage="engaged", at_ms=1,
                       rule=rule, definitions_version="v1", event_id="e1", contact_id="", source="")


def test_every_change_of_a_recompute_says_which_identity_change_caused_it() -> None:
    out = because(JourneyOutcome(stage_changes=[change("c1", "score >= 10"), change("c2", "opportunity")],
                                 retracted=["c0"], score={"total": 3.0}), UNMERGE_REASON)
    assert [c.rule for c in out.stage_changes] == ["identity unmerge: score >= 10", "identity unmerge: opportunity"]
    assert out.retracted == ["c0"] and out.score == {"total": 3.0}


def test_changes_the_journey_already_had_keep_their_own_rule() -> None:
    out = because(JourneyOutcome(stage_changes=[change("old", "score >= 10"), change("new", "score >= 10")]),
                  MERGE_REASON, before={"old"})
    assert [c.rule for c in out.stage_changes] == ["score >= 10", "identity merge: score >= 10"]


def test_a_rule_is_labelled_once_and_no_reason_changes_nothing() -> None:
    once = because(JourneyOutcome(stage_changes=[change("c1", "score >= 10")]), MERGE_REASON)
    twice = because(once, MERGE_REASON)
    assert [c.rule for c in twice.stage_changes] == ["identity merge: score >= 10"]
    plain = JourneyOutcome(stage_changes=[change("c1", "score >= 10")])
    assert because(plain, "") is plain
