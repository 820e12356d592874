"""The touchpoint consumer against the real embedded broker and real stores."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from consumers.broker import EmbeddedBroker, Topics
from consumers.ingest import IngestStats
from consumers.metrics import REGISTRY
from lifecycle.domain.messages import MAX_MESSAGE_BYTES
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from tests.kafka_support import (
    encode,
    ingest_for,
    keyed,
    population,
    publish,
    read_topic,
    recorded_event_ids,
    touchpoint,
)

# The end-to-end path runs on both stores; the other behaviours do not depend on the store.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass
class Consumed:
    stats: IngestStats
    positions: dict[int, int | None]
    """Per partition, the next offset stored in the database."""


def consume(
    settings: Settings,
    app: LifecycleApplication,
    broker: EmbeddedBroker,
    topics: Topics,
    targets: dict[int, int],
    group_id: str | None = None,
) -> Consumed:
    """Run a consumer until ``targets`` are stored."""
    stop = threading.Event()
    with ingest_for(settings, app, broker.bootstrap, topics, group_id).open(stop) as ingest:
        ingest.consume_until(targets, stop, timeout=60)
        return Consumed(ingest.stats, {p: ingest.stored_position(p) for p in targets})


def test_valid_touchpoints_are_recorded_once_each_with_their_positions(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> None:
    messages = population(customers=30, per_customer=10)
    targets = publish(kafka_broker.bootstrap, kafka_topics.touchpoints, keyed(messages))

    consumed = consume(settings, app, kafka_broker, kafka_topics, targets)

    assert recorded_event_ids(app) == {m["event_id"]: 1 for m in messages}
    assert consumed.stats.recorded == len(messages)
    assert consumed.positions == targets


@SQLITE_ONLY
def test_a_second_delivery_of_a_touchpoint_is_a_duplicate_and_changes_nothing(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> None:
    first = touchpoint("dup-1", "dup-1-ev-1", "purchase")
    targets = publish(kafka_broker.bootstrap, kafka_topics.touchpoints, keyed([first, first]))

    consumed = consume(settings, app, kafka_broker, kafka_topics, targets)

    assert (consumed.stats.recorded, consumed.stats.duplicates) == (1, 1)
    assert recorded_event_ids(app) == {"dup-1-ev-1": 1}


@SQLITE_ONLY
def test_every_kind_of_bad_message_is_dead_lettered_with_its_headers_and_the_good_ones_recorded(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> None:
    customer = b"bad-1"
    future = datetime.now(UTC) + timedelta(days=1)
    bad = {
        "invalid_json": encode(touchpoint("bad-1", "e-1"))[:-3],
        "not_an_object": b"[1, 2, 3]",
        "missing_field": encode(
            {k: v for k, v in touchpoint("bad-1", "e-2").items() if k != "source"}
        ),
        "too_large": encode(touchpoint("bad-1", "e-3", note="x" * MAX_MESSAGE_BYTES)),
        "occurred_in_future": encode(touchpoint("bad-1", "e-4", occurred_at=future.isoformat())),
        "unknown_kind": encode(touchpoint("bad-1", "e-5", kind="teleportation")),
        "invalid_attribute": encode(touchpoint("bad-1", "e-6", "survey", attributes={"score": 11})),
        "key_mismatch": encode(touchpoint("someone-else", "e-7")),
        "unsupported_schema_version": encode(touchpoint("bad-1", "e-8", schema_version=3)),
    }
    trace = [("trace_id", b"abc-123")]
    good = [touchpoint("bad-1", f"good-{n}", hour=n) for n in range(len(bad) + 1)]
    sendables = []
    for n, value in enumerate(bad.values()):
        sendables += [(customer, encode(good[n]), []), (customer, value, trace)]
    sendables.append((customer, encode(good[-1]), []))
    targets = publish(kafka_broker.bootstrap, kafka_topics.touchpoints, sendables)

    consumed = consume(settings, app, kafka_broker, kafka_topics, targets)

    assert recorded_event_ids(app) == {m["event_id"]: 1 for m in good}
    assert consumed.stats.dead_letters == {code: 1 for code in bad}
    letters = read_topic(kafka_broker.bootstrap, kafka_topics.dead_letters, len(bad))
    assert len(letters) == len(bad)
    (partition,) = targets
    offsets = {value: offset for offset, (_, value, _) in enumerate(sendables)}
    for letter in letters:
        headers = dict(letter.headers)
        code = headers["error_code"].decode()
        assert letter.key == customer
        assert letter.value == bad[code]
        assert headers["trace_id"] == b"abc-123"
        assert headers["error_reason"]
        assert headers["source_topic"] == kafka_topics.touchpoints.encode()
        assert headers["source_partition"] == str(partition).encode()
        assert headers["source_offset"] == str(offsets[bad[code]]).encode()


@SQLITE_ONLY
def test_a_batch_of_only_dead_letters_still_stores_its_position(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> None:
    targets = publish(
        kafka_broker.bootstrap,
        kafka_topics.touchpoints,
        [(b"k", b"not json", []), (b"k", b"{}", [])],
    )

    consumed = consume(settings, app, kafka_broker, kafka_topics, targets)

    assert consumed.stats.rejected == 2
    assert consumed.positions == targets
    assert recorded_event_ids(app) == {}


@SQLITE_ONLY
def test_a_consumer_resumes_from_the_positions_stored_in_the_database_not_from_kafka(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> None:
    earlier = population(customers=5, per_customer=4, prefix="early")
    targets = publish(kafka_broker.bootstrap, kafka_topics.touchpoints, keyed(earlier))
    consume(settings, app, kafka_broker, kafka_topics, targets, group_id="first-group")
    later = population(customers=5, per_customer=2, prefix="late")
    targets = publish(kafka_broker.bootstrap, kafka_topics.touchpoints, keyed(later))

    # A group with no committed offsets at all: only the database knows where to resume.
    restarted = Components(settings).application()
    try:
        consumed = consume(settings, restarted, kafka_broker, kafka_topics, targets, "new-group")
    finally:
        restarted.close()

    assert consumed.stats.messages == len(later)
    assert recorded_event_ids(app) == {m["event_id"]: 1 for m in earlier + later}


@SQLITE_ONLY
def test_batches_are_counted_in_the_metrics_registry(
    settings: Settings,
    app: LifecycleApplication,
    kafka_broker: EmbeddedBroker,
    kafka_topics: Topics,
) -> None:
    topic = {"topic": kafka_topics.touchpoints}
    messages = population(customers=3, per_customer=3)
    sendables = [*keyed(messages), (b"x", b"oops", [])]
    targets = publish(kafka_broker.bootstrap, kafka_topics.touchpoints, sendables)

    consume(settings, app, kafka_broker, kafka_topics, targets)

    assert REGISTRY.get_sample_value("lifecycle_ingest_messages_total", topic) == 10
    assert REGISTRY.get_sample_value("lifecycle_ingest_touchpoints_recorded_total", topic) == 9
    dead = {**topic, "error_code": "invalid_json"}
    assert REGISTRY.get_sample_value("lifecycle_ingest_dead_letters_total", dead) == 1
