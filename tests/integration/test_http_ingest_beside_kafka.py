"""Touchpoints over HTTP and from Kafka at once, for the same customers: a real
`lifecycle consume` process and the API write into one store (SQLite or PostgreSQL);
every touchpoint is recorded exactly once and every relationship's chain holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from consumers.broker import EmbeddedBroker, Topics, ensure_topics
from lifecycle.audit.verify import verify_store
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.settings import Settings
from projections.api import create_app
from tests.kafka_support import (
    keyed,
    publish,
    recorded_event_ids,
    touchpoint,
    unique_topics,
    wait_until,
)

CUSTOMERS = [f"shared-{n}" for n in range(8)]
ROUNDS = 12
PUBLISHER = {"Authorization": "Bearer publisher-key"}


def _feed(prefix: str) -> list[list[dict[str, Any]]]:
    """Rounds of touchpoints, one per customer a round, ``hour`` apart."""
    return [
        [
            touchpoint(
                customer, f"{prefix}-{customer}-{n}", "purchase" if n % 4 == 0 else "inquiry", n
            )
            for customer in CUSTOMERS
        ]
        for n in range(ROUNDS)
    ]


@pytest.fixture
def consuming(database_url: str, kafka_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Topics]:
    """`lifecycle consume` on this test's topics and store, until the test ends."""
    topics = unique_topics(partitions=3)
    ensure_topics(kafka_broker.bootstrap, topics)
    log = (tmp_path / "consume.log").open("wb")
    consumer = subprocess.Popen(
        [sys.executable, "-m", "lifecycle", "consume"],
        env={
            **os.environ,
            "LIFECYCLE_LOG_FORMAT": "json",
            "LIFECYCLE_DATABASE_URL": database_url,
            "LIFECYCLE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
            "LIFECYCLE_KAFKA_TOUCHPOINTS_TOPIC": topics.touchpoints,
            "LIFECYCLE_KAFKA_DEAD_LETTER_TOPIC": topics.dead_letters,
            "LIFECYCLE_KAFKA_CONSUMER_GROUP": f"{topics.touchpoints}.group",
            "LIFECYCLE_KAFKA_MAX_POLL_RECORDS": "20",
        },
        stdout=log,
        stderr=log,
    )
    try:
        yield topics
    finally:
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(60) == 0, (tmp_path / "consume.log").read_text()
        log.close()


def test_http_and_kafka_writing_the_same_customers_record_everything_once(
    database_url: str, kafka_broker: EmbeddedBroker, consuming: Topics
) -> None:
    settings = Settings(database_url=database_url, api_keys={"publisher-key": "publisher"})
    over_kafka, over_http = _feed("kafka"), _feed("http")
    answers: list[dict[str, Any]] = []
    reader = Components(settings).application()
    ledger = Components(settings).ledger()

    def publish_rounds() -> None:
        for batch in over_kafka[1:]:
            publish(kafka_broker.bootstrap, consuming.touchpoints, keyed(batch))
            time.sleep(0.05)

    # The consumer is recording before the two start writing the same customers at once.
    publish(kafka_broker.bootstrap, consuming.touchpoints, keyed(over_kafka[0]))
    wait_until(lambda: len(recorded_event_ids(reader)) == len(CUSTOMERS), what="the consumer")
    with TestClient(create_app(Components(settings).read_side())) as client:
        publisher = threading.Thread(target=publish_rounds)
        publisher.start()
        for batch in over_http:
            response = client.post("/v1/touchpoints", json=batch, headers=PUBLISHER)
            assert response.status_code == 200, response.text
            answers.append(response.json())
            time.sleep(0.05)
        publisher.join()

    expected = {m["event_id"] for batch in over_kafka + over_http for m in batch}
    try:
        wait_until(
            lambda: set(recorded_event_ids(reader)) == expected,
            timeout=120,
            what="every touchpoint to be recorded",
        )
        recorded = recorded_event_ids(reader)
        report = verify_store(reader, ledger, None)
        touchpoints = {c: reader.relationship(c).touchpoint_count for c in CUSTOMERS}
    finally:
        ledger.close()
        reader.close()

    assert {r["status"] for answer in answers for r in answer["results"]} == {"recorded"}
    assert set(recorded.values()) == {1}
    assert touchpoints == dict.fromkeys(CUSTOMERS, 2 * ROUNDS)
    assert report.streams == len(CUSTOMERS) + 1  # and the adopted policy's stream
