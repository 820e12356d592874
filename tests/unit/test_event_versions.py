"""Contract 6: recorded events have versions. Events of version 1 are read upcast to the
current version with the library's mechanism; their stored bytes are never rewritten,
and every event a touchpoint causes carries the touchpoint's trace."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import orjson
import pytest
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from lifecycle.audit.chain import check_rows
from lifecycle.domain.outbound import (
    RelationshipEvent,
    RelationshipEventV1,
    to_relationship_event,
)
from lifecycle.domain.policy import Policy
from lifecycle.domain.relationship import Relationship
from lifecycle.domain.vocabulary import Stage
from lifecycle.persistence.transcoding import OrjsonTranscoder
from tests.builders import DAY_ZERO, touchpoint

MAPPER: Mapper[Any] = Mapper(transcoder=OrjsonTranscoder())


def caused_by(**trace: Any) -> list[Any]:
    """The events of a new relationship whose first touchpoint, a purchase, has ``trace``."""
    first = replace(touchpoint("purchase", customer="c-1"), **trace)
    relationship = Relationship(
        customer_id="c-1",
        started_at=first.occurred_at,
        correlation_id=first.correlation_id,
        producer=first.producer,
    )
    relationship.record_touchpoint(first, Policy.default())
    return list(relationship.collect_events())


def test_every_event_a_touchpoint_causes_carries_its_correlation_id_and_producer() -> None:
    events = caused_by(correlation_id="flow-1", producer="shop")

    assert [type(e).__name__ for e in events] == [
        "RelationshipStarted",
        "TouchpointRecorded",
        "StageChanged",
    ]
    assert {(e.correlation_id, e.producer) for e in events} == {("flow-1", "shop")}


def test_a_reactivation_carries_the_trace_of_the_touchpoint_that_reactivated() -> None:
    relationship = Relationship(customer_id="c-1", started_at=DAY_ZERO)
    relationship.record_touchpoint(touchpoint("cancellation", customer="c-1"), Policy.default())
    relationship.collect_events()
    again = replace(touchpoint("inquiry", 1, customer="c-1"), correlation_id="r")

    relationship.record_touchpoint(again, Policy.default())

    reactivation, _ = relationship.collect_events()
    assert (reactivation.rule, reactivation.correlation_id) == ("reactivation", "r")


def test_stage_changes_no_touchpoint_caused_carry_no_trace() -> None:
    relationship = Relationship(customer_id="c-1", started_at=DAY_ZERO)
    relationship.record_touchpoint(touchpoint("inquiry", customer="c-1"), Policy.default())
    relationship.change_stage(
        Stage.AWARENESS, actor="ana", reason="met", at=DAY_ZERO, policy_version=1
    )
    relationship.dissolve_if_inactive(Policy.default(), DAY_ZERO + timedelta(days=400))

    manual, swept = relationship.collect_events()[-2:]
    assert (manual.correlation_id, manual.producer) == (None, None)
    assert (swept.correlation_id, swept.producer) == (None, None)


def test_a_recorded_touchpoint_keeps_source_beside_producer_for_version_1_readers() -> None:
    recorded = caused_by(producer="billing")[1]

    assert recorded.source == recorded.producer == "billing"


@pytest.mark.parametrize(
    "event_class",
    [Relationship.RelationshipStarted, Relationship.TouchpointRecorded, Relationship.StageChanged],
)
def test_the_event_classes_a_touchpoint_causes_are_at_version_2(event_class: type) -> None:
    assert getattr(event_class, "class_version", 1) == 2


def test_new_events_are_stored_with_their_class_version_and_their_hashes_cover_it() -> None:
    stored = [MAPPER.to_stored_event(event) for event in caused_by(correlation_id="flow-2")]
    rows = [
        (n, s.originator_id.hex, s.originator_version, s.topic, s.state)
        for n, s in enumerate(stored, start=1)
    ]

    assert all(b'"class_version":2' in s.state for s in stored)
    assert [verified for _, _, verified in check_rows(rows)] == [True, True, True]


def version_1(event_class: type, state: dict[str, Any]) -> Any:
    """An event of ``event_class`` as release 0.1 stored it, read by the current code."""
    state = {"timestamp": {"_type_": "datetime_iso", "_data_": DAY_ZERO.isoformat()}, **state}
    stored = StoredEvent(
        originator_id=uuid4(),
        originator_version=2,
        topic=get_topic(event_class),
        state=orjson.dumps(state),
    )
    return MAPPER.to_domain_event(stored)


OCCURRED = {"_type_": "datetime_iso", "_data_": DAY_ZERO.isoformat()}
CHAIN = {"previous_hash": "0" * 64, "hash": "1" * 64, "customer_id": "c-1"}


def test_a_version_1_touchpoint_is_read_with_its_source_as_producer_and_no_correlation_id() -> None:
    event = version_1(
        Relationship.TouchpointRecorded,
        {
            **CHAIN,
            "event_id": "e-1",
            "kind": "purchase",
            "channel": "web",
            "occurred_at": OCCURRED,
            "source": "shop",
            "attributes": {"amount": "3.50", "currency": "EUR"},
            "personal": None,
            "schema_version": 1,
        },
    )

    assert (event.producer, event.correlation_id, event.source) == ("shop", None, "shop")
    assert event.attributes == {"amount": "3.50", "currency": "EUR"}


def test_a_version_1_stage_change_is_read_with_no_trace() -> None:
    event = version_1(
        Relationship.StageChanged,
        {
            **CHAIN,
            "from_stage": "exploration",
            "to_stage": "awareness",
            "cycle": 1,
            "rule": "first-purchase",
            "policy_version": 1,
            "triggered_by": "e-1",
            "actor": None,
            "reason": None,
            "effective_at": OCCURRED,
        },
    )

    assert (event.correlation_id, event.producer) == (None, None)


def test_a_version_1_start_is_read_with_no_trace() -> None:
    event = version_1(
        Relationship.RelationshipStarted,
        {
            **CHAIN,
            "started_at": OCCURRED,
            "originator_topic": get_topic(Relationship),
        },
    )

    assert (event.correlation_id, event.producer) == (None, None)
    assert event.started_at == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def test_contract_3_version_2_names_the_trace_in_its_envelope() -> None:
    outbound = [to_relationship_event(e) for e in caused_by(correlation_id="f", producer="p")]

    assert {(e.schema_version, e.correlation_id, e.producer) for e in outbound} == {(2, "f", "p")}


def test_contract_3_version_1_is_version_2_without_the_trace() -> None:
    event: RelationshipEvent = to_relationship_event(caused_by(correlation_id="f")[1])

    old = event.as_version_1()

    assert type(old) is RelationshipEventV1
    assert old.data == {
        k: v for k, v in event.data.items() if k not in ("correlation_id", "producer")
    }
    assert old.model_dump(exclude={"data"}) == event.model_dump(
        exclude={"data", "schema_version", "correlation_id", "producer"}
    )
