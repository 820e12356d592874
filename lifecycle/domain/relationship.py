"""The ``Relationship`` aggregate: the whole history of one customer relationship.

Each touchpoint is recorded as a ``TouchpointRecorded`` event; each stage change is its
own ``StageChanged`` event, decided by the policy when the command runs and never
re-decided on replay. State holds only what the rules and auditors need; read models
hold the rest.

Every event is chained (``lifecycle.domain.streams``): it carries the hash of the event
before it and its own hash, computed as the event is triggered, so every path that
records events (batches, manual changes, the sweep, erasure) chains them alike.

How a relationship's state folds its touchpoints and how the policy moves it are
defined once, in ``LifecycleState``: the aggregate records each move as an event, and
the what-if replay (``lifecycle.domain.whatif``) applies the same moves in memory only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from lifecycle.domain.errors import InvalidStageChange, PersonalDataAlreadyErased
from lifecycle.domain.policy import INACTIVITY, MANUAL, REACTIVATION, CycleFacts, Policy
from lifecycle.domain.streams import ChainedAggregate
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Kind, Stage

# Fixed forever: relationship ids are uuid5(RELATIONSHIP_NAMESPACE, customer_id).
RELATIONSHIP_NAMESPACE = UUID("5b0b8f52-3c55-4a7e-9d6a-2f1f6c9e1a7d")

_STAGES = {stage.value: stage for stage in Stage}
MANUAL_TRIGGER = "manual"
INACTIVITY_TRIGGER = "inactivity"
POLICY_ADOPTION_TRIGGER = "policy-adoption"


@lru_cache(maxsize=1 << 17)
def relationship_id(customer_id: str) -> UUID:
    return uuid5(RELATIONSHIP_NAMESPACE, customer_id)


class LifecycleState:
    """A relationship's lifecycle state, how its touchpoints fold into the facts the
    rules look at, and how the policy moves it: one definition for the aggregate, which
    records every move as a ``StageChanged`` event (``_change_stage``), and for the
    what-if replay, which only applies it."""

    customer_id: str
    started_at: datetime
    _stage: str
    stage_since: datetime
    cycle: int

    def _begin(self, customer_id: str, started_at: datetime) -> None:
        self.customer_id = customer_id
        self.started_at = started_at
        self._stage = Stage.EXPLORATION.value
        self.stage_since = started_at
        self.cycle = 1
        self.touchpoint_count = 0
        self.touchpoint_ids: set[str] = set()
        self.first_touchpoint_at: datetime | None = None
        self.last_touchpoint_at: datetime | None = None
        self.open_complaints: dict[str, datetime] = {}
        self.resolved_complaints: set[str] = set()
        self.personal_data_erased = False
        # The current cycle's facts, which the rules look at (reset by _start_cycle_facts).
        self.cycle_kind_counts: dict[str, int] = {}
        self.cycle_purchase_days: set[int] = set()
        self.cycle_latest_survey_at: datetime | None = None
        self.cycle_latest_survey_score: int | None = None

    @property
    def stage(self) -> Stage:
        return _STAGES[self._stage]

    def cycle_facts(self) -> CycleFacts:
        return CycleFacts(
            stage=self.stage,
            kind_counts=self.cycle_kind_counts,
            purchase_days=self.cycle_purchase_days,
            latest_survey_score=self.cycle_latest_survey_score,
            open_complaints=len(self.open_complaints),
        )

    # How the policy moves a relationship --------------------------------------------

    def _change_stage(
        self, *, to_stage: Stage, cycle: int, rule: str, policy_version: int, **cause: Any
    ) -> None:
        """Move to ``to_stage`` in ``cycle``; ``cause`` says what moved it (the fields
        of a ``StageChanged`` event: triggered_by, actor, reason, effective_at)."""
        raise NotImplementedError

    def _reactivate_if(self, kind: str, policy: Policy, **cause: Any) -> None:
        """After dissolution, a touchpoint of a reactivating kind starts a new cycle."""
        if self.stage is Stage.DISSOLUTION and policy.reactivates(kind):
            self._change_stage(
                to_stage=Stage.EXPLORATION,
                cycle=self.cycle + 1,
                rule=REACTIVATION,
                policy_version=policy.version,
                **cause,
            )

    def _follow_rules(self, policy: Policy, **cause: Any) -> None:
        """Apply the policy's rules until none fires (after a touchpoint, or when a new
        policy is adopted)."""
        while (decision := policy.decide(self.cycle_facts())) is not None:
            self._change_stage(
                to_stage=decision.to_stage,
                cycle=self.cycle,
                rule=decision.rule,
                policy_version=policy.version,
                **cause,
            )

    def _move_by_hand(self, to_stage: Stage, *, policy_version: int, **cause: Any) -> None:
        """A person's move; leaving dissolution starts a new cycle."""
        reactivating = self.stage is Stage.DISSOLUTION
        self._change_stage(
            to_stage=to_stage,
            cycle=self.cycle + 1 if reactivating else self.cycle,
            rule=MANUAL,
            policy_version=policy_version,
            **cause,
        )

    def dissolve_if_inactive(self, policy: Policy, now: datetime) -> bool:
        """The inactivity sweep: dissolve an open relationship with no recent touchpoint."""
        last = self.last_touchpoint_at
        if not self.stage.is_open or last is None or not policy.is_inactive(last, now):
            return False
        self._change_stage(
            to_stage=Stage.DISSOLUTION,
            cycle=self.cycle,
            rule=INACTIVITY,
            policy_version=policy.version,
            triggered_by=INACTIVITY_TRIGGER,
            actor=None,
            reason=None,
            effective_at=now,
        )
        return True

    # How events change the state -----------------------------------------------------

    def _enter(self, to_stage: str, cycle: int, since: datetime) -> None:
        self._stage = to_stage
        self.stage_since = since
        if cycle != self.cycle:
            self.cycle = cycle
            self._start_cycle_facts()

    def apply_touchpoint(self, recorded: Relationship.TouchpointRecorded) -> None:
        occurred_at = recorded.occurred_at
        kind = recorded.kind
        self.touchpoint_ids.add(recorded.event_id)
        self.touchpoint_count += 1
        if self.first_touchpoint_at is None or occurred_at < self.first_touchpoint_at:
            self.first_touchpoint_at = occurred_at
        if self.last_touchpoint_at is None or occurred_at > self.last_touchpoint_at:
            self.last_touchpoint_at = occurred_at
        counts = self.cycle_kind_counts
        counts[kind] = counts.get(kind, 0) + 1
        if kind == Kind.PURCHASE:
            self.cycle_purchase_days.add(occurred_at.astimezone(UTC).date().toordinal())
        elif kind == Kind.SURVEY:
            latest_at = self.cycle_latest_survey_at
            if latest_at is None or occurred_at >= latest_at:
                self.cycle_latest_survey_at = occurred_at
                self.cycle_latest_survey_score = int(recorded.attributes["score"])
        elif kind == Kind.COMPLAINT:
            complaint_id = recorded.attributes["complaint_id"]
            # A resolution may arrive before its complaint (out of order).
            if complaint_id not in self.resolved_complaints:
                self.open_complaints[complaint_id] = occurred_at
        elif kind == Kind.COMPLAINT_RESOLVED:
            complaint_id = recorded.attributes["complaint_id"]
            self.open_complaints.pop(complaint_id, None)
            self.resolved_complaints.add(complaint_id)

    def _start_cycle_facts(self) -> None:
        self.cycle_kind_counts = {}
        self.cycle_purchase_days = set()
        self.cycle_latest_survey_at = None
        self.cycle_latest_survey_score = None


