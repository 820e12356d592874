"""The ``Relationship`` aggregate: the whole history of one customer relationship.

Each touchpoint is recorded as a ``TouchpointRecorded`` event; each stage change is its
own ``StageChanged`` event, decided by the policy when the command runs and never
re-decided on replay; an account manager is put in charge, or taken off, by
``AccountManagerAssigned`` / ``AccountManagerUnassigned``. State holds only what the rules
and auditors need; read models hold the rest.

Two times: every event is *recorded* when the engine writes it, and records something
that happened at a *business* time (a touchpoint's ``occurred_at``, a change's
``effective_at``). ``stage_in_force`` answers "which stage was in force at business time
T" from the recorded stage changes, whenever they were recorded (a backfill records
years of history today).

Every event is chained (``lifecycle.domain.streams``): it carries the hash of the event
before it and its own hash, computed as the event is triggered, so every path that
records events (batches, manual changes, the sweep, erasure) chains them alike.

State stays the same size however long the history: which upstream event ids were
recorded (a second delivery is a duplicate) is kept by the store, beside the events,
not in the aggregate (``lifecycle.persistence.recorders``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from lifecycle.domain.errors import (
    InvalidAccountManager,
    InvalidStageChange,
    PersonalDataAlreadyErased,
)
from lifecycle.domain.policy import INACTIVITY, MANUAL, REACTIVATION, CycleFacts, Policy
from lifecycle.domain.streams import ChainedAggregate
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Kind, Stage

# Fixed forever: relationship ids are uuid5(RELATIONSHIP_NAMESPACE, customer_id).
RELATIONSHIP_NAMESPACE = UUID("5b0b8f52-3c55-4a7e-9d6a-2f1f6c9e1a7d")

_STAGES = {stage.value: stage for stage in Stage}
MANUAL_TRIGGER = "manual"
INACTIVITY_TRIGGER = "inactivity"
MAX_MANAGER_ID_LENGTH = 128
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

    @abstractmethod
    def _change_stage(
        self, *, to_stage: Stage, cycle: int, rule: str, policy_version: int, **cause: Any
    ) -> None:
        """Move to ``to_stage`` in ``cycle``; ``cause`` says what moved it (the fields
        of a ``StageChanged`` event: triggered_by, actor, reason, effective_at). The
        aggregate records the event; the what-if replay only applies it."""

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
            **_caused_by(INACTIVITY_TRIGGER, now),
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


def _untraced_before_v2(state: dict[str, Any]) -> None:
    """A version 1 event carries no touchpoint's trace: no correlation id, no producer."""
    state["correlation_id"] = None
    state["producer"] = None


class Relationship(LifecycleState, ChainedAggregate):
    class_version = 2
    """Of the state snapshots hold: version 1 held every recorded event id."""

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.pop("touchpoint_ids", None)

    account_manager: str | None = None
    """The id of the account manager in charge, if any. A class attribute as well, so that
    snapshots taken before account managers existed restore without one."""

    class Event(ChainedAggregate.Event):
        """Base of every event of a relationship."""

    class RelationshipStarted(Event, Aggregate.Created):
        """The relationship's first event, caused by its first touchpoint.

        Version 2 added the ``correlation_id`` and ``producer`` of that touchpoint, as
        every event a touchpoint causes carries them (Contract 3); version 1 events have
        none (null)."""

        class_version = 2

        customer_id: str
        started_at: datetime
        correlation_id: str | None
        producer: str | None

        upcast_v1_v2 = staticmethod(_untraced_before_v2)

    @staticmethod
    def create_id(customer_id: str, **_: Any) -> UUID:
        return relationship_id(customer_id)

    @event(RelationshipStarted)
    def __init__(
        self,
        customer_id: str,
        started_at: datetime,
        correlation_id: str | None = None,
        producer: str | None = None,
    ) -> None:
        # The first touchpoint's correlation id and producer are the event's, for
        # Contract 3: no rule looks at them.
        del correlation_id, producer
        self._begin(customer_id, started_at)

    # Commands ---------------------------------------------------------------------------

    def record_touchpoint(self, touchpoint: Touchpoint, policy: Policy) -> None:
        """Record a touchpoint and apply the policy until nothing fires (a touchpoint
        recorded before is the caller's to recognise: see the module docstring)."""
        cause = _caused_by(
            touchpoint.event_id,
            touchpoint.occurred_at,
            correlation_id=touchpoint.correlation_id,
            producer=touchpoint.producer,
        )
        self._reactivate_if(touchpoint.kind, policy, **cause)
        self.trigger_event(
            self.TouchpointRecorded,
            customer_id=self.customer_id,
            event_id=touchpoint.event_id,
            kind=touchpoint.kind.value,
            channel=touchpoint.channel.value,
            occurred_at=touchpoint.occurred_at,
            source=touchpoint.producer,
            producer=touchpoint.producer,
            correlation_id=touchpoint.correlation_id,
            attributes=touchpoint.attributes,
            personal=touchpoint.personal,
            schema_version=touchpoint.schema_version,
        )
        self._follow_rules(policy, **cause)

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
            correlation_id=None,
            producer=None,
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

    def assign_account_manager(
        self, manager_id: str, *, actor: str, reason: str, at: datetime
    ) -> bool:
        """Put ``manager_id`` in charge (replacing any other). Returns False, changing
        nothing, when they are in charge already."""
        check_manager_id(manager_id)
        if manager_id == self.account_manager:
            return False
        self.trigger_event(
            self.AccountManagerAssigned,
            customer_id=self.customer_id,
            manager_id=manager_id,
            actor=actor,
            reason=reason,
            assigned_at=at,
        )
        return True

    def unassign_account_manager(self, *, actor: str, reason: str, at: datetime) -> bool:
        """Take the account manager off. Returns False, changing nothing, when there is
        none."""
        if self.account_manager is None:
            return False
        self.trigger_event(
            self.AccountManagerUnassigned,
            customer_id=self.customer_id,
            manager_id=self.account_manager,
            actor=actor,
            reason=reason,
            unassigned_at=at,
        )
        return True

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
        """A touchpoint, recorded in its current form (``schema_version`` is the version
        of the message it arrived as).

        Version 2 added ``producer`` (the upstream system, as version 2 of the message
        names it) and ``correlation_id``; version 1 events are read with ``producer``
        from their ``source`` and no correlation id. ``source`` stays, holding the same
        value as ``producer``: the data of a Contract 3 event, an export line or a
        history line of version 2 is then a superset of version 1's, so every consumer
        and tool reading ``data.source`` keeps working on old and new events alike, and
        ``LIFECYCLE_RELAY_SCHEMA_VERSION=1`` publishes version 1 data by leaving fields
        out, never by renaming them.
        """

        class_version = 2

        customer_id: str
        event_id: str
        kind: str
        channel: str
        occurred_at: datetime
        source: str
        producer: str
        correlation_id: str | None
        attributes: dict[str, Any]
        personal: dict[str, str] | None
        schema_version: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["producer"] = state["source"]
            state["correlation_id"] = None

        def apply(self, aggregate: Relationship) -> None:
            aggregate.apply_touchpoint(self)

    class StageChanged(Event):
        """A move from one stage to another, as decided when it was recorded.

        Version 2 added the ``correlation_id`` and ``producer`` of the touchpoint that
        triggered the change, taken from it when the policy decided (null when no
        touchpoint triggered it, a manual change or the sweep, and for every version 1
        event), so that the change carries the upstream's trace as every event the
        touchpoint causes does (Contract 3).
        """

        class_version = 2

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
        correlation_id: str | None
        producer: str | None

        upcast_v1_v2 = staticmethod(_untraced_before_v2)

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

    class AccountManagerAssigned(Event):
        """An account manager was put in charge of the relationship (replacing any other):
        from now on it is one of dedicated personal assistance."""

        customer_id: str
        manager_id: str
        actor: str
        reason: str
        assigned_at: datetime

        def apply(self, aggregate: Relationship) -> None:
            aggregate.account_manager = self.manager_id

    class AccountManagerUnassigned(Event):
        """The account manager ``manager_id`` was taken off the relationship."""

        customer_id: str
        manager_id: str
        actor: str
        reason: str
        unassigned_at: datetime

        def apply(self, aggregate: Relationship) -> None:
            aggregate.account_manager = None


