"""A customer's history as auditors read it: every recorded event as a Contract 3
event with its log position, its hash-chain link, business and recorded time, and its
personal data revealed (or shown as erased). For ``lifecycle history`` and the
auditor routes of the HTTP API."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from lifecycle.audit.chain import event_type_of
from lifecycle.domain.errors import RelationshipNotFound
from lifecycle.domain.outbound import RelationshipEvent, contract_event
from lifecycle.domain.relationship import relationship_id
from lifecycle.persistence.personal import PersonalDataVault, Revealer
from lifecycle.persistence.recorders import LogRow, stream_log
from lifecycle.service.application import LifecycleApplication


def audited_history(
    app: LifecycleApplication, customer_id: str, *, reveal: bool = True
) -> list[RelationshipEvent]:
    """Every event of the customer's relationship, oldest first.

    ``personal`` is the readable view of what was recorded: the personal fields (when
    ``reveal``), ``{"erased": true}`` once the customer was forgotten, or
    ``{"encrypted": true}``.
    """
    rid = relationship_id(customer_id)
    rows = stream_log(app.recorder, rid)
    if not rows:
        raise RelationshipNotFound(f"no relationship for customer {customer_id!r}")
    return list(relationship_events(app, rows, app.vault, reveal=reveal))


def relationship_events(
    app: LifecycleApplication,
    rows: Iterable[LogRow],
    vault: PersonalDataVault | None,
    *,
    reveal: bool,
    as_stored: bool = False,
) -> Iterator[RelationshipEvent]:
    """Log rows as Contract 3 events with positions, hashes and personal views.

    Events are shown as the domain sees them (upcast to their class's current version)
    or, ``as_stored``, exactly as they were written (then ``data`` is what each hash
    covers: what exports carry, so that an auditor recomputes every hash)."""
    decoded = [
        (position, *_event_state(app, originator_id, version, topic, state, as_stored))
        for position, originator_id, version, topic, state in rows
    ]
    revealer = None
    if vault is not None:
        revealer = vault.revealer(
            {
                state.get("customer_id", "")
                for _, _, _, state in decoded
                if state.get("personal") is not None
            }
        )
    for position, event_type, event_id, state in decoded:
        yield contract_event(
            event_type,
            event_id.originator_id,
            event_id.originator_version,
            state,
            position=position,
            personal=personal_view(state, revealer, reveal=reveal),
        )


def _event_state(
    app: LifecycleApplication,
    originator_id: str,
    version: int,
    topic: str,
    state: bytes,
    as_stored: bool,
) -> tuple[str, Any, dict[str, Any]]:
    """(event type, the event's id and version, its state), upcast or as stored."""
    if as_stored:
        stored: dict[str, Any] = app.mapper.transcoder.decode(state)
        return event_type_of(topic), _At(UUID(originator_id), version), stored
    domain_event = app.mapper.to_domain_event(
        StoredEvent(
            originator_id=originator_id, originator_version=version, topic=topic, state=state
        )
    )
    return type(domain_event).__name__, domain_event, vars(domain_event)


@dataclass(frozen=True)
class _At:
    originator_id: UUID
    originator_version: int


def personal_view(
    state: Mapping[str, Any], revealer: Revealer | None, *, reveal: bool
) -> dict[str, Any] | None:
    """The readable view of the personal data an event's state records, if any."""
    recorded = state.get("personal")
    if recorded is None:
        return None
    if revealer is None:
        return {"encrypted": True}
    view = revealer.reveal(state["customer_id"], state["event_id"], recorded)
    if view is not None and not reveal and "erased" not in view:
        return {"encrypted": True}
    return view


def describe_event(event: RelationshipEvent) -> str:
    """One line saying what an event records, for people (``lifecycle history``, the
    console's timeline)."""
    data = event.data
    if event.type == "RelationshipStarted":
        return f"relationship of {data['customer_id']} started"
    if event.type == "TouchpointRecorded":
        return f"{data['kind']} via {data['channel']} ({data['event_id']})"
    if event.type == "PersonalDataErased":
        return f"personal data erased: {data['reason']}"
    if event.type == "AccountManagerAssigned":
        return f"account manager {data['manager_id']} by {data['actor']}: {data['reason']}"
    if event.type == "AccountManagerUnassigned":
        return f"account manager {data['manager_id']} off by {data['actor']}: {data['reason']}"
    if event.type == "StageChanged":
        who = (
            f"by {data['actor']}: {data['reason']}"
            if data.get("actor")
            else f"on {data['triggered_by']}"
        )
        return (
            f"{data['from_stage']} -> {data['to_stage']} (cycle {data['cycle']}, rule "
            f"{data['rule']}, policy v{data['policy_version']}) {who}"
        )
    return ", ".join(f"{k}={v}" for k, v in data.items())
