"""Contract 6 against the real broker: a message of a version the engine does not know
is dead-lettered as such, and once the engine knows it, the re-drive records it once,
however often it is re-driven."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from consumers.broker import EmbeddedBroker, Topics
from consumers.clients import new_consumer, new_producer
from consumers.dead_letters import RedriveReport, StoredDeadLetter, read_dead_letters, redrive
from consumers.ingest import IngestStats, TouchpointIngest
from consumers.redrive_log import Redrive
from lifecycle.domain.messages import GATE, MessageGate
from lifecycle.domain.relationship import Relationship
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from tests.kafka_support import (
    encode,
    keyed,
    publish,
    recorded_event_ids,
    touchpoint,
    touchpoint_v2,
)

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

OLD_ENGINE = MessageGate(accepts={1})
"""The gate of the engine before version 2 of the message: it knew version 1 only."""


def consume(
    settings: Settings,
    app: LifecycleApplication,
    broker: EmbeddedBroker,
    topics: Topics,
    targets: dict[int, int],
    gate: MessageGate = GATE,
) -> IngestStats:
    """Run a consumer with ``gate`` until ``targets`` are stored."""
    stop = threading.Event()
    ingest = TouchpointIngest(
        app,
        bootstrap=broker.bootstrap,
        topic=topics.touchpoints,
        group_id=f"{topics.touchpoints}.group",
        dead_letter_topic=topics.dead_letters,
        rules=settings.message_rules,
        gate=gate,
    )
    with ingest.open(stop):
        ingest.consume_until(targets, stop, timeout=60)
        return ingest.stats


def dead_letters(broker: EmbeddedBroker, topics: Topics) -> list[StoredDeadLetter]:
    consumer = new_consumer(broker.bootstrap, "tests")
    try:
        return read_dead_letters(consumer, topics.dead_letters)
    finally:
        consumer.close()


def redrive_all(
    settings: Settings, broker: EmbeddedBroker, topics: Topics, *, again: bool = False
) -> RedriveReport:
    """What ``lifecycle dead-letters redrive [--again]`` does."""
    letters = dead_letters(broker, topics)
    producer = new_producer(broker.bootstrap, "tests")
    memory = Components(settings).redrive_log()
    try:
        return redrive(letters, producer, topics.touchpoints, memory, again=again)
    finally:
        memory.close()
        producer.close()


def recorded(app: LifecycleApplication, customer_id: str, event_id: str) -> Any:
    return next(
        event
        for event in app.history(customer_id)
        if isinstance(event, Relationship.TouchpointRecorded) and event.event_id == event_id
    )


@SQLITE_ONLY
def test_a_message_of_a_version_this_engine_does_not_know_is_dead_lettered_as_unsupported(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> None:
    # Version 3 of some future contract: other fields, some of them invalid today.
    future = {**touchpoint_v2("v3-1", "v3-1-ev-1"), "schema_version": 3, "kind": "hologram"}
    targets = publish(kafka_broker.bootstrap, kafka_topics.touchpoints, keyed([future]))

    stats = consume(settings, app, kafka_broker, kafka_topics, targets)

    assert stats.dead_letters == {"unsupported_schema_version": 1}
    (letter,) = dead_letters(kafka_broker, kafka_topics)
    assert letter.error_code == "unsupported_schema_version"
    assert "schema_version 3" in (letter.header("error_reason") or "")
    assert recorded_event_ids(app) == {}


def test_both_versions_of_the_message_are_recorded_from_one_topic(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> None:
    v1 = touchpoint("both-1", "both-1-ev-1", "purchase")
    v2 = touchpoint_v2("both-1", "both-1-ev-2", "purchase", hour=1, correlation_id="flow-9")
    targets = publish(kafka_broker.bootstrap, kafka_topics.touchpoints, keyed([v1, v2]))

    stats = consume(settings, app, kafka_broker, kafka_topics, targets)

    assert stats.recorded == 2
    old, new = recorded(app, "both-1", "both-1-ev-1"), recorded(app, "both-1", "both-1-ev-2")
    assert (old.schema_version, old.producer, old.correlation_id) == (1, "tests", None)
    assert (new.schema_version, new.producer, new.correlation_id) == (2, "tests", "flow-9")
    assert old.attributes == new.attributes == {"amount": "10.00", "currency": "EUR"}


@SQLITE_ONLY
def test_a_version_2_message_the_old_engine_dead_lettered_is_recorded_once_after_the_upgrade(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> None:
    v1 = touchpoint("up-1", "up-1-ev-1")
    v2 = touchpoint_v2("up-1", "up-1-ev-2", hour=1, producer="shop", correlation_id="c-42")
    targets = publish(kafka_broker.bootstrap, kafka_topics.touchpoints, keyed([v1, v2]))
    before = consume(settings, app, kafka_broker, kafka_topics, targets, gate=OLD_ENGINE)
    assert before.dead_letters == {"unsupported_schema_version": 1}
    assert recorded_event_ids(app) == {"up-1-ev-1": 1}

    # The upgrade: the current engine on the same store re-drives the dead letter twice.
    first = redrive_all(settings, kafka_broker, kafka_topics)
    after = consume(settings, app, kafka_broker, kafka_topics, first.next_offsets)
    nothing_new = redrive_all(settings, kafka_broker, kafka_topics)
    again = redrive_all(settings, kafka_broker, kafka_topics, again=True)
    once_more = consume(settings, app, kafka_broker, kafka_topics, again.next_offsets)

    assert [r.count for r in first.redriven] == [1]
    assert (after.recorded, after.rejected) == (1, 0)
    assert (nothing_new.redriven, nothing_new.already_redriven) == ([], 1)
    assert [r.count for r in again.redriven] == [2]
    assert (once_more.recorded, once_more.duplicates) == (0, 1)
    assert recorded_event_ids(app) == {"up-1-ev-1": 1, "up-1-ev-2": 1}
    event = recorded(app, "up-1", "up-1-ev-2")
    assert (event.producer, event.correlation_id, event.schema_version) == ("shop", "c-42", 2)


@SQLITE_ONLY
def test_a_redriven_message_that_fails_again_returns_with_its_count_raised(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> None:
    broken = touchpoint("again-1", "again-1-ev-1", kind="teleportation")
    sendable = (b"again-1", keyed([broken])[0][1], [("trace_id", b"t-7")])
    targets = publish(kafka_broker.bootstrap, kafka_topics.touchpoints, [sendable])
    consume(settings, app, kafka_broker, kafka_topics, targets)

    first = redrive_all(settings, kafka_broker, kafka_topics)
    consume(settings, app, kafka_broker, kafka_topics, first.next_offsets)
    again = redrive_all(settings, kafka_broker, kafka_topics, again=True)

    original, returned = dead_letters(kafka_broker, kafka_topics)
    assert (original.redrive_count, returned.redrive_count) == (0, 1)
    assert returned.header("redriven_from_offset") == str(original.offset)
    assert returned.error_code == original.error_code == "unknown_kind"
    assert returned.original_headers == original.original_headers == [("trace_id", b"t-7")]
    assert returned.identity == original.identity
    assert [(r.offset, r.count) for r in again.redriven] == [(returned.offset, 2)]


def test_a_dead_letter_is_the_same_message_wherever_it_is_found() -> None:
    letter = StoredDeadLetter(
        partition=0,
        offset=7,
        timestamp=None,
        key=b"cust-1",
        value=b'{"kind": "teleportation"}',
        headers=[("trace_id", b"t-1"), ("error_code", b"unknown_kind")],
    )
    # After a broker restarted its offsets, or back from a re-drive with headers of ours.
    elsewhere = replace(letter, offset=0, headers=[("trace_id", b"t-1"), ("redrive_count", b"1")])

    assert elsewhere.identity == letter.identity
    assert replace(letter, value=b"{}").identity != letter.identity
    assert replace(letter, key=None).identity != letter.identity
    assert replace(letter, headers=[("trace_id", b"t-2")]).identity != letter.identity


NOW = datetime(2025, 6, 1, tzinfo=UTC)


def test_the_redrive_log_remembers_the_latest_count_of_each_message(settings: Settings) -> None:
    memory = Components(settings).redrive_log()
    try:
        memory.remember([Redrive("a", 1, 3, NOW), Redrive("b", 1, 4, NOW)])
        memory.remember([Redrive("a", 2, 9, NOW)])
    finally:
        memory.close()

    reader = Components(settings).redrive_log(read_only=True)
    try:
        assert reader.counts(["a", "b", "c"]) == {"a": 2, "b": 1}
    finally:
        reader.close()


def test_a_redrive_log_read_before_any_redrive_knows_nothing_and_creates_nothing(
    settings: Settings,
) -> None:
    reader = Components(settings).redrive_log(read_only=True)
    try:
        assert reader.counts(["a"]) == {}
    finally:
        reader.close()

    store = settings.store
    if store.is_sqlite:
        assert not store.sibling_path("redrives").exists()
    else:
        with psycopg.connect(store.conninfo) as connection:
            row = connection.execute(
                "SELECT to_regclass('lifecycle_dead_letter_redrives')"
            ).fetchone()
        assert row == (None,)


def letter_at(offset: int, **fields: Any) -> StoredDeadLetter:
    values: dict[str, Any] = {
        "partition": 0,
        "offset": offset,
        "timestamp": NOW,
        "key": b"cust-1",
        "value": encode(touchpoint("cust-1", "cust-1-ev-1", kind="teleportation")),
        "headers": [("error_code", b"unknown_kind")],
        **fields,
    }
    return StoredDeadLetter(**values)


@SQLITE_ONLY
def test_the_same_message_dead_lettered_twice_is_redriven_once_from_its_latest_letter(
    settings: Settings, kafka_broker: EmbeddedBroker, kafka_topics: Topics
) -> None:
    producer = new_producer(kafka_broker.bootstrap, "tests")
    memory = Components(settings).redrive_log()
    try:
        report = redrive([letter_at(3), letter_at(8)], producer, kafka_topics.touchpoints, memory)
    finally:
        memory.close()
        producer.close()

    assert [(r.offset, r.count) for r in report.redriven] == [(8, 1)]
    assert report.repeats == 1


@SQLITE_ONLY
def test_a_dead_letter_kept_without_its_value_is_not_redriven(
    settings: Settings, kafka_broker: EmbeddedBroker, kafka_topics: Topics
) -> None:
    too_large = letter_at(0, value=None, headers=[("value_dropped", b"70000 bytes")])
    producer = new_producer(kafka_broker.bootstrap, "tests")
    memory = Components(settings).redrive_log()
    try:
        report = redrive([too_large], producer, kafka_topics.touchpoints, memory)
    finally:
        memory.close()
        producer.close()

    assert (report.redriven, report.without_value, report.next_offsets) == ([], 1, {})
