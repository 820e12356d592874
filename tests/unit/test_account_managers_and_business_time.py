"""Contract 7 on the aggregate alone: account managers assigned and taken off by events,
and the stage in force at a business time, whatever the time it was recorded."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from lifecycle.domain.errors import InvalidAccountManager
from lifecycle.domain.hashchain import GENESIS_HASH
from lifecycle.domain.policy import Policy
from lifecycle.domain.relationship import Relationship, stage_in_force
from lifecycle.domain.vocabulary import Stage
from tests.builders import DAY_ZERO, relationship_after, touchpoint

POLICY = Policy.default()
AT = DAY_ZERO + timedelta(days=30)


def test_assigning_a_manager_records_who_decided_why_and_when() -> None:
    relationship = relationship_after(touchpoint("inquiry"))

    changed = relationship.assign_account_manager("ana", actor="lead", reason="key account", at=AT)

    assigned = relationship.pending_events[-1]
    assert changed and relationship.account_manager == "ana"
    assert isinstance(assigned, Relationship.AccountManagerAssigned)
    assert (assigned.manager_id, assigned.actor, assigned.reason, assigned.assigned_at) == (
        "ana",
        "lead",
        "key account",
        AT,
    )


def test_assigning_another_manager_replaces_the_first() -> None:
    relationship = relationship_after(touchpoint("inquiry"))
    relationship.assign_account_manager("ana", actor="lead", reason="first", at=AT)

    relationship.assign_account_manager("ben", actor="lead", reason="ana moved on", at=AT)

    assert relationship.account_manager == "ben"


def test_assigning_the_manager_in_charge_again_changes_nothing() -> None:
    relationship = relationship_after(touchpoint("inquiry"))
    relationship.assign_account_manager("ana", actor="lead", reason="first", at=AT)
    events = len(relationship.pending_events)

    changed = relationship.assign_account_manager("ana", actor="lead", reason="again", at=AT)

    assert not changed
    assert len(relationship.pending_events) == events


def test_taking_the_manager_off_names_the_manager_taken_off() -> None:
    relationship = relationship_after(touchpoint("inquiry"))
    relationship.assign_account_manager("ana", actor="lead", reason="first", at=AT)

    changed = relationship.unassign_account_manager(actor="lead", reason="left", at=AT)

    unassigned = relationship.pending_events[-1]
    assert changed and relationship.account_manager is None
    assert isinstance(unassigned, Relationship.AccountManagerUnassigned)
    assert (unassigned.manager_id, unassigned.unassigned_at) == ("ana", AT)


def test_taking_off_a_manager_nobody_is_changes_nothing() -> None:
    relationship = relationship_after(touchpoint("inquiry"))

    assert not relationship.unassign_account_manager(actor="lead", reason="none", at=AT)
    assert len(relationship.pending_events) == 2


@pytest.mark.parametrize("manager_id", ["", "   ", "x" * 129, "a\x00b"])
def test_a_blank_or_overlong_manager_id_is_refused(manager_id: str) -> None:
    relationship = relationship_after(touchpoint("inquiry"))

    with pytest.raises(InvalidAccountManager):
        relationship.assign_account_manager(manager_id, actor="lead", reason="r", at=AT)


def test_manager_events_are_links_of_the_relationship_chain() -> None:
    relationship = relationship_after(touchpoint("inquiry"))
    relationship.assign_account_manager("ana", actor="lead", reason="first", at=AT)
    relationship.unassign_account_manager(actor="lead", reason="left", at=AT)

    events = relationship.pending_events
    assert events[0].previous_hash == GENESIS_HASH
    assert all(b.previous_hash == a.hash for a, b in itertools.pairwise(events))


def _backfilled() -> Relationship:
    """Exploration on day 0, awareness on day 10 (first purchase), dissolution on day 40,
    a new cycle on day 60: all recorded at once, as a backfill does."""
    return relationship_after(
        touchpoint("inquiry", 0),
        touchpoint("purchase", 10),
        touchpoint("cancellation", 40),
        touchpoint("trial", 60),
    )


@pytest.mark.parametrize(
    ("day", "stage", "cycle", "since_day"),
    [
        (0, Stage.EXPLORATION, 1, 0),
        (9.9, Stage.EXPLORATION, 1, 0),
        (10, Stage.AWARENESS, 1, 10),
        (39, Stage.AWARENESS, 1, 10),
        (45, Stage.DISSOLUTION, 1, 40),
        (61, Stage.EXPLORATION, 2, 60),
    ],
)
def test_the_stage_in_force_is_that_of_the_latest_change_effective_by_then(
    day: float, stage: Stage, cycle: int, since_day: float
) -> None:
    at = DAY_ZERO + timedelta(days=day)

    in_force = stage_in_force(_backfilled().pending_events, at)

    assert (in_force.time, in_force.stage, in_force.cycle) == (at, stage, cycle)
    assert in_force.since == DAY_ZERO + timedelta(days=since_day)


def test_there_is_no_stage_before_the_relationship_began() -> None:
    in_force = stage_in_force(_backfilled().pending_events, DAY_ZERO - timedelta(seconds=1))

    assert (in_force.stage, in_force.cycle, in_force.since) == (None, None, None)


def test_of_two_changes_effective_at_the_same_time_the_later_in_the_log_is_in_force() -> None:
    relationship = relationship_after(touchpoint("inquiry", 0))
    for stage, reason in ((Stage.AWARENESS, "met"), (Stage.EXPANSION, "oops")):  # log order
        relationship.change_stage(
            stage, actor="ana", reason=reason, at=DAY_ZERO + timedelta(days=5), policy_version=1
        )

    in_force = stage_in_force(relationship.pending_events, DAY_ZERO + timedelta(days=5))

    assert in_force.stage is Stage.EXPANSION


def test_a_change_recorded_later_but_effective_earlier_is_in_force_from_its_effective_time() -> (
    None
):
    relationship = relationship_after(touchpoint("inquiry", 20))
    relationship.record_touchpoint(touchpoint("purchase", 5), POLICY)  # arrived late

    in_force = stage_in_force(relationship.pending_events, DAY_ZERO + timedelta(days=6))

    assert (in_force.stage, in_force.since) == (Stage.AWARENESS, DAY_ZERO + timedelta(days=5))
