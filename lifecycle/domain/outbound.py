"""Contract 3, the outbound relationship event: one recorded domain event as downstream
services and auditors see it.

Each event carries its link of the hash chain (``hash``, ``previous_hash``); read from
the log it also carries its ``position``; shown to an auditor, ``personal`` is the
readable view of ``data.personal`` (which holds what was recorded: the ciphertext).

Version 2 (``RelationshipEvent``, ``schema_version`` 2) adds the ``correlation_id`` and
``producer`` of the touchpoint that caused the event, read from the event's data (every
event a touchpoint causes records them). Version 1 (``RelationshipEventV1``) is what
consumers that have not upgraded read (``LIFECYCLE_RELAY_SCHEMA_VERSION=1``): the same
event without those fields, in its envelope or its data. The JSON Schemas
``relationship-event.v1.schema.json`` and ``…v2…`` are generated from these models."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

# Fixed forever: outbound event ids are uuid5(OUTBOUND_NAMESPACE, f"{relationship_id}:{version}").
OUTBOUND_NAMESPACE = UUID("0d4f3a56-8f3e-4f0e-9a43-7c1b1e6f5d20")

# Library bookkeeping and the hash-chain link: not part of an event's business data.
_NOT_DATA = frozenset(
    {
        "originator_id",
        "originator_version",
        "timestamp",
        "originator_topic",
        "hash",
        "previous_hash",
    }
)

CAUSE_FIELDS = ("correlation_id", "producer")
"""What version 2 of Contract 3 says of the touchpoint that caused an event, in the
envelope and in the data; version 1 says none of it."""


class RelationshipEventV1(BaseModel):
    """One event of a relationship's history (Contract 3)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="RelationshipEvent")

    event_id: UUID = Field(description="deterministic from relationship_id and version")
    relationship_id: UUID
    customer_id: str | None = Field(
        description="null for streams other than relationships (the adopted policy's, the "
        "analytics models')"
    )
    version: int = Field(ge=1)
    type: str = Field(description="RelationshipStarted, TouchpointRecorded, StageChanged, …")
    occurred_at: datetime = Field(description="business time of what the event records")
    recorded_at: datetime = Field(description="when the engine recorded the event")
    data: dict[str, Any]
    position: int | None = Field(
        default=None, description="the event's position in the engine's log (notification id)"
    )
    hash: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{64}$",
        description="SHA-256 of the event's content and previous_hash (the domain's hash chain)",
    )
    previous_hash: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{64}$",
        description="hash of the relationship's previous event; 64 zeros for the first",
    )
    personal: dict[str, Any] | None = Field(
        default=None,
        description='readable view of data.personal: the personal fields, {"erased": true} once '
        'the customer was forgotten, or {"encrypted": true} when not revealed',
    )


class RelationshipEvent(RelationshipEventV1):
    """One event of a relationship's history (Contract 3), version 2."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="RelationshipEvent")

    schema_version: Literal[2] = Field(default=2, description="version of this message")
    correlation_id: str | None = Field(
        default=None,
        description="the upstream's trace or workflow id of the touchpoint that caused the "
        "event; null when none did (manual changes, the sweep, erasure) or it named none",
    )
    producer: str | None = Field(
        default=None,
        description="the upstream system of the touchpoint that caused the event; null when "
        "none did, or for events recorded before version 2 that it did not name",
    )

    def as_version_1(self) -> RelationshipEventV1:
        """The same event as version 1 of Contract 3 says it."""
        fields = self.model_dump(exclude={"schema_version", *CAUSE_FIELDS})
        fields["data"] = {k: v for k, v in self.data.items() if k not in CAUSE_FIELDS}
        return RelationshipEventV1.model_validate(fields)


OUTBOUND_VERSIONS: dict[int, type[RelationshipEventV1]] = {
    1: RelationshipEventV1,
    2: RelationshipEvent,
}
"""Every version of Contract 3 the engine publishes, by number; the highest is current."""


def outbound_event_id(relationship_id: UUID, version: int) -> UUID:
    return uuid5(OUTBOUND_NAMESPACE, f"{relationship_id}:{version}")


def relationship_event_json_schema(number: int) -> dict[str, Any]:
    return OUTBOUND_VERSIONS[number].model_json_schema()


def to_relationship_event(
    domain_event: Any, *, position: int | None = None, personal: dict[str, Any] | None = None
) -> RelationshipEvent:
    """Contract 3's view of a domain event of a chained stream, as the domain sees it
    (upcast to its class's current version)."""
    return contract_event(
        type(domain_event).__name__,
        domain_event.originator_id,
        domain_event.originator_version,
        vars(domain_event),
        position=position,
        personal=personal,
    )


def contract_event(
    event_type: str,
    originator_id: UUID,
    version: int,
    state: Mapping[str, Any],
    *,
    position: int | None = None,
    personal: dict[str, Any] | None = None,
) -> RelationshipEvent:
    """Contract 3's view of an event given its state: as the domain sees it, or as it is
    stored (then ``data`` holds what its hash covers, ``class_version`` included)."""
    data = {k: v for k, v in state.items() if k not in _NOT_DATA}
    timestamp: datetime = state["timestamp"]
    business = state.get(BUSINESS_TIME_FIELDS.get(event_type, ""))
    return RelationshipEvent(
        event_id=outbound_event_id(originator_id, version),
        relationship_id=originator_id,
        customer_id=state.get("customer_id"),
        version=version,
        type=event_type,
        occurred_at=business if isinstance(business, datetime) else timestamp,
        recorded_at=timestamp,
        data=data,
        position=position,
        hash=state.get("hash"),
        previous_hash=state.get("previous_hash"),
        personal=personal,
        correlation_id=state.get("correlation_id"),
        producer=state.get("producer"),
    )


BUSINESS_TIME_FIELDS = {
    "RelationshipStarted": "started_at",
    "TouchpointRecorded": "occurred_at",
    "StageChanged": "effective_at",
    "PersonalDataErased": "erased_at",
    "AccountManagerAssigned": "assigned_at",
    "AccountManagerUnassigned": "unassigned_at",
    "PolicyStreamStarted": "started_at",
    "PolicyAdopted": "adopted_at",
}
"""Which field of each event type holds its business time (``occurred_at``); an event
type without one happened when it was recorded."""
