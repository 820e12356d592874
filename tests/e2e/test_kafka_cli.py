"""The Kafka commands as a user runs them: broker, publish, consume (via run), run, demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from consumers.broker import EmbeddedBroker, Topics, ensure_topics, free_port, port_is_open
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import RELATIONSHIP_TOPICS
from lifecycle.settings import Settings
from tests.conftest import run_cli, run_demo
from tests.kafka_support import (
    dead_letter,
    encode,
    population,
    read_topic,
    recorded_event_ids,
    topics_with_dead_letters,
    touchpoint,
    touchpoint_v2,
    unique_topics,
    wait_until,
)


def topic_env(topics: Topics) -> dict[str, str]:
    return {
        "LIFECYCLE_KAFKA_TOUCHPOINTS_TOPIC": topics.touchpoints,
        "LIFECYCLE_KAFKA_DEAD_LETTER_TOPIC": topics.dead_letters,
        "LIFECYCLE_KAFKA_RELATIONSHIP_EVENTS_TOPIC": topics.relationship_events,
    }


def start(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "lifecycle", *args],
            env={**os.environ, "LIFECYCLE_LOG_FORMAT": "json", **env},
            stdout=output,
            stderr=output,
        )


def publish_file(
    broker: EmbeddedBroker, directory: Path, lines: list[bytes]
) -> tuple[Topics, subprocess.CompletedProcess[str]]:
    """``lifecycle publish`` of a file of ``lines`` to topics of their own: the topics, and
    how the command ended."""
    topics = unique_topics(partitions=3)
    ensure_topics(broker.bootstrap, topics)
    source = directory / "touchpoints.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = run_cli(
        "publish",
        str(source),
        env={"LIFECYCLE_KAFKA_BOOTSTRAP": broker.bootstrap, **topic_env(topics)},
    )
    return topics, result


@pytest.fixture
def service_log(tmp_path: Path) -> Path:
    """Where a service started by a test writes its output."""
    return tmp_path / "service.log"


@pytest.mark.parametrize(
    "command", ["broker", "consume", "relay", "publish", "run", "dead-letters"]
)
def test_every_kafka_command_explains_itself(command: str) -> None:
    result = run_cli(command, "--help")

    assert result.returncode == 0
    assert "LIFECYCLE_KAFKA" in result.stdout


def test_publish_sends_valid_lines_keyed_by_customer_and_reports_invalid_ones(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    valid = [touchpoint("pub-1", "pub-1-ev-1"), touchpoint("pub-2", "pub-2-ev-1", "purchase")]
    lines = [encode(valid[0]), b'{"event_id": "x"', encode(valid[1]), b""]

    topics, result = publish_file(kafka_broker, tmp_path, lines)

    assert result.returncode == 0
    assert "line 2: invalid_json" in result.stderr
    assert f"sent 2 to {topics.touchpoints}, invalid 1" in result.stdout
    sent = read_topic(kafka_broker.bootstrap, topics.touchpoints, 2)
    assert sorted((m.key, m.value) for m in sent) == sorted(
        (v["customer_id"].encode(), encode(v)) for v in valid
    )


def test_publish_sends_both_versions_of_the_message_and_reports_an_unknown_one(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    lines = [
        encode(touchpoint("ver-1", "ver-1-ev-1")),
        encode(touchpoint_v2("ver-1", "ver-1-ev-2", correlation_id="k-2")),
        encode(touchpoint("ver-1", "ver-1-ev-3", schema_version=3)),
    ]

    topics, result = publish_file(kafka_broker, tmp_path, lines)

    assert result.returncode == 0, result.stderr
    assert "line 3: unsupported_schema_version" in result.stderr
    assert f"sent 2 to {topics.touchpoints}, invalid 1" in result.stdout
    sent = read_topic(kafka_broker.bootstrap, topics.touchpoints, 2)
    assert sorted(m.value for m in sent) == sorted(lines[:2])


def test_publish_of_a_missing_file_is_bad_input(kafka_broker: EmbeddedBroker) -> None:
    result = run_cli(
        "publish", "no-such-file.jsonl", env={"LIFECYCLE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap}
    )

    assert result.returncode == 2
    assert "cannot read no-such-file.jsonl" in result.stderr


def test_the_broker_command_serves_the_project_topics_until_terminated(
    service_log: Path,
) -> None:
    port = free_port()
    broker = start("broker", "--port", str(port), "--partitions", "4", env={}, log=service_log)
    try:
        wait_until(lambda: port_is_open(port), timeout=15, what="the broker to listen")
        consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}")
        wait_until(lambda: len(consumer.partitions_for_topic("crm.touchpoints") or ()) == 4)
        topics = consumer.topics()
        consumer.close()
    finally:
        broker.send_signal(signal.SIGTERM)

    assert broker.wait(15) == 0
    assert {"crm.touchpoints", "crm.touchpoints.dlq", "crm.relationship-events"} <= topics


def test_run_records_published_touchpoints_and_relays_the_resulting_events(
    tmp_path: Path, service_log: Path
) -> None:
    port = free_port()
    database_url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    env = {
        "LIFECYCLE_KAFKA_BROKER_PORT": str(port),
        "LIFECYCLE_DATABASE_URL": database_url,
        "LIFECYCLE_API_PORT": str(api_port := free_port()),
        "LIFECYCLE_API_KEYS": "test-reader-key:reader",
        "LIFECYCLE_AUDIT_HMAC_KEY": "a-test-key-of-some-length",
        "LIFECYCLE_AUDIT_SEAL_INTERVAL_SECONDS": "0.5",
    }
    messages = population(customers=20, per_customer=5)
    source = tmp_path / "touchpoints.jsonl"
    source.write_bytes(b"\n".join(encode(m) for m in messages) + b"\n")
    engine = start("run", env=env, log=service_log)
    reader = Components(Settings(database_url=database_url)).application()
    try:
        wait_until(lambda: port_is_open(port), timeout=15, what="the embedded broker")
        published = run_cli("publish", str(source), env=env)
        wait_until(lambda: sum(recorded_event_ids(reader).values()) == len(messages))
        recorded = recorded_event_ids(reader)
        events = reader.recorder.select_notifications(1, 10_000, topics=RELATIONSHIP_TOPICS)
        relayed = read_topic(f"127.0.0.1:{port}", "crm.relationship-events", len(events))
        wait_until(lambda: funnel_size(api_port) == 20, what="the read API's funnel")
    finally:
        engine.send_signal(signal.SIGTERM)
        reader.close()

    assert published.returncode == 0
    assert engine.wait(30) == 0
    assert recorded == {m["event_id"]: 1 for m in messages}
    assert len(relayed) == len(events)
    verified = run_cli("audit", "verify", "--json", env=env)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["checkpoints"] >= 1


def funnel_size(api_port: int) -> int | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/v1/funnel",
        headers={"Authorization": "Bearer test-reader-key"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            relationships: int = json.loads(response.read())["relationships"]
            return relationships
    except OSError:
        return None


def test_the_demo_sends_its_population_through_the_broker(tmp_path: Path) -> None:
    result = run_demo(150, tmp_path / "demo.db")

    assert result.returncode == 0, result.stderr
    assert "publishing month by month to crm.touchpoints" in result.stdout
    assert "4 dead letters went to crm.touchpoints.dlq" in result.stdout
    assert "150 relationships by stage" in result.stdout
    assert "funnel of 150 relationships" in result.stdout


def test_consume_with_an_unreachable_broker_waits_and_stops_cleanly_on_sigterm(
    tmp_path: Path, service_log: Path
) -> None:
    env = {
        "LIFECYCLE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "LIFECYCLE_DATABASE_URL": f"sqlite:///{tmp_path / 'lifecycle.db'}",
    }
    consumer = start("consume", env=env, log=service_log)
    wait_until(lambda: b"broker_unavailable" in service_log.read_bytes(), timeout=30)
    consumer.send_signal(signal.SIGTERM)

    assert consumer.wait(30) == 0


# Dead letters --------------------------------------------------------------------------

LETTERS = [
    dead_letter(
        "dl-1",
        encode(touchpoint("dl-1", "dl-1-ev-1", schema_version=3)),
        "unsupported_schema_version",
        "schema_version 3: this engine accepts versions 1, 2",
        partition=2,
        offset=40,
        headers=[("trace_id", b"t-1")],
    ),
    dead_letter(
        "dl-2",
        encode(touchpoint("dl-2", "dl-2-ev-1", kind="teleportation")),
        "unknown_kind",
        "kind: 'teleportation' is not a touchpoint kind",
        partition=0,
        offset=7,
    ),
]


@pytest.fixture
def dead_lettered(kafka_broker: EmbeddedBroker, tmp_path: Path) -> dict[str, Any]:
    """Topics of their own whose dead-letter topic holds LETTERS (offsets 0 and 1), as the
    consumer writes them, and the settings of a store of their own."""
    topics = topics_with_dead_letters(kafka_broker, LETTERS, partitions=3)
    env = {
        "LIFECYCLE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "LIFECYCLE_DATABASE_URL": f"sqlite:///{tmp_path / 'lifecycle.db'}",
        **topic_env(topics),
    }
    return {"env": env, "topics": topics}


def redriven(broker: EmbeddedBroker, topics: Topics, count: int) -> list[Any]:
    return sorted(
        read_topic(broker.bootstrap, topics.touchpoints, count),
        key=lambda m: (m.key, dict(m.headers)["redrive_count"]),
    )


def test_dead_letters_list_shows_every_letter_with_its_error_and_source(
    dead_lettered: dict[str, Any],
) -> None:
    listed = run_cli("dead-letters", "list", "--json", env=dead_lettered["env"])
    only = run_cli("dead-letters", "list", "--code", "unknown_kind", env=dead_lettered["env"])

    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [
        (r["offset"], r["key"], r["error_code"], r["source_partition"], r["source_offset"])
        for r in rows
    ] == [(0, "dl-1", "unsupported_schema_version", 2, 40), (1, "dl-2", "unknown_kind", 0, 7)]
    assert [r["redrive_count"] for r in rows] == [0, 0]
    assert rows[0]["error_reason"] == LETTERS[0].error_reason
    assert all(r["time"] for r in rows)
    assert only.returncode == 0, only.stderr
    assert "unknown_kind" in only.stdout
    assert "unsupported_schema_version" not in only.stdout
    assert "1 dead letters on" in only.stdout


def test_redrive_publishes_each_message_as_it_came_and_a_second_run_nothing_new(
    kafka_broker: EmbeddedBroker, dead_lettered: dict[str, Any]
) -> None:
    env, topics = dead_lettered["env"], dead_lettered["topics"]

    first = run_cli("dead-letters", "redrive", "--offset", "1", "--json", env=env)
    second = run_cli("dead-letters", "redrive", "--json", env=env)
    third = run_cli("dead-letters", "redrive", "--json", env=env)

    assert [json.loads(done.stdout)["offsets"] for done in (first, second, third)] == [
        [1],
        [0],
        [],
    ]
    assert json.loads(third.stdout)["already_redriven"] == 2
    sent = redriven(kafka_broker, topics, 2)
    assert [(m.key, m.value) for m in sent] == [(letter.key, letter.value) for letter in LETTERS]
    assert [m.headers for m in sent] == [
        [("trace_id", b"t-1"), ("redriven_from_offset", b"0"), ("redrive_count", b"1")],
        [("redriven_from_offset", b"1"), ("redrive_count", b"1")],
    ]


def test_redrive_again_raises_the_count_that_list_shows(
    kafka_broker: EmbeddedBroker, dead_lettered: dict[str, Any]
) -> None:
    env, topics = dead_lettered["env"], dead_lettered["topics"]
    run_cli("dead-letters", "redrive", env=env)

    again = run_cli(
        "dead-letters", "redrive", "--again", "--code", "unknown_kind", "--json", env=env
    )
    listed = run_cli("dead-letters", "list", "--json", env=env)

    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["offsets"] == [1]
    assert [dict(m.headers)["redrive_count"] for m in redriven(kafka_broker, topics, 3)] == [
        b"1",
        b"1",
        b"2",
    ]
    assert [json.loads(line)["redrive_count"] for line in listed.stdout.splitlines()] == [1, 2]


def test_redrive_of_an_offset_that_holds_no_dead_letter_is_bad_usage(
    dead_lettered: dict[str, Any],
) -> None:
    done = run_cli("dead-letters", "redrive", "--offset", "9", env=dead_lettered["env"])

    assert done.returncode == 2
    assert "no dead letter at offset 9" in done.stderr
