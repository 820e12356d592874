"""Exactly once across ``kill -9``: a consumer process killed mid-stream and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from consumers.broker import EmbeddedBroker, ensure_topics
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.settings import Settings
from tests.kafka_support import (
    consumer_env,
    keyed,
    population,
    publish,
    read_topic,
    recorded_event_ids,
    unique_topics,
    wait_until,
)


def start_consumer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "lifecycle", "consume"],
            env={**os.environ, **env},
            stdout=output,
            stderr=output,
        )


def test_a_consumer_killed_mid_stream_and_restarted_records_each_message_exactly_once(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topics = unique_topics(partitions=3)
    ensure_topics(kafka_broker.bootstrap, topics)
    database_url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    # Small polls: many transactions, so the kill lands between and inside them.
    env = consumer_env(kafka_broker.bootstrap, topics, database_url, max_poll_records=50)
    valid = population(customers=200, per_customer=20)
    poison = [(b"c-1", f"poison {n}".encode(), []) for n in range(10)]
    sendables = keyed(valid)
    for n, letter in enumerate(poison):
        sendables.insert(n * 400, letter)
    publish(kafka_broker.bootstrap, topics.touchpoints, sendables)
    reader = Components(Settings(database_url=database_url)).application()
    log = tmp_path / "consumer.log"

    first = start_consumer(env, log)
    wait_until(lambda: sum(recorded_event_ids(reader).values()) >= 500, what="a first part")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    recorded_before_restart = sum(recorded_event_ids(reader).values())
    second = start_consumer(env, log)
    wait_until(lambda: sum(recorded_event_ids(reader).values()) >= len(valid), timeout=90)
    second.send_signal(signal.SIGTERM)

    assert second.wait(30) == 0
    assert first.returncode == -signal.SIGKILL
    assert recorded_before_restart < len(valid), "the kill came after the end of the stream"
    assert recorded_event_ids(reader) == {m["event_id"]: 1 for m in valid}
    # Dead letters are delivered at least once: a kill may send some twice, never lose one.
    letters = read_topic(kafka_broker.bootstrap, topics.dead_letters, len(poison))
    assert {letter.value for letter in letters} == {value for _, value, _ in poison}
    reader.close()