def _caused_by(
    trigger: str,
    at: datetime,
    *,
    correlation_id: str | None = None,
    producer: str | None = None,
) -> dict[str, Any]:
    """The cause of a move that no person made: a touchpoint's event id (with its
    correlation id and producer), or a trigger."""
    return {
        "triggered_by": trigger,
        "actor": None,
        "reason": None,
        "effective_at": at,
        "correlation_id": correlation_id,
        "producer": producer,
    }


RELATIONSHIP_EVENTS: tuple[type[Relationship.Event], ...] = (
    Relationship.RelationshipStarted,
    Relationship.TouchpointRecorded,
    Relationship.StageChanged,
    Relationship.PersonalDataErased,
    Relationship.AccountManagerAssigned,
    Relationship.AccountManagerUnassigned,
)
"""Every event class of a relationship: what the relay publishes (Contract 3), and what
no other stream records."""


def check_manager_id(manager_id: str) -> None:
    if not manager_id.strip() or len(manager_id) > MAX_MANAGER_ID_LENGTH or "\x00" in manager_id:
        raise InvalidAccountManager(
            f"an account manager's id is 1 to {MAX_MANAGER_ID_LENGTH} characters, not blank"
        )


@dataclass(frozen=True)
class StageInForce:
    """The stage in force at a business time: that of the latest change effective at or
    before it (ties: the later in the log), else the first stage from the relationship's
    start; ``stage`` None before the relationship began."""

    time: datetime
    stage: Stage | None
    cycle: int | None
    since: datetime | None


def stage_in_force(events: Iterable[Relationship.Event], at: datetime) -> StageInForce:
    """The stage in force at business time ``at``, from a relationship's events in log
    order (its history: recorded times play no part)."""
    started: datetime | None = None
    latest: Relationship.StageChanged | None = None
    for domain_event in events:
        if isinstance(domain_event, Relationship.RelationshipStarted):
            started = domain_event.started_at
        elif isinstance(domain_event, Relationship.StageChanged) and _in_force_after(
            domain_event, latest, at
        ):
            latest = domain_event
    if latest is not None:
        return StageInForce(at, _STAGES[latest.to_stage], latest.cycle, latest.effective_at)
    if started is not None and started <= at:
        return StageInForce(at, Stage.EXPLORATION, 1, started)
    return StageInForce(at, None, None, None)


def _in_force_after(
    change: Relationship.StageChanged, latest: Relationship.StageChanged | None, at: datetime
) -> bool:
    """Whether ``change`` (later in the log) is in force at ``at`` rather than ``latest``."""
    return change.effective_at <= at and (
        latest is None or change.effective_at >= latest.effective_at
    )
