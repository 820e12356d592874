"""A customer's history as auditors read it: every recorded event as a Contract 3
event with its log position, its hash-chain link, business and recorded time, and its
personal data revealed (or shown as erased). For ``lifecycle history`` and the
auditor routes of the HTTP API."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from eventsourcing.persistence import StoredEvent

from lifecycle.domain.errors import RelationshipNotFound
from lifecycle.domain.outbound import RelationshipEvent, to_relationship_event
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
) -> Iterator[RelationshipEvent]:
    """Log rows as Contract 3 events with positions, hashes and personal views."""
    decoded = [
        (
            position,
            app.mapper.to_domain_event(
                StoredEvent(
                    originator_id=originator_id,
                    originator_version=version,
                    topic=topic,
                    state=state,
                )
            ),
        )
        for position, originator_id, version, topic, state in rows
    ]
    revealer = None
    if vault is not None:
        revealer = vault.revealer(
            {
                getattr(e, "customer_id", "")
                for _, e in decoded
                if getattr(e, "personal", None) is not None
            }
        )
    for position, domain_event in decoded:
        yield to_relationship_event(
            domain_event,
            position=position,
            personal=personal_view(domain_event, revealer, reveal=reveal),
        )


def personal_view(
    domain_event: Any, revealer: Revealer | None, *, reveal: bool
) -> dict[str, Any] | None:
    recorded = getattr(domain_event, "personal", None)
    if recorded is None:
        return None
    if revealer is None:
        return {"encrypted": True}
    view = revealer.reveal(domain_event.customer_id, domain_event.event_id, recorded)
    if view is not None and not reveal and "erased" not in view:
        return {"encrypted": True}
    return view
