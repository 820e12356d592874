"""A minute of faults on the whole Kafka edge over PostgreSQL loses nothing and records
nothing twice: ``bench.soak`` (the 30-minute soak's code) run for 60 seconds.

Two consumers, the projection runner and the relay run as real processes; one of them
is killed with SIGKILL every few seconds and started again, and PostgreSQL itself is
crashed twice, while an upstream publishes a simulated population with bad messages
mixed in. The soak runs once for the module; each test checks one of its findings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import SERVICES, SoakPlan, SoakReport, run_soak

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

PLAN = SoakPlan(seconds=60, touchpoints=5_000, kill_every=5.0, postgres_crashes=2)


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> SoakReport:
    directory: Path = tmp_path_factory.mktemp("soak")
    return run_soak(PLAN, directory, say=lambda _line: None)


def test_every_service_and_the_database_were_killed_during_the_minute(soak: SoakReport) -> None:
    assert set(soak.kills) == set(SERVICES)
    assert sum(soak.kills.values()) >= 8
    assert soak.postgres_crashes == 2


def test_a_service_started_while_the_database_is_down_waits_for_it(soak: SoakReport) -> None:
    # Services are started again at once, during PostgreSQL's restarts too: none gave up.
    assert not soak.exits, soak.problems


def test_after_the_faults_everything_catches_up_and_stops_cleanly(soak: SoakReport) -> None:
    assert soak.drained, soak.problems
    assert soak.exit_statuses == dict.fromkeys(SERVICES, 0)


def test_the_store_holds_the_events_a_clean_import_of_the_stream_records(
    soak: SoakReport,
) -> None:
    assert soak.customers_compared > 400
    assert soak.events_compared > PLAN.touchpoints * 0.9
    assert soak.store_differences == []


def test_every_bad_message_is_in_the_dead_letter_topic_and_nothing_else(
    soak: SoakReport,
) -> None:
    assert soak.bad_messages >= 30
    assert (soak.dead_letters_missing, soak.dead_letters_unexpected) == (0, 0)


def test_the_relay_published_every_stored_event_in_version_order_per_customer(
    soak: SoakReport,
) -> None:
    assert soak.events_stored > 0
    assert soak.events_relayed_distinct == soak.events_stored
    assert soak.relay_problems == []


def test_the_read_models_equal_a_rebuild_from_the_log(soak: SoakReport) -> None:
    assert soak.drift is not None
    assert soak.drift.returncode == 0, soak.drift.stdout + soak.drift.stderr


def test_audit_verify_passes_on_the_log_the_faults_left(soak: SoakReport) -> None:
    assert soak.verify is not None
    assert soak.verify.returncode == 0, soak.verify.stdout + soak.verify.stderr
