"""The consumer rides out a broker that goes away and a database that goes away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from consumers.broker import EmbeddedBroker, ensure_topics, free_port
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.persistence.store import Store
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from tests.conftest import connections_refused
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


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of this test alone, since the test stops it."""
    with EmbeddedBroker(free_port(), unique_topics(partitions=2)) as broker:
        yield broker


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_consumer_resumes_after_the_broker_is_stopped_and_started_again(
    settings: Settings, app: LifecycleApplication, own_broker: EmbeddedBroker
) -> None:
    topics = own_broker.topics
    before = population(customers=10, per_customer=3, prefix="before")
    after = population(customers=10, per_customer=3, prefix="after")
    reader = Components(settings).application()
    ingest = ingest_for(settings, app, own_broker.bootstrap, topics)

    with structlog.testing.capture_logs() as logs, RunningIngest(ingest):
        publish(own_broker.bootstrap, topics.touchpoints, keyed(before))
        wait_until(lambda: sum(recorded_event_ids(reader).values()) == len(before))
        own_broker.stop()
        wait_until(lambda: _logged(logs, "broker_unavailable"), what="the outage to be logged")
        # Memory storage: the broker comes back empty, its topics created anew.
        own_broker.start()
        publish(own_broker.bootstrap, topics.touchpoints, keyed(after))
        wait_until(lambda: sum(recorded_event_ids(reader).values()) == len(before + after))

    assert recorded_event_ids(reader) == {m["event_id"]: 1 for m in before + after}
    assert _logged(logs, "broker_available_again")
    reader.close()


def _logged(logs: list[dict[str, Any]], event: str) -> bool:
    return any(entry["event"] == event for entry in logs)


@pytest.mark.postgres
def test_the_consumer_waits_for_an_unavailable_database_and_records_everything_once(
    postgres_server: Any, postgres_url: str, kafka_broker: EmbeddedBroker
) -> None:
    settings = Settings(database_url=postgres_url, log_format="json")
    topics = unique_topics(partitions=1)
    ensure_topics(kafka_broker.bootstrap, topics)
    app = Components(settings).application()
    reader = Components(settings).application()
    ingest = ingest_for(settings, app, kafka_broker.bootstrap, topics)
    before = population(customers=5, per_customer=4, prefix="before")
    during = population(customers=5, per_customer=4, prefix="during")
    database = Store.from_url(postgres_url).postgres_dbname

    with structlog.testing.capture_logs() as logs, RunningIngest(ingest):
        publish(kafka_broker.bootstrap, topics.touchpoints, keyed(before))
        wait_until(lambda: sum(recorded_event_ids(reader).values()) == len(before))
        with connections_refused(postgres_server, database):
            publish(kafka_broker.bootstrap, topics.touchpoints, keyed(during))
            wait_until(
                lambda: _logged(logs, "database_unavailable"), what="the outage to be logged"
            )
            time.sleep(1)  # the consumer keeps retrying the same chunk meanwhile
        reader.close()  # its connections were cut; a new reader connects afresh
        reader = Components(settings).application()
        wait_until(lambda: sum(recorded_event_ids(reader).values()) == len(before + during))

    assert recorded_event_ids(reader) == {m["event_id"]: 1 for m in before + during}
    assert ingest.stats.messages == len(before + during)
    app.close()
    reader.close()
