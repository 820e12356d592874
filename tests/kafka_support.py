"""Fixtures and helpers for tests against the real embedded broker (a pytest plugin).

One broker serves the whole session; every test gets topics and a consumer group of
its own, so tests never see each other's messages.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.utils import get_topic
from kafka import KafkaConsumer, TopicPartition

from consumers.broker import EmbeddedBroker, Topics, ensure_topics, free_port
from consumers.clients import new_producer
from consumers.dead_letters import DeadLetter, DeadLetterPublisher, Headers
from consumers.ingest import TouchpointIngest
from lifecycle.domain.relationship import Relationship
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings

TOUCHPOINT_RECORDED_TOPIC = get_topic(Relationship.TouchpointRecorded)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(free_port()) as broker:
        yield broker


@pytest.fixture
def kafka_topics(kafka_broker: EmbeddedBroker) -> Topics:
    """Topics of this test only (3 touchpoint partitions), created on the session broker."""
    topics = unique_topics(partitions=3)
    ensure_topics(kafka_broker.bootstrap, topics)
    return topics


def unique_topics(partitions: int) -> Topics:
    run = f"t{uuid.uuid4().hex[:10]}"
    return Topics(
        touchpoints=f"{run}.touchpoints",
        dead_letters=f"{run}.touchpoints.dlq",
        relationship_events=f"{run}.relationship-events",
        touchpoint_partitions=partitions,
    )


def touchpoint(
    customer_id: str, event_id: str, kind: str = "inquiry", hour: int = 0, **fields: Any
) -> dict[str, Any]:
    """A valid Contract 1 message, ``hour`` hours into 2025."""
    occurred = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
    message: dict[str, Any] = {
        "event_id": event_id,
        "customer_id": customer_id,
        "kind": kind,
        "channel": "email",
        "occurred_at": occurred.isoformat(),
        "source": "tests",
    }
    if kind == "purchase":
        message["attributes"] = {"amount": "10.00"}
    message.update(fields)
    return message


def touchpoint_v2(
    customer_id: str, event_id: str, kind: str = "inquiry", hour: int = 0, **fields: Any
) -> dict[str, Any]:
    """A valid version 2 message (Contract 6), ``hour`` hours into 2025."""
    message = {
        k: v for k, v in touchpoint(customer_id, event_id, kind, hour).items() if k != "source"
    }
    message.update(schema_version=2, producer="tests")
    if kind == "purchase":
        message["attributes"] = {"total": {"amount": "10.00", "currency": "EUR"}}
    message.update(fields)
    return message


def population(customers: int, per_customer: int, prefix: str = "c") -> list[dict[str, Any]]:
    """Valid touchpoints, interleaved across customers as a live feed would be."""
    return [
        touchpoint(
            f"{prefix}-{c}", f"{prefix}-{c}-ev-{n}", "purchase" if n % 3 == 0 else "inquiry", n
        )
        for n in range(per_customer)
        for c in range(customers)
    ]


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


Sendable = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def keyed(messages: Iterable[dict[str, Any]]) -> list[Sendable]:
    return [(m["customer_id"].encode(), encode(m), []) for m in messages]


def publish(bootstrap: str, topic: str, messages: Iterable[Sendable]) -> dict[int, int]:
    """Send (key, value, headers); returns the next offset per partition."""
    producer = new_producer(bootstrap, "tests")
    try:
        futures = [
            producer.send(topic, key=key, value=value, headers=headers)
            for key, value, headers in messages
        ]
        producer.flush()
        next_offsets: dict[int, int] = {}
        for future in futures:
            metadata = future.get(timeout=30)
            next_offsets[metadata.partition] = max(
                next_offsets.get(metadata.partition, 0), metadata.offset + 1
            )
        return next_offsets
    finally:
        producer.close()


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    """The first ``count`` records of ``topic`` across its partitions (no group)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        # Anything beyond the expected count would be a surplus delivery: look briefly.
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


def dead_letter(
    key: str,
    value: bytes,
    error_code: str,
    error_reason: str,
    *,
    partition: int,
    offset: int,
    headers: Headers | None = None,
) -> DeadLetter:
    """The dead letter of a message keyed ``key``, read at ``offset`` of ``partition`` of
    crm.touchpoints."""
    return DeadLetter(
        key=key.encode(),
        value=value,
        headers=headers or [],
        error_code=error_code,
        error_reason=error_reason,
        source_topic="crm.touchpoints",
        source_partition=partition,
        source_offset=offset,
    )


def topics_with_dead_letters(
    broker: EmbeddedBroker, letters: list[DeadLetter], partitions: int
) -> Topics:
    """Topics of their own, created on ``broker``, whose dead-letter topic holds ``letters``
    (from offset 0) as the consumer writes them."""
    topics = unique_topics(partitions)
    ensure_topics(broker.bootstrap, topics)
    producer = new_producer(broker.bootstrap, "tests")
    try:
        DeadLetterPublisher(producer, topics.dead_letters).publish(letters, threading.Event())
    finally:
        producer.close()
    return topics


def recorded_event_ids(app: LifecycleApplication) -> Counter[str]:
    """How many times each upstream event_id was recorded as a touchpoint."""
    counts: Counter[str] = Counter()
    start = 1
    while True:
        page = app.recorder.select_notifications(start, 1000, topics=[TOUCHPOINT_RECORDED_TOPIC])
        for notification in page:
            counts[app.mapper.to_domain_event(notification).event_id] += 1  # type: ignore[attr-defined]
        if len(page) < 1000:
            return counts
        start = page[-1].id + 1


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def consumer_env(
    bootstrap: str, topics: Topics, database_url: str, max_poll_records: int
) -> dict[str, str]:
    """The environment of a ``lifecycle consume`` process reading ``topics`` in a group of
    their own into ``database_url``, ``max_poll_records`` at a time, logging JSON."""
    return {
        "LIFECYCLE_DATABASE_URL": database_url,
        "LIFECYCLE_KAFKA_BOOTSTRAP": bootstrap,
        "LIFECYCLE_KAFKA_TOUCHPOINTS_TOPIC": topics.touchpoints,
        "LIFECYCLE_KAFKA_DEAD_LETTER_TOPIC": topics.dead_letters,
        "LIFECYCLE_KAFKA_CONSUMER_GROUP": f"{topics.touchpoints}.group",
        "LIFECYCLE_KAFKA_MAX_POLL_RECORDS": str(max_poll_records),
        "LIFECYCLE_LOG_FORMAT": "json",
    }


def ingest_for(
    settings: Settings,
    app: LifecycleApplication,
    bootstrap: str,
    topics: Topics,
    group_id: str | None = None,
) -> TouchpointIngest:
    return Components(settings).ingest(
        app,
        bootstrap=bootstrap,
        topics=topics,
        group_id=group_id or f"{topics.touchpoints}.group",
    )


class RunningIngest:
    """A consumer running ``run(stop)`` in a thread, as ``lifecycle consume`` does."""

    def __init__(self, ingest: TouchpointIngest) -> None:
        self.ingest = ingest
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.ingest.run(self.stop)
        except BaseException as error:
            self.error = error
            raise

    def __enter__(self) -> RunningIngest:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the consumer did not stop"
        assert self.error is None, f"the consumer failed: {self.error!r}"
