"""Several consumers in one group share a multi-partition topic without loss or duplicates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consumers.broker import EmbeddedBroker, ensure_topics
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from tests.kafka_support import (
    RunningIngest,
    ingest_for,
    keyed,
    population,
    publish,
    recorded_event_ids,
    unique_topics,
    wait_until,
)

PARTITIONS = 6


@pytest.fixture
def postgres_settings(postgres_url: str) -> Settings:
    # The scale-out store: every consumer process writes to one PostgreSQL database.
    return Settings(database_url=postgres_url, log_format="json")


@pytest.fixture
def apps(postgres_settings: Settings) -> Iterator[list[LifecycleApplication]]:
    applications = [Components(postgres_settings).application() for _ in range(3)]
    yield applications
    for application in applications:
        application.close()


@pytest.mark.postgres
def test_two_consumers_split_the_partitions_and_a_leaving_one_hands_over_without_loss(
    postgres_settings: Settings, apps: list[LifecycleApplication], kafka_broker: EmbeddedBroker
) -> None:
    topics = unique_topics(partitions=PARTITIONS)
    ensure_topics(kafka_broker.bootstrap, topics)
    group = f"{topics.touchpoints}.group"
    first = population(customers=60, per_customer=5, prefix="first")
    second = population(customers=60, per_customer=5, prefix="second")
    a_app, b_app, reader = apps
    a = ingest_for(postgres_settings, a_app, kafka_broker.bootstrap, topics, group)
    b = ingest_for(postgres_settings, b_app, kafka_broker.bootstrap, topics, group)

    with RunningIngest(a):
        with RunningIngest(b):
            wait_until(
                lambda: (
                    len(a.assigned_partitions + b.assigned_partitions) == PARTITIONS
                    and bool(a.assigned_partitions)
                    and bool(b.assigned_partitions)
                ),
                what="both consumers to own partitions",
            )
            split = (a.assigned_partitions, b.assigned_partitions)
            publish(kafka_broker.bootstrap, topics.touchpoints, keyed(first))
            wait_until(lambda: sum(recorded_event_ids(reader).values()) == len(first))
        # b has left the group: a takes over b's partitions from the stored positions.
        publish(kafka_broker.bootstrap, topics.touchpoints, keyed(second))
        wait_until(lambda: sum(recorded_event_ids(reader).values()) == len(first + second))
        wait_until(lambda: a.assigned_partitions == list(range(PARTITIONS)))

    assert sorted(split[0] + split[1]) == list(range(PARTITIONS))
    assert a.stats.messages > 0 and b.stats.messages > 0
    assert recorded_event_ids(reader) == {m["event_id"]: 1 for m in first + second}
    # No message was handed to both: each was consumed exactly once across the group.
    assert a.stats.messages + b.stats.messages == len(first + second)
    assert a.stats.duplicates + b.stats.duplicates == 0
