"""Contract 2: stages and the default lifecycle policy, on the aggregate alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from lifecycle.domain.errors import InvalidPolicy, InvalidStageChange
from lifecycle.domain.policy import Policy
from lifecycle.domain.relationship import Relationship
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Stage
from tests.builders import DAY_ZERO, relationship_after, touchpoint

POLICY = Policy.default()


def changes(relationship: Relationship) -> list[tuple[str, str, str, int]]:
    """(from, to, rule, cycle) of every stage change recorded so far."""
    return [
        (e.from_stage, e.to_stage, e.rule, e.cycle)
        for e in relationship.pending_events
        if isinstance(e, Relationship.StageChanged)
    ]


def test_a_relationship_starts_in_exploration_with_its_first_touchpoint() -> None:
    relationship = relationship_after(touchpoint("marketing"))
    assert relationship.stage is Stage.EXPLORATION
    assert relationship.cycle == 1
    assert [type(e).__name__ for e in relationship.pending_events] == [
        "RelationshipStarted",
        "TouchpointRecorded",
    ]


def test_first_purchase_moves_exploration_to_awareness() -> None:
    relationship = relationship_after(touchpoint("marketing"), touchpoint("purchase", 1))
    assert changes(relationship) == [("exploration", "awareness", "first-purchase", 1)]


def test_three_engagement_touchpoints_move_exploration_to_awareness() -> None:
    relationship = relationship_after(
        touchpoint("inquiry"), touchpoint("trial", 1), touchpoint("community", 2)
    )
    assert changes(relationship) == [("exploration", "awareness", "engaged", 1)]


def test_two_engagement_touchpoints_and_marketing_are_not_engagement_enough() -> None:
    relationship = relationship_after(
        touchpoint("inquiry"), touchpoint("sales_contact", 1), touchpoint("marketing", 2)
    )
    assert relationship.stage is Stage.EXPLORATION


def test_first_purchase_wins_over_engaged_when_both_could_fire() -> None:
    relationship = relationship_after(
        touchpoint("inquiry"), touchpoint("trial", 1), touchpoint("purchase", 2)
    )
    relationship.record_touchpoint(touchpoint("community", 3), POLICY)
    assert changes(relationship)[0][2] == "first-purchase"


def test_purchases_on_two_distinct_utc_days_move_awareness_to_expansion() -> None:
    relationship = relationship_after(touchpoint("purchase", 0), touchpoint("purchase", 1))
    assert changes(relationship)[-1] == ("awareness", "expansion", "repeat-purchase", 1)


def test_two_purchases_on_the_same_utc_day_are_not_a_repeat_purchase() -> None:
    first = touchpoint("purchase", 0)  # 12:00 UTC
    same_day_later = touchpoint("purchase", 0.4)  # 21:36 UTC, the same day
    relationship = relationship_after(first, same_day_later)
    assert relationship.stage is Stage.AWARENESS


def test_calendar_days_are_judged_in_utc_not_in_the_senders_offset() -> None:
    from datetime import timezone

    evening_utc = DAY_ZERO.replace(hour=22)
    next_local_day = evening_utc.astimezone(timezone(timedelta(hours=5)))  # local date is +1
    first = replace(touchpoint("purchase"), occurred_at=DAY_ZERO.replace(hour=9))
    second = replace(touchpoint("purchase"), occurred_at=next_local_day)
    assert relationship_after(first, second).stage is Stage.AWARENESS


def test_a_referral_moves_awareness_to_expansion() -> None:
    relationship = relationship_after(touchpoint("purchase"), touchpoint("referral", 3))
    assert changes(relationship)[-1] == ("awareness", "expansion", "referral", 1)


def test_one_touchpoint_can_cause_two_recorded_stage_changes() -> None:
    relationship = relationship_after(touchpoint("referral"), touchpoint("purchase", 1))
    triggered = [e for e in relationship.pending_events if isinstance(e, Relationship.StageChanged)]
    assert [(e.rule, e.to_stage) for e in triggered] == [
        ("first-purchase", "awareness"),
        ("referral", "expansion"),
    ]
    assert {e.triggered_by for e in triggered} == {relationship_after_event_id(relationship)}


def relationship_after_event_id(relationship: Relationship) -> str:
    recorded = [
        e for e in relationship.pending_events if isinstance(e, Relationship.TouchpointRecorded)
    ]
    return str(recorded[-1].event_id)


def loyal_purchases(*days: float) -> list[Touchpoint]:
    return [touchpoint("purchase", day) for day in days]


def test_purchases_on_four_days_spanning_ninety_days_move_expansion_to_commitment() -> None:
    relationship = relationship_after(*loyal_purchases(0, 30, 60, 90))
    assert changes(relationship)[-1] == ("expansion", "commitment", "loyal", 1)


def test_four_purchase_days_spanning_less_than_ninety_days_are_not_loyal() -> None:
    relationship = relationship_after(*loyal_purchases(0, 30, 60, 89))
    assert relationship.stage is Stage.EXPANSION


def test_an_open_complaint_blocks_loyal() -> None:
    relationship = relationship_after(
        touchpoint("complaint", 1, complaint_id="c-9"), *loyal_purchases(0, 30, 60, 90)
    )
    assert relationship.stage is Stage.EXPANSION


def test_resolving_the_complaint_lets_loyal_fire() -> None:
    relationship = relationship_after(
        touchpoint("complaint", 1, complaint_id="c-9"), *loyal_purchases(0, 30, 60, 90)
    )
    relationship.record_touchpoint(touchpoint("complaint_resolved", 95, complaint_id="c-9"), POLICY)
    assert changes(relationship)[-1] == ("expansion", "commitment", "loyal", 1)


def test_a_complaint_raised_in_an_earlier_cycle_still_blocks_loyal() -> None:
    relationship = relationship_after(
        touchpoint("complaint", 0, complaint_id="old"),
        touchpoint("cancellation", 1),
        *loyal_purchases(10, 40, 70, 100),
    )
    assert relationship.cycle == 2
    assert relationship.stage is Stage.EXPANSION


def test_a_resolution_arriving_before_its_complaint_leaves_no_open_complaint() -> None:
    relationship = relationship_after(
        touchpoint("complaint_resolved", 2, complaint_id="c-1"),
        touchpoint("complaint", 1, complaint_id="c-1"),
    )
    assert relationship.open_complaints == {}


def test_a_latest_survey_score_below_seven_blocks_loyal() -> None:
    relationship = relationship_after(
        touchpoint("survey", 50, score=6), *loyal_purchases(0, 30, 60, 90)
    )
    assert relationship.stage is Stage.EXPANSION


def test_latest_survey_is_judged_by_occurred_at_not_by_arrival() -> None:
    relationship = relationship_after(
        touchpoint("survey", 50, score=9),
        touchpoint("survey", 40, score=2),  # arrives later, happened earlier
        *loyal_purchases(0, 30, 60, 90),
    )
    assert relationship.stage is Stage.COMMITMENT


def test_a_renewal_moves_expansion_to_commitment() -> None:
    relationship = relationship_after(*loyal_purchases(0, 1), touchpoint("renewal", 5))
    assert changes(relationship)[-1] == ("expansion", "commitment", "renewal", 1)


@pytest.mark.parametrize(
    ("history", "stage"),
    [
        ([touchpoint("marketing")], Stage.EXPLORATION),
        ([touchpoint("purchase")], Stage.AWARENESS),
        (loyal_purchases(0, 1), Stage.EXPANSION),
        (loyal_purchases(0, 30, 60, 90), Stage.COMMITMENT),
    ],
    ids=["exploration", "awareness", "expansion", "commitment"],
)
def test_a_cancellation_dissolves_every_open_stage(history: list[Touchpoint], stage: Stage) -> None:
    relationship = relationship_after(*history)
    assert relationship.stage is stage
    relationship.record_touchpoint(touchpoint("cancellation", 100, reason="price"), POLICY)
    assert changes(relationship)[-1] == (stage.value, "dissolution", "cancelled", 1)


def test_touchpoints_after_dissolution_that_do_not_qualify_change_nothing() -> None:
    relationship = relationship_after(touchpoint("purchase"), touchpoint("cancellation", 1))
    before = changes(relationship)
    for kind in ("marketing", "survey", "support_request", "referral", "renewal", "cancellation"):
        relationship.record_touchpoint(touchpoint(kind, 5), POLICY)
    assert relationship.stage is Stage.DISSOLUTION
    assert changes(relationship) == before
    assert relationship.touchpoint_count == 8


@pytest.mark.parametrize("kind", ["inquiry", "trial", "sales_contact"])
def test_a_qualifying_touchpoint_after_dissolution_starts_a_new_cycle(kind: str) -> None:
    relationship = relationship_after(touchpoint("purchase"), touchpoint("cancellation", 1))
    relationship.record_touchpoint(touchpoint(kind, 30), POLICY)
    assert changes(relationship)[-1] == ("dissolution", "exploration", "reactivation", 2)
    assert relationship.stage is Stage.EXPLORATION
    assert relationship.cycle == 2


def test_a_reactivating_purchase_counts_in_the_new_cycle() -> None:
    relationship = relationship_after(touchpoint("purchase"), touchpoint("cancellation", 1))
    relationship.record_touchpoint(touchpoint("purchase", 30), POLICY)
    assert changes(relationship)[-2:] == [
        ("dissolution", "exploration", "reactivation", 2),
        ("exploration", "awareness", "first-purchase", 2),
    ]


def test_rules_only_count_touchpoints_of_the_current_cycle() -> None:
    relationship = relationship_after(
        touchpoint("purchase", 0), touchpoint("cancellation", 1), touchpoint("purchase", 30)
    )
    assert relationship.stage is Stage.AWARENESS  # not expansion: day 0 was in cycle 1


def test_late_touchpoints_are_recorded_in_arrival_order_and_judged_by_occurred_at() -> None:
    relationship = relationship_after(touchpoint("purchase", 10), touchpoint("purchase", 3))
    recorded = [
        e.occurred_at
        for e in relationship.pending_events
        if isinstance(e, Relationship.TouchpointRecorded)
    ]
    assert recorded == [DAY_ZERO + timedelta(days=10), DAY_ZERO + timedelta(days=3)]
    assert relationship.first_touchpoint_at == DAY_ZERO + timedelta(days=3)
    assert relationship.stage is Stage.EXPANSION


def test_the_sweep_dissolves_an_open_relationship_silent_for_365_days() -> None:
    relationship = relationship_after(touchpoint("purchase", 0))
    assert relationship.dissolve_if_inactive(POLICY, DAY_ZERO + timedelta(days=365)) is True
    change = [e for e in relationship.pending_events if isinstance(e, Relationship.StageChanged)][
        -1
    ]
    assert (change.to_stage, change.rule, change.triggered_by) == (
        "dissolution",
        "inactivity",
        "inactivity",
    )


def test_the_sweep_leaves_a_relationship_with_a_touchpoint_inside_the_window() -> None:
    relationship = relationship_after(touchpoint("purchase", 0), touchpoint("marketing", 100))
    assert relationship.dissolve_if_inactive(POLICY, DAY_ZERO + timedelta(days=400)) is False


def test_the_sweep_leaves_a_dissolved_relationship_alone() -> None:
    relationship = relationship_after(touchpoint("cancellation", 0))
    assert relationship.dissolve_if_inactive(POLICY, DAY_ZERO + timedelta(days=999)) is False


def test_a_manual_change_records_actor_and_reason() -> None:
    relationship = relationship_after(touchpoint("purchase"))
    relationship.change_stage(
        Stage.COMMITMENT, actor="ana", reason="key account", at=DAY_ZERO, policy_version=1
    )
    change = relationship.pending_events[-1]
    assert isinstance(change, Relationship.StageChanged)
    assert (change.rule, change.actor, change.reason, change.to_stage) == (
        "manual",
        "ana",
        "key account",
        "commitment",
    )


def test_a_manual_move_out_of_dissolution_starts_a_new_cycle() -> None:
    relationship = relationship_after(touchpoint("cancellation"))
    relationship.change_stage(
        Stage.EXPLORATION, actor="ana", reason="won back", at=DAY_ZERO, policy_version=1
    )
    assert (relationship.stage, relationship.cycle) == (Stage.EXPLORATION, 2)


@pytest.mark.parametrize(
    ("history", "target"),
    [
        ([touchpoint("purchase")], Stage.AWARENESS),
        ([touchpoint("cancellation")], Stage.COMMITMENT),
    ],
    ids=["to-the-same-stage", "out-of-dissolution-but-not-to-exploration"],
)
def test_invalid_manual_changes_are_refused(history: list[Touchpoint], target: Stage) -> None:
    relationship = relationship_after(*history)
    with pytest.raises(InvalidStageChange):
        relationship.change_stage(target, actor="ana", reason="x", at=DAY_ZERO, policy_version=1)


def test_every_stage_change_records_the_policy_version() -> None:
    policy = Policy.from_toml("version = 7\n")
    relationship = relationship_after(touchpoint("purchase"), policy=policy)
    assert [
        e.policy_version
        for e in relationship.pending_events
        if isinstance(e, Relationship.StageChanged)
    ] == [7]


def test_thresholds_come_from_the_policy_file() -> None:
    policy = Policy.from_toml("version = 2\n[rules.engaged]\ntouchpoints = 1\n")
    relationship = relationship_after(touchpoint("inquiry"), policy=policy)
    assert changes(relationship) == [("exploration", "awareness", "engaged", 1)]


def test_a_disabled_rule_never_fires() -> None:
    policy = Policy.from_toml("version = 2\n[rules.first-purchase]\nenabled = false\n")
    assert relationship_after(touchpoint("purchase"), policy=policy).stage is Stage.EXPLORATION


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("version = 0", "version"),
        ("version = 1\n[rules.loyal]\nspan_days = -1", "rules.loyal.span_days"),
        ("version = 1\n[rules.telepathy]\nenabled = true", "rules.telepathy"),
        ("version = 1\n[reactivation]\nkinds = ['teleport']", "reactivation.kinds"),
        ("version = ", "not valid TOML"),
    ],
)
def test_an_invalid_policy_is_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(InvalidPolicy, match=problem.replace(".", r"\.")):
        Policy.from_toml(text)


def test_the_default_policy_is_version_1_with_contract_thresholds() -> None:
    rules = POLICY.rules
    assert POLICY.version == 1
    assert (rules.engaged.touchpoints, rules.repeat_purchase.distinct_days) == (3, 2)
    assert (
        rules.loyal.distinct_days,
        rules.loyal.span_days,
        rules.loyal.min_latest_survey_score,
    ) == (4, 90, 7)
    assert rules.inactivity.days == 365
