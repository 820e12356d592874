"""Re-evaluation under a new policy, and the what-if replay that compares two: both on
the aggregate alone, against what recording the same touchpoints does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle.domain.policy import Policy
from lifecycle.domain.relationship import POLICY_ADOPTION_TRIGGER, Relationship
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Stage
from lifecycle.domain.whatif import StageReplay, WhatIf
from tests.builders import DAY_ZERO, relationship_after, touchpoint
from tests.unit.test_policy_properties import histories

V1 = Policy.default()
ENGAGE_AT_ONCE = Policy.from_toml("version = 2\n[rules.engaged]\ntouchpoints = 1\n")


def stage_changes(relationship: Relationship) -> list[Any]:
    return [e for e in relationship.collect_events() if isinstance(e, Relationship.StageChanged)]


def test_reevaluation_applies_the_new_rules_to_the_relationship_as_it_stands() -> None:
    relationship = relationship_after(touchpoint("inquiry"), touchpoint("inquiry", 1))
    relationship.collect_events()

    assert relationship.reevaluate(ENGAGE_AT_ONCE, DAY_ZERO + timedelta(days=9))

    [change] = stage_changes(relationship)
    assert (change.from_stage, change.to_stage, change.rule) == (
        "exploration",
        "awareness",
        "engaged",
    )
    assert (change.policy_version, change.triggered_by) == (2, POLICY_ADOPTION_TRIGGER)
    assert change.effective_at == DAY_ZERO + timedelta(days=9)


def test_reevaluation_moves_as_far_as_the_rules_go() -> None:
    relationship = relationship_after(touchpoint("purchase"), touchpoint("purchase", 1))
    relationship.collect_events()
    generous = Policy.from_toml("version = 2\n[rules.loyal]\ndistinct_days = 2\nspan_days = 1\n")
    assert relationship.reevaluate(generous, DAY_ZERO)
    assert [(c.from_stage, c.to_stage) for c in stage_changes(relationship)] == [
        ("expansion", "commitment")
    ]


def test_reevaluation_leaves_a_dissolved_relationship_alone() -> None:
    relationship = relationship_after(touchpoint("inquiry"), touchpoint("cancellation", 1))
    relationship.collect_events()
    assert not relationship.reevaluate(ENGAGE_AT_ONCE, DAY_ZERO)
    assert relationship.stage is Stage.DISSOLUTION


def test_reevaluation_records_nothing_when_no_rule_fires() -> None:
    relationship = relationship_after(touchpoint("marketing"))
    relationship.collect_events()
    assert not relationship.reevaluate(ENGAGE_AT_ONCE, DAY_ZERO)
    assert relationship.collect_events() == []


def replayed(touchpoints: list[Touchpoint], policy: Policy) -> StageReplay:
    """A replay fed the events a relationship recorded, as ``policy diff`` reads them."""
    replay = StageReplay(touchpoints[0].customer_id, touchpoints[0].occurred_at)
    for event in relationship_after(*touchpoints).collect_events():
        if isinstance(event, Relationship.TouchpointRecorded):
            replay.touchpoint(event, policy)
    return replay


candidate_texts = st.builds(
    lambda engaged, days, loyal, span, survey, reactivate: (
        f"version = 2\n[rules.engaged]\ntouchpoints = {engaged}\n"
        f"[rules.repeat-purchase]\ndistinct_days = {days}\n"
        f"[rules.loyal]\ndistinct_days = {loyal}\nspan_days = {span}\n"
        f"min_latest_survey_score = {survey}\n"
        f"[reactivation]\nkinds = [{', '.join(f'{k!r}' for k in reactivate)}]\n"
    ),
    st.integers(1, 4),
    st.integers(2, 4),
    st.integers(1, 5),
    st.integers(0, 120),
    st.integers(0, 10),
    st.lists(st.sampled_from(["inquiry", "trial", "purchase", "renewal"]), unique=True),
)
"""TOML texts of candidate policies with random thresholds."""


@settings(max_examples=200, deadline=None)
@given(histories, candidate_texts)
def test_a_replay_ends_where_recording_under_the_same_policy_ends(
    history: list[Touchpoint], text: str
) -> None:
    policy = Policy.from_toml(text)
    replay = replayed(history, policy)
    relationship = relationship_after(*history, policy=policy)
    assert (replay.stage, replay.cycle) == (relationship.stage, relationship.cycle)
    assert replay.cycle_facts() == relationship.cycle_facts()


def test_a_manual_change_is_replayed_to_the_stage_the_person_chose() -> None:
    relationship = relationship_after(touchpoint("purchase"))
    relationship.change_stage(
        Stage.COMMITMENT, actor="ana", reason="key account", at=DAY_ZERO, policy_version=1
    )
    what_if = WhatIf(V1, ENGAGE_AT_ONCE)
    for event in relationship.collect_events():
        what_if.fold(event)
    comparison = what_if.compare(None)
    assert comparison.matrix == {("commitment", "commitment"): 1}


def test_inactivity_is_judged_once_at_the_time_given_under_each_policy() -> None:
    relationship = relationship_after(touchpoint("purchase"))
    quick = Policy.from_toml("version = 2\n[rules.inactivity]\ndays = 30\n")
    what_if = WhatIf(V1, quick)
    for event in relationship.collect_events():
        what_if.fold(event)
    assert what_if.compare(None).differing == []
    assert what_if.compare(DAY_ZERO + timedelta(days=40)).differing == [
        ("cust-1", "awareness", "dissolution")
    ]
