"""Contracts with the private APIs of the libraries that need a real store or broker:
what ``lifecycle/persistence/library.py`` relies on of eventsourcing on SQLite and
PostgreSQL, what the views' SQL relies on of its tracking tables, and what
``consumers/kafka_internals.py`` relies on of kafka-python against the embedded broker.
The rest: ``tests/unit/test_library_contracts.py``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent, Tracking
from kafka import KafkaConsumer
from psycopg.sql import SQL, Identifier

from consumers.broker import EmbeddedBroker, Topics, free_port
from consumers.clients import new_consumer
from consumers.kafka_internals import broker_reachable, topic_id
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.persistence import library
from lifecycle.persistence.postgres import BatchPostgresProcessRecorder
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.summary import Summary
from projections.views import UPSTREAM
from projections.wiring import close_view
from tests.contracts import EVENTSOURCING, KAFKA
from tests.kafka_support import unique_topics

INSERT_TRACKING = (
    "TrackingRecorder._insert_tracking(cursor, tracking), which lifecycle/persistence/"
    "library.py (insert_tracking) uses to record a position with the rows it covers"
)
POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def stored_events(count: int) -> list[StoredEvent]:
    return [StoredEvent(uuid.uuid4(), 1, "contracts:Happened", b"{}") for _ in range(count)]


# eventsourcing -------------------------------------------------------------------------


def test_a_position_recorded_in_an_open_transaction_is_committed_with_it(
    app: LifecycleApplication,
) -> None:
    recorder = app.recorder
    with recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        library.insert_tracking(recorder, cursor, Tracking("contracts", 7))

    assert recorder.max_tracking_id("contracts") == 7, (
        f"{EVENTSOURCING}: {INSERT_TRACKING}, no longer records it in the caller's transaction"
    )


def test_a_position_recorded_in_an_open_transaction_is_rolled_back_with_it(
    app: LifecycleApplication,
) -> None:
    recorder = app.recorder
    with (
        pytest.raises(RuntimeError),
        recorder.datastore.transaction(commit=True) as cursor,  # type: ignore[attr-defined]
    ):
        library.insert_tracking(recorder, cursor, Tracking("contracts", 7))
        raise RuntimeError("the rows this position covers were not written")

    assert recorder.max_tracking_id("contracts") is None, (
        f"{EVENTSOURCING}: {INSERT_TRACKING}, commits it apart from the caller's transaction"
    )


def test_a_position_recorded_already_is_refused(app: LifecycleApplication) -> None:
    recorder = app.recorder
    recorder.insert_tracking(Tracking("contracts", 7))

    with (
        pytest.raises(IntegrityError),
        recorder.datastore.transaction(commit=True) as cursor,  # type: ignore[attr-defined]
    ):
        library.insert_tracking(recorder, cursor, Tracking("contracts", 7))
        pytest.fail(
            f"{EVENTSOURCING}: {INSERT_TRACKING}, accepts a position recorded already: "
            "a Kafka message would be recorded twice and a page of a read model applied twice"
        )


def test_the_views_read_and_write_the_library_s_tracking_table_as_it_does(
    settings: Settings,
) -> None:
    view = Components(settings).open_view(Summary)
    try:
        view.insert_tracking(Tracking(UPSTREAM, 5))
        view.write_page(Tracking(UPSTREAM, 6), 5, lambda cursor: None)
        position = view.position()
    finally:
        close_view(view)

    assert position == 6, (
        f"{EVENTSOURCING}: the tracking table no longer holds one position per "
        "application_name in notification_id, as projections/views.py reads, deletes and "
        "moves them in SQL of its own (_tracking_position, drop_next, swap_in_next)"
    )


@POSTGRES_ONLY
def test_the_postgres_steps_return_the_ids_of_the_events_they_insert(
    app: LifecycleApplication,
) -> None:
    recorder = app.recorder
    assert isinstance(recorder, BatchPostgresProcessRecorder)

    ids = recorder.insert_events(stored_events(3), tracking=Tracking("contracts", 1))

    logged = [n.id for n in recorder.select_notifications(1, 10)]
    assert (ids, recorder.max_tracking_id("contracts")) == (logged, 1), (
        f"{EVENTSOURCING}: the events COPYed under the table lock of lifecycle/persistence/"
        "library.py (lock_log) are no longer recorded with their position, or their "
        "notification ids no longer the run ending at the sequence's value: re-check the "
        "lock against the library's insert_events"
    )


@POSTGRES_ONLY
def test_the_postgres_lock_makes_writers_of_the_log_take_turns(
    app: LifecycleApplication,
) -> None:
    recorder = app.recorder
    assert isinstance(recorder, BatchPostgresProcessRecorder)
    with recorder.datastore.transaction(commit=False) as holder:
        library.lock_log(recorder, holder)
        with (
            pytest.raises(OperationalError),
            recorder.datastore.transaction(commit=False) as other,
        ):
            other.execute("SET LOCAL lock_timeout = '100ms'")
            other.execute(
                SQL("LOCK TABLE {0} IN ROW EXCLUSIVE MODE").format(
                    Identifier(recorder.events_table_name)
                )
            )
            pytest.fail(
                f"{EVENTSOURCING}: PostgresApplicationRecorder._lock_table, which "
                "lifecycle/persistence/library.py (lock_log) takes, no longer keeps another "
                "writer from inserting: notification ids could be drawn by two writers at once "
                "and committed out of order"
            )


@POSTGRES_ONLY
def test_the_postgres_steps_notify_those_who_follow_the_log(
    app: LifecycleApplication, settings: Settings
) -> None:
    recorder = app.recorder
    assert isinstance(recorder, BatchPostgresProcessRecorder)
    with psycopg.connect(settings.database_url, autocommit=True) as listener:
        listener.execute(SQL("LISTEN {0}").format(Identifier(recorder.channel_name)))

        recorder.insert_events(stored_events(1))

        notified = [n.channel for n in listener.notifies(timeout=10, stop_after=1)]
    assert notified == [recorder.channel_name], (
        f"{EVENTSOURCING}: PostgresApplicationRecorder._notify_channel no longer sends "
        "NOTIFY; lifecycle/persistence/library.py (lock_log) relies on it to wake the "
        "projection runners (projections/service.py)"
    )


# kafka-python --------------------------------------------------------------------------


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of this test alone, since the test stops it."""
    with EmbeddedBroker(free_port(), unique_topics(partitions=1)) as broker:
        yield broker


