"""The outbound relay: the event log on ``crm.relationship-events``, per Contract 3."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eventsourcing.persistence import TrackingRecorder

from consumers.broker import EmbeddedBroker, Topics
from consumers.relay import Relay
from lifecycle.domain.clock import utc_now
from lifecycle.domain.messages import MessageRules, parse_touchpoint
from lifecycle.domain.outbound import (
    RelationshipEvent,
    RelationshipEventV1,
    to_relationship_event,
)
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import RELATIONSHIP_TOPICS, LifecycleApplication
from lifecycle.settings import Settings
from tests.kafka_support import encode, population, read_topic, touchpoint_v2


def record(app: LifecycleApplication, messages: list[dict[str, Any]]) -> None:
    now = utc_now()
    app.record_batch([parse_touchpoint(encode(m), now, MessageRules()) for m in messages])


@dataclass
class RelayOnTopics:
    """A relay of the test's log to the test's topics on the session broker."""

    settings: Settings
    app: LifecycleApplication
    tracking: TrackingRecorder
    broker: EmbeddedBroker
    topics: Topics

    def relay_everything(
        self, settings: Settings | None = None, tracking: TrackingRecorder | None = None
    ) -> int:
        """Relay all the log holds, as configured by ``settings`` (the test's by default)."""
        stop = threading.Event()
        relay: Relay = Components(settings or self.settings).relay(
            self.app, tracking or self.tracking, bootstrap=self.broker.bootstrap, topics=self.topics
        )
        with relay.open(stop):
            return relay.relay_available(stop)

    def published(self, count: int) -> list[Any]:
        """The first ``count`` records on the relationship events topic."""
        return read_topic(self.broker.bootstrap, self.topics.relationship_events, count)


@pytest.fixture
def relay(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> Iterator[RelayOnTopics]:
    tracking = Components(settings).relay_tracking()
    yield RelayOnTopics(settings, app, tracking.tracking_recorder(), kafka_broker, kafka_topics)
    tracking.close()


def log_events(app: LifecycleApplication) -> list[RelationshipEvent]:
    """Every relationship event of the log (the policy's stream is not relayed)."""
    notifications = app.recorder.select_notifications(1, 100_000, topics=RELATIONSHIP_TOPICS)
    return [to_relationship_event(app.mapper.to_domain_event(n)) for n in notifications]


def test_the_relay_output_matches_the_event_log_one_to_one_after_a_restart(
    app: LifecycleApplication, relay: RelayOnTopics
) -> None:
    record(app, population(customers=20, per_customer=6, prefix="early"))
    first_run = relay.relay_everything()
    record(app, population(customers=25, per_customer=3, prefix="late"))

    # A new relay with a new connection to its tracking store: a restarted process.
    restarted = Components(relay.settings).relay_tracking()
    try:
        second_run = relay.relay_everything(tracking=restarted.tracking_recorder())
    finally:
        restarted.close()

    expected = log_events(app)
    published = relay.published(len(expected))
    received = [RelationshipEvent.model_validate_json(r.value) for r in published]
    assert first_run + second_run == len(expected)
    assert sorted(e.event_id for e in received) == sorted(e.event_id for e in expected)
    as_json = [e.model_dump(mode="json") for e in expected]
    assert sorted(as_json, key=str) == sorted(
        (e.model_dump(mode="json") for e in received), key=str
    )


def test_relayed_events_are_keyed_by_customer_in_log_order_with_their_type_in_a_header(
    app: LifecycleApplication, relay: RelayOnTopics
) -> None:
    record(app, population(customers=10, per_customer=8))

    relay.relay_everything()

    expected = log_events(app)
    published = relay.published(len(expected))
    versions: dict[str, list[int]] = {}
    for message in published:
        event = RelationshipEvent.model_validate_json(message.value)
        assert message.key == event.customer_id.encode()
        assert dict(message.headers)["event_type"] == event.type.encode()
        assert dict(message.headers)["event_id"] == str(event.event_id).encode()
        versions.setdefault(event.customer_id, []).append(event.version)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    assert sum(len(v) for v in versions.values()) == len(expected)


def test_relayed_events_carry_schema_version_2_and_the_trace_of_the_touchpoint_that_caused_them(
    app: LifecycleApplication, relay: RelayOnTopics
) -> None:
    record(
        app,
        [
            touchpoint_v2(
                "trace-1", "trace-1-ev-1", "purchase", producer="shop", correlation_id="cart-7"
            )
        ],
    )

    relay.relay_everything()

    published = relay.published(3)
    events = [RelationshipEvent.model_validate_json(message.value) for message in published]
    assert [e.type for e in events] == ["RelationshipStarted", "TouchpointRecorded", "StageChanged"]
    assert all(dict(m.headers)["schema_version"] == b"2" for m in published)
    assert {(e.schema_version, e.correlation_id, e.producer) for e in events} == {
        (2, "cart-7", "shop")
    }


def test_relay_schema_version_1_publishes_the_contract_as_consumers_that_have_not_upgraded_read_it(
    app: LifecycleApplication, relay: RelayOnTopics
) -> None:
    record(app, [touchpoint_v2("old-1", "old-1-ev-1", "purchase", correlation_id="cart-8")])
    version_1 = relay.settings.model_copy(update={"relay_schema_version": 1})

    relay.relay_everything(version_1)

    published = relay.published(3)
    # Version 1 forbids fields it does not name: a version 2 field anywhere fails here.
    events = [RelationshipEventV1.model_validate_json(message.value) for message in published]
    assert all(dict(m.headers)["schema_version"] == b"1" for m in published)
    assert [e.model_dump(mode="json") for e in events] == [
        e.as_version_1().model_dump(mode="json") for e in log_events(app)
    ]
    recorded = next(e for e in events if e.type == "TouchpointRecorded")
    assert recorded.data["source"] == "tests"
    assert not {"producer", "correlation_id"} & set(recorded.data)