class Relationship(LifecycleState, ChainedAggregate):
    class Event(ChainedAggregate.Event):
        """Base of every event of a relationship."""

    class RelationshipStarted(Event, Aggregate.Created):
        customer_id: str
        started_at: datetime

    @staticmethod
    def create_id(customer_id: str, **_: Any) -> UUID:
        return relationship_id(customer_id)

    @event(RelationshipStarted)
    def __init__(self, customer_id: str, started_at: datetime) -> None:
        self._begin(customer_id, started_at)

    # Commands ---------------------------------------------------------------------------

    def record_touchpoint(self, touchpoint: Touchpoint, policy: Policy) -> bool:
        """Record a touchpoint and apply the policy until nothing fires.

        Returns False, changing nothing, when this event_id was recorded before.
        """
        if touchpoint.event_id in self.touchpoint_ids:
            return False
        cause = _caused_by(touchpoint.event_id, touchpoint.occurred_at)
        self._reactivate_if(touchpoint.kind, policy, **cause)
        self.trigger_event(
            self.TouchpointRecorded,
            customer_id=self.customer_id,
            event_id=touchpoint.event_id,
            kind=touchpoint.kind.value,
            channel=touchpoint.channel.value,
            occurred_at=touchpoint.occurred_at,
            source=touchpoint.source,
            attributes=touchpoint.attributes,
            personal=touchpoint.personal,
            schema_version=touchpoint.schema_version,
        )
        self._follow_rules(policy, **cause)
        return True

    def change_stage(
        self, to_stage: Stage, *, actor: str, reason: str, at: datetime, policy_version: int
    ) -> None:
        """A person moves the relationship; leaving dissolution starts a new cycle."""
        self.check_manual_change(to_stage)
        self._move_by_hand(
            to_stage,
            policy_version=policy_version,
            triggered_by=MANUAL_TRIGGER,
            actor=actor,
            reason=reason,
            effective_at=at,
        )

    def reevaluate(self, policy: Policy, at: datetime) -> bool:
        """A new policy was adopted at ``at``: apply its rules to the relationship as it
        stands, until none fires, as after a touchpoint. Whether it moved."""
        if not self.stage.is_open:
            return False
        version = self.version
        self._follow_rules(policy, **_caused_by(POLICY_ADOPTION_TRIGGER, at))
        return self.version != version

    def erase_personal_data(self, *, reason: str, actor: str | None, at: datetime) -> None:
        """Record that the customer's personal data was erased (its key destroyed)."""
        if self.personal_data_erased:
            raise PersonalDataAlreadyErased(
                f"personal data of customer {self.customer_id!r} was erased before"
            )
        self.trigger_event(
            self.PersonalDataErased,
            customer_id=self.customer_id,
            reason=reason,
            actor=actor,
            erased_at=at,
        )

    def check_manual_change(self, to_stage: Stage) -> None:
        if to_stage is self.stage:
            raise InvalidStageChange(f"the relationship is already in {to_stage}")
        if self.stage is Stage.DISSOLUTION and to_stage is not Stage.EXPLORATION:
            raise InvalidStageChange(
                "a dissolved relationship can only move to exploration (a new cycle)"
            )

    def _change_stage(
        self, *, to_stage: Stage, cycle: int, rule: str, policy_version: int, **cause: Any
    ) -> None:
        self.trigger_event(
            self.StageChanged,
            customer_id=self.customer_id,
            from_stage=self._stage,
            to_stage=to_stage.value,
            cycle=cycle,
            rule=rule,
            policy_version=policy_version,
            **cause,
        )

    # Events: each is named in the past tense; its apply() is the state change ---------

    class TouchpointRecorded(Event):
        customer_id: str
        event_id: str
        kind: str
        channel: str
        occurred_at: datetime
        source: str
        attributes: dict[str, Any]
        personal: dict[str, str] | None
        schema_version: int

        def apply(self, aggregate: Relationship) -> None:
            aggregate.apply_touchpoint(self)

    class StageChanged(Event):
        customer_id: str
        from_stage: str
        to_stage: str
        cycle: int
        rule: str
        policy_version: int
        triggered_by: str
        actor: str | None
        reason: str | None
        effective_at: datetime

        def apply(self, aggregate: Relationship) -> None:
            aggregate._enter(self.to_stage, self.cycle, self.effective_at)

    class PersonalDataErased(Event):
        """The customer's personal-data key was destroyed: every ``personal`` object
        recorded for them is unreadable from now on; every other fact stays."""

        customer_id: str
        reason: str
        actor: str | None
        erased_at: datetime

        def apply(self, aggregate: Relationship) -> None:
            aggregate.personal_data_erased = True


def _caused_by(trigger: str, at: datetime) -> dict[str, Any]:
    """The cause of a move that no person made: a touchpoint's event id, or a trigger."""
    return {"triggered_by": trigger, "actor": None, "reason": None, "effective_at": at}


RELATIONSHIP_EVENTS: tuple[type[Relationship.Event], ...] = (
    Relationship.RelationshipStarted,
    Relationship.TouchpointRecorded,
    Relationship.StageChanged,
    Relationship.PersonalDataErased,
)
"""Every event class of a relationship: what the relay publishes (Contract 3), and what
no other stream records."""
