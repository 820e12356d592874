"""``lifecycle policy adopt`` as real processes, on SQLite and PostgreSQL: killed with
``kill -9`` midway and run again, it re-evaluates every open relationship exactly once;
an import or a consumer running meanwhile decides with the new version from the
adoption on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.broker import EmbeddedBroker, ensure_topics
from lifecycle.domain.relationship import POLICY_ADOPTION_TRIGGER, Relationship
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import (
    STAGE_CHANGED_TOPICS,
    LifecycleApplication,
    stored_topics,
)
from lifecycle.settings import Settings
from tests.builders import touchpoint
from tests.conftest import run_cli
from tests.kafka_support import (
    consumer_env,
    keyed,
    publish,
    recorded_event_ids,
    unique_topics,
    wait_until,
)
from tests.kafka_support import touchpoint as kafka_touchpoint

ENGAGE_AT_ONCE = "version = 2\n[rules.engaged]\ntouchpoints = 1\n"
TRACKING = "policy-adoption:2"


@pytest.fixture
def reader(database_url: str) -> Iterator[LifecycleApplication]:
    app = Components(Settings(database_url=database_url)).application()
    yield app
    app.close()


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"LIFECYCLE_DATABASE_URL": database_url, "LIFECYCLE_LOG_FORMAT": "json"}


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    path = tmp_path / "v2.toml"
    path.write_text(ENGAGE_AT_ONCE)
    return path


def lifecycle(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "lifecycle", *args],
            env={**os.environ, **env},
            stdout=output,
            stderr=output,
        )


def adopt_args(v2: Path, *extra: str) -> tuple[str, ...]:
    return ("policy", "adopt", str(v2), "--actor", "ana", "--reason", "engage", *extra)


def changes(reader: LifecycleApplication) -> list[tuple[int, Any]]:
    """Every stage change in the log, with its position."""
    found = []
    start = 1
    while page := reader.recorder.select_notifications(start, 5_000, topics=STAGE_CHANGED_TOPICS):
        found += [(n.id, reader.mapper.to_domain_event(n)) for n in page]
        start = page[-1].id + 1
    return found


def test_an_adoption_killed_midway_and_run_again_reevaluates_each_relationship_once(
    reader: LifecycleApplication, env: dict[str, str], v2: Path, tmp_path: Path
) -> None:
    customers = [f"c{n:04d}" for n in range(1_500)]
    reader.record_batch([touchpoint("inquiry", customer=c) for c in customers])
    log = tmp_path / "adopt.log"

    first = lifecycle(*adopt_args(v2, "--batch-size", "3"), env=env, log=log)
    wait_until(lambda: reader.recorder.max_tracking_id(TRACKING) is not None, what="a batch")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    moved_before = Counter(
        c.customer_id for _, c in changes(reader) if c.triggered_by == POLICY_ADOPTION_TRIGGER
    )
    again = run_cli(*adopt_args(v2, "--json"), env=env)
    once_more = run_cli(*adopt_args(v2, "--json"), env=env)

    assert first.returncode == -signal.SIGKILL
    assert 0 < sum(moved_before.values()) < len(customers), "the kill missed the adoption"
    assert again.returncode == 0, again.stderr
    resumed = json.loads(again.stdout)
    assert (resumed["recorded"], resumed["moved"]) == (False, len(customers) - len(moved_before))
    assert resumed["resumed_after"] is not None
    moved = Counter(
        c.customer_id for _, c in changes(reader) if c.triggered_by == POLICY_ADOPTION_TRIGGER
    )
    assert moved == dict.fromkeys(customers, 1)
    assert json.loads(once_more.stdout)["reevaluated"] == 0


def test_an_import_running_during_an_adoption_decides_with_the_new_version_after_it(
    reader: LifecycleApplication, env: dict[str, str], v2: Path, tmp_path: Path
) -> None:
    customers = [f"c{n:04d}" for n in range(4_000)]
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        "".join(
            json.dumps(
                {
                    "event_id": f"{customer}-q",
                    "customer_id": customer,
                    "kind": "inquiry",
                    "channel": "email",
                    "occurred_at": "2024-03-01T10:00:00+00:00",
                    "source": "helpdesk",
                }
            )
            + "\n"
            for customer in customers
        )
    )
    log = tmp_path / "import.log"

    importing = lifecycle("import", str(feed), "--batch-size", "4", env=env, log=log)
    wait_until(lambda: (reader.recorder.max_notification_id() or 0) > 100, what="an import")
    adopted = run_cli(*adopt_args(v2), env=env)
    assert importing.wait(240) == 0, log.read_text()

    assert adopted.returncode == 0, adopted.stderr
    [(first, _), (second, adoption)] = reader.policy_adoptions()
    assert (first.version, second.version) == (1, 2)
    touchpoint_positions = [
        n.id
        for n in reader.recorder.select_notifications(
            1, 100_000, topics=stored_topics(Relationship.TouchpointRecorded)
        )
    ]
    assert min(touchpoint_positions) < adoption < max(touchpoint_positions), "no overlap"
    recorded = changes(reader)
    assert all(change.policy_version == 2 for position, change in recorded if position > adoption)
    assert Counter(change.customer_id for _, change in recorded) == dict.fromkeys(customers, 1)
    assert {change.to_stage for _, change in recorded} == {"awareness"}


def test_a_consumer_running_during_an_adoption_decides_with_the_new_version_after_it(
    kafka_broker: EmbeddedBroker, v2: Path, tmp_path: Path
) -> None:
    topics = unique_topics(partitions=3)
    ensure_topics(kafka_broker.bootstrap, topics)
    database_url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    # Small polls: many transactions, so the adoption lands between some of them.
    env = consumer_env(kafka_broker.bootstrap, topics, database_url, max_poll_records=5)
    messages = [kafka_touchpoint(f"c{n:04d}", f"c{n:04d}-q", "inquiry", 0) for n in range(3_000)]
    publish(kafka_broker.bootstrap, topics.touchpoints, keyed(messages))
    reader = Components(Settings(database_url=database_url)).application()
    consumer = lifecycle("consume", env=env, log=tmp_path / "consume.log")
    try:
        wait_until(lambda: (reader.recorder.max_notification_id() or 0) > 100, what="consuming")
        adopted = run_cli(*adopt_args(v2), env=env)
        wait_until(lambda: sum(recorded_event_ids(reader).values()) == len(messages), timeout=120)
    finally:
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(30) == 0

    assert adopted.returncode == 0, adopted.stderr
    [_, (_, adoption)] = reader.policy_adoptions()
    recorded = changes(reader)
    reader.close()
    assert any(position > adoption for position, _ in recorded), "no overlap"
    assert all(change.policy_version == 2 for position, change in recorded if position > adoption)
    assert len(recorded) == len(messages)
    assert {change.to_stage for _, change in recorded} == {"awareness"}
