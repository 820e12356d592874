"""What a candidate policy would change: every relationship's recorded touchpoints
replayed in memory under the adopted policy and under the candidate, and the stages
they end in compared (``lifecycle policy diff``).

Both replays take the same inputs, so their difference is what the rules change: the
touchpoints as recorded, in log order; manual stage changes as recorded (to the stage
the person chose); inactivity judged once, at a given time, or not at all. Stage
changes the engine decided (by a rule, by reactivation, at an adoption, by the sweep)
are not inputs: each replay decides its own.

A ``StageReplay`` is a relationship's lifecycle state (``LifecycleState``: the same
folding of touchpoints and the same moves as the ``Relationship`` aggregate) that records
nothing: it applies each move and goes on, so a replay costs a fraction of recording.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from lifecycle.domain.policy import MANUAL, Policy
from lifecycle.domain.relationship import LifecycleState, Relationship
from lifecycle.domain.vocabulary import Stage

TouchpointRecorded = Relationship.TouchpointRecorded
StageChanged = Relationship.StageChanged


class StageReplay(LifecycleState):
    """One relationship's lifecycle, replayed under one policy; nothing is recorded."""

    def __init__(self, customer_id: str, started_at: datetime) -> None:
        self._begin(customer_id, started_at)

    def touchpoint(self, recorded: Relationship.TouchpointRecorded, policy: Policy) -> None:
        """What ``Relationship.record_touchpoint`` does with the touchpoint it records."""
        self._reactivate_if(recorded.kind, policy, effective_at=recorded.occurred_at)
        self.apply_touchpoint(recorded)
        self._follow_rules(policy, effective_at=recorded.occurred_at)

    def manual_change(self, recorded: Relationship.StageChanged) -> None:
        """A person's move, as recorded: to the stage they chose (nothing when the
        replay is in it already); leaving dissolution starts a new cycle."""
        to_stage = Stage(recorded.to_stage)
        if to_stage is not self.stage:
            self._move_by_hand(
                to_stage, policy_version=recorded.policy_version, effective_at=recorded.effective_at
            )

    def _change_stage(
        self, *, to_stage: Stage, cycle: int, rule: str, policy_version: int, **cause: Any
    ) -> None:
        self._enter(to_stage.value, cycle, cause["effective_at"])


@dataclass
class StageComparison:
    """Where relationships end under the adopted policy ("now") and the candidate."""

    relationships: int = 0
    matrix: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(stage now, stage under the candidate) -> relationships."""
    differing: list[tuple[str, str, str]] = field(default_factory=list)
    """(customer_id, stage now, stage under the candidate) of each relationship whose
    stage differs."""

    def count(self, customer_id: str, now: str, candidate: str) -> None:
        self.relationships += 1
        self.matrix[(now, candidate)] += 1
        if now != candidate:
            self.differing.append((customer_id, now, candidate))

    def add(self, other: StageComparison) -> None:
        self.relationships += other.relationships
        self.matrix.update(other.matrix)
        self.differing.extend(other.differing)

    def stage_counts(self) -> dict[str, tuple[int, int]]:
        """Each stage's relationships (now, under the candidate), in stage order."""
        now: Counter[str] = Counter()
        candidate: Counter[str] = Counter()
        for (before, after), relationships in self.matrix.items():
            now[before] += relationships
            candidate[after] += relationships
        return {stage.value: (now[stage.value], candidate[stage.value]) for stage in Stage}


class WhatIf:
    """Every relationship whose events it is given, replayed under both policies."""

    def __init__(self, adopted: Policy, candidate: Policy) -> None:
        self.adopted = adopted
        self.candidate = candidate
        self.replays: dict[UUID, tuple[StageReplay, StageReplay]] = {}

    def fold(self, domain_event: Any) -> None:
        """One recorded event of a relationship, in log order (others are passed over)."""
        if isinstance(domain_event, TouchpointRecorded):
            now, candidate = self._replays_of(domain_event)
            now.touchpoint(domain_event, self.adopted)
            candidate.touchpoint(domain_event, self.candidate)
        elif isinstance(domain_event, StageChanged) and domain_event.rule == MANUAL:
            for replay in self.replays[domain_event.originator_id]:
                replay.manual_change(domain_event)

    def compare(self, inactive_at: datetime | None) -> StageComparison:
        """The stages each relationship ends in, inactivity judged at ``inactive_at``
        (None: not at all)."""
        comparison = StageComparison()
        for now, candidate in self.replays.values():
            if inactive_at is not None:
                now.dissolve_if_inactive(self.adopted, inactive_at)
                candidate.dissolve_if_inactive(self.candidate, inactive_at)
            comparison.count(now.customer_id, now.stage.value, candidate.stage.value)
        return comparison

    def _replays_of(
        self, recorded: Relationship.TouchpointRecorded
    ) -> tuple[StageReplay, StageReplay]:
        pair = self.replays.get(recorded.originator_id)
        if pair is None:
            # A relationship starts with its first touchpoint.
            customer, at = recorded.customer_id, recorded.occurred_at
            pair = self.replays[recorded.originator_id] = (
                StageReplay(customer, at),
                StageReplay(customer, at),
            )
        return pair
