"""Time travel: a relationship as the engine knew it at a recorded time, or at a version,
is exactly what its events recorded up to then rebuild; and the history says, for every
event, when it happened, when it was recorded, where it sits in the log and its hash."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle.audit.history import audited_history
from lifecycle.domain.errors import RelationshipNotFound
from lifecycle.domain.relationship import Relationship
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Channel, Kind
from lifecycle.entrypoints.cli.records import describe_state
from tests.integration.audit_support import DAY_ZERO, AuditedStore, audited_store

_customers = itertools.count()
KINDS = ("inquiry", "purchase", "referral", "survey", "cancellation", "trial", "renewal")


@pytest.fixture
def store(database_url: str) -> Iterator[AuditedStore]:
    with audited_store(database_url) as audited:
        yield audited


def touchpoint(customer: str, number: int, kind: str, day: int) -> Touchpoint:
    attributes: dict[str, Any] = {"purchase": {"amount": "5"}, "survey": {"score": 4}}.get(kind, {})
    return Touchpoint(
        event_id=f"{customer}-{number}",
        customer_id=customer,
        kind=Kind(kind),
        channel=Channel.PHONE,
        occurred_at=DAY_ZERO + timedelta(days=day),
        producer="crm",
        attributes=attributes,
    )


def rebuilt(events: list[Any]) -> Relationship:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    assert isinstance(aggregate, Relationship)
    return aggregate


batches = st.lists(
    st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 800)), min_size=1, max_size=4),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=batches, cut=st.integers(0, 1000))
def test_state_as_of_a_recorded_time_is_the_state_rebuilt_from_the_events_recorded_by_then(
    store: AuditedStore, batches: list[list[tuple[str, int]]], cut: int
) -> None:
    customer = f"traveller-{next(_customers)}"
    numbers = itertools.count()
    for batch in batches:
        store.app.record_batch([touchpoint(customer, next(numbers), k, d) for k, d in batch])
    events = store.app.history(customer)
    as_of = events[cut % len(events)].timestamp
    recorded_by_then = [event for event in events if event.timestamp <= as_of]
    assert describe_state(store.app.relationship_as_of(customer, as_of)) == describe_state(
        rebuilt(recorded_by_then)
    )


def test_state_at_a_version_is_the_state_its_first_events_rebuild(store: AuditedStore) -> None:
    kinds = ("inquiry", "purchase", "purchase", "referral", "cancellation", "trial")
    store.app.record_batch([touchpoint("vic", n, kind, n * 10) for n, kind in enumerate(kinds)])
    events = store.app.history("vic")
    for version in range(1, len(events) + 1):
        assert describe_state(store.app.relationship("vic", version=version)) == describe_state(
            rebuilt(events[:version])
        )


def test_nothing_was_known_before_the_first_event_was_recorded(store: AuditedStore) -> None:
    store.app.record_batch([touchpoint("early", 0, "inquiry", 0)])
    first = store.app.history("early")[0].timestamp
    with pytest.raises(RelationshipNotFound):
        store.app.relationship_as_of("early", first - timedelta(microseconds=1))


def test_the_history_lists_times_version_position_and_hash_of_every_event(
    store: AuditedStore,
) -> None:
    store.app.record_batch([touchpoint("hal", n, "purchase", n * 40) for n in range(3)])
    history = audited_history(store.app, "hal")
    assert [event.version for event in history] == list(range(1, len(history) + 1))
    positions = [event.position for event in history]
    assert positions == sorted(positions)
    assert history[1].occurred_at == DAY_ZERO
    assert history[1].recorded_at >= history[0].recorded_at
    links = [(event.previous_hash, event.hash) for event in history]
    assert all(links[n][0] == links[n - 1][1] for n in range(1, len(links)))