def subscribed(bootstrap: str, topics: Topics) -> KafkaConsumer:
    """A consumer of the touchpoint topic, once its partitions are assigned."""
    consumer = new_consumer(bootstrap, "contracts", group_id=f"{topics.touchpoints}.contracts")
    consumer.subscribe([topics.touchpoints])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)
    assert consumer.assignment(), "the consumer was assigned no partition"
    return consumer


def test_the_consumer_knows_the_id_the_broker_gave_a_topic(
    kafka_broker: EmbeddedBroker, kafka_topics: Topics
) -> None:
    consumer = subscribed(kafka_broker.bootstrap, kafka_topics)
    try:
        reported = topic_id(consumer, kafka_topics.touchpoints)
    finally:
        consumer.close()

    assert reported is not None and uuid.UUID(reported), (
        f"{KAFKA}: consumer._client.cluster.topic_id(topic) no longer reports the "
        "broker's topic id; consumers/kafka_internals.py (topic_id) uses it to notice a "
        "topic deleted and created again under the consumer: re-check it"
    )


def test_the_consumer_knows_whether_a_broker_answers(own_broker: EmbeddedBroker) -> None:
    consumer = subscribed(own_broker.bootstrap, own_broker.topics)
    try:
        while_up = broker_reachable(consumer)
        own_broker.stop()
        deadline = time.monotonic() + 30
        while broker_reachable(consumer) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=100)
        once_down = broker_reachable(consumer)
    finally:
        consumer.close()

    assert (while_up, once_down) == (True, False), (
        f"{KAFKA}: consumer._client.cluster.brokers() and consumer._client.connected(node) "
        "no longer tell whether a broker answers; consumers/kafka_internals.py "
        "(broker_reachable) relies on them to log broker_unavailable: re-check it"
    )
