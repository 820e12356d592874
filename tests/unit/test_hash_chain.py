"""The hash chain of a relationship's events, in the domain alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.domain import Snapshot

from lifecycle.domain.errors import PersonalDataAlreadyErased
from lifecycle.domain.hashchain import (
    GENESIS_HASH,
    install_hasher,
    reference_event_hash,
    reference_hasher,
)
from lifecycle.domain.policy import Policy
from lifecycle.domain.relationship import Relationship
from lifecycle.domain.streams import hashed_state
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Channel, Kind, Stage
from lifecycle.persistence.transcoding import orjson_hasher

DAY_ZERO = datetime(2024, 1, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["reference", "orjson"])
def hasher(request: pytest.FixtureRequest) -> Iterator[str]:
    install_hasher(reference_hasher if request.param == "reference" else orjson_hasher)
    yield request.param
    install_hasher(orjson_hasher)


def touchpoint(number: int, kind: str = "inquiry", **attributes: Any) -> Touchpoint:
    return Touchpoint(
        event_id=f"t-{number}",
        customer_id="c-1",
        kind=Kind(kind),
        channel=Channel.EMAIL,
        occurred_at=DAY_ZERO + timedelta(days=number),
        producer="helpdesk",
        attributes=attributes,
    )


def recorded_events(*touchpoints: Touchpoint) -> list[Any]:
    relationship = Relationship(customer_id="c-1", started_at=DAY_ZERO)
    for item in touchpoints:
        relationship.record_touchpoint(item, Policy.default())
    relationship.change_stage(
        Stage.DISSOLUTION, actor="ana", reason="closed", at=DAY_ZERO, policy_version=1
    )
    relationship.erase_personal_data(reason="request", actor=None, at=DAY_ZERO)
    return list(relationship.collect_events())


def state_of(event: Any) -> dict[str, Any]:
    """The event's state as the store keeps it: id and version are columns of their own,
    and the class version is in it from version 2 on."""
    state = {
        k: v for k, v in vars(event).items() if k not in ("originator_id", "originator_version")
    }
    return dict(hashed_state(type(event), state))


def recomputed(event: Any) -> str:
    return reference_event_hash(
        type(event).__name__, event.originator_id, event.originator_version, state_of(event)
    )


def test_the_first_event_links_to_the_genesis_hash(hasher: str) -> None:
    assert recorded_events()[0].previous_hash == GENESIS_HASH


def test_each_event_links_to_the_hash_of_the_one_before(hasher: str) -> None:
    events = recorded_events(touchpoint(1), touchpoint(2, "purchase", amount="3.50"))
    assert [e.previous_hash for e in events[1:]] == [e.hash for e in events[:-1]]


def test_every_kind_of_event_hashes_to_its_own_recorded_content(hasher: str) -> None:
    events = recorded_events(touchpoint(1), touchpoint(2, "purchase", amount="3.50", ratio=0.25))
    assert {type(e).__name__ for e in events} == {
        "RelationshipStarted",
        "TouchpointRecorded",
        "StageChanged",
        "PersonalDataErased",
    }
    assert [recomputed(e) for e in events] == [e.hash for e in events]


def test_both_hashers_give_the_same_hashes() -> None:
    install_hasher(reference_hasher)
    try:
        events = recorded_events(touchpoint(1, note="é ✓"), touchpoint(2, ratio=1e-05))
    finally:
        install_hasher(orjson_hasher)
    assert [recomputed(e) for e in events] == [e.hash for e in events]


@pytest.mark.parametrize(
    "change",
    [
        {"previous_hash": "1" * 64},
        {"channel": "phone"},
        {"timestamp": DAY_ZERO},
        {"attributes": {"campaign": "autumn"}},
    ],
)
def test_changing_any_content_changes_the_hash(change: dict[str, Any]) -> None:
    event = recorded_events(touchpoint(1, campaign="spring"))[1]
    state = {**state_of(event), **change}
    assert reference_event_hash("TouchpointRecorded", event.originator_id, 2, state) != event.hash


def test_moving_an_event_to_another_place_changes_its_hash() -> None:
    event = recorded_events(touchpoint(1))[1]
    state = state_of(event)
    elsewhere = [
        reference_event_hash("TouchpointRecorded", event.originator_id, 3, state),
        reference_event_hash("TouchpointRecorded", "0" * 32, 2, state),
        reference_event_hash("StageChanged", event.originator_id, 2, state),
    ]
    assert event.hash not in elsewhere


def test_a_relationship_rebuilt_from_a_snapshot_continues_its_chain() -> None:
    relationship = Relationship(customer_id="c-1", started_at=DAY_ZERO)
    relationship.record_touchpoint(touchpoint(1), Policy.default())
    relationship.collect_events()
    restored = Snapshot.take(relationship).mutate(None)
    assert isinstance(restored, Relationship)
    restored.record_touchpoint(touchpoint(2), Policy.default())
    assert restored.collect_events()[0].previous_hash == relationship.last_hash


def test_erasing_personal_data_marks_the_relationship() -> None:
    relationship = Relationship(customer_id="c-1", started_at=DAY_ZERO)
    relationship.erase_personal_data(reason="request", actor="dpo", at=DAY_ZERO)
    assert relationship.personal_data_erased is True


def test_personal_data_is_erased_once() -> None:
    relationship = Relationship(customer_id="c-1", started_at=DAY_ZERO)
    relationship.erase_personal_data(reason="request", actor="dpo", at=DAY_ZERO)
    with pytest.raises(PersonalDataAlreadyErased):
        relationship.erase_personal_data(reason="again", actor="dpo", at=DAY_ZERO)


def test_the_state_a_chained_event_hashes_is_the_state_the_library_stores() -> None:
    """The library's mapper adds ``class_version`` to the stored state of an event class
    at version 2 or later; the domain hashes the same state, so the stored bytes verify."""
    from eventsourcing.domain import Aggregate, event
    from eventsourcing.persistence import Mapper

    from lifecycle.audit.chain import check_rows
    from lifecycle.domain.streams import ChainedAggregate
    from lifecycle.persistence.transcoding import OrjsonTranscoder

    class Versioned(ChainedAggregate):
        class Event(ChainedAggregate.Event):
            pass

        class Opened(Event, Aggregate.Created):
            pass

        class Noted(Event):
            class_version = 3
            text: str

        @event(Opened)
        def __init__(self) -> None:
            pass

        @event(Noted)
        def note(self, text: str) -> None:
            pass

    aggregate = Versioned()
    aggregate.note("kept")
    mapper: Mapper[Any] = Mapper(transcoder=OrjsonTranscoder())
    rows = [
        (n, stored.originator_id.hex, stored.originator_version, stored.topic, stored.state)
        for n, stored in enumerate(map(mapper.to_stored_event, aggregate.collect_events()))
    ]
    assert b'"class_version":3' in rows[1][4]
    assert [verified for _, _, verified in check_rows(rows)] == [True, True]
