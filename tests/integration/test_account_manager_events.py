"""Account-manager events (Contract 7) are links of the relationship's chain like every
other: sealed, verified, exported and verified offline, kept through an erasure, relayed
as relationship events, and read back by a relationship loaded from a snapshot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecycle.audit.export import EVENTS_FILE, export_events, verify_export
from lifecycle.audit.history import audited_history
from lifecycle.domain.relationship import relationship_id
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import RELATIONSHIP_TOPICS
from lifecycle.settings import Settings
from tests.builders import touchpoint
from tests.integration.audit_support import DAY_ZERO, AuditedStore, recorded_store

MANAGER_EVENTS = ["AccountManagerAssigned", "AccountManagerAssigned", "AccountManagerUnassigned"]


@pytest.fixture
def store(database_url: str) -> Iterator[AuditedStore]:
    for audited in recorded_store(database_url):
        app = audited.app
        app.assign_account_manager("ann", "ana", actor="lead", reason="key", at=DAY_ZERO)
        app.assign_account_manager("ann", "ben", actor="lead", reason="ana left", at=DAY_ZERO)
        app.assign_account_manager("ann", None, actor="lead", reason="downsized", at=DAY_ZERO)
        audited.seal()
        yield audited


def _manager_events(store: AuditedStore) -> list[str]:
    return [
        e.type for e in audited_history(store.app, "ann") if e.type.startswith("AccountManager")
    ]


def test_they_are_sealed_and_verify_with_the_rest_of_the_log(store: AuditedStore) -> None:
    report = store.verify()

    assert _manager_events(store) == MANAGER_EVENTS
    assert report.unsealed_events == 0


def test_an_edited_manager_is_caught_as_tampering(store: AuditedStore) -> None:
    assigned = next(r for r in store.tamperer.stream("ann") if b'"manager_id":"ana"' in r.state)

    store.tamperer.replace_state(assigned, assigned.state.replace(b'"ana"', b'"eve"'))

    assert f"version {assigned.version}" in store.divergence()


def test_they_export_with_their_business_time_and_verify_offline(
    store: AuditedStore, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    export_events(store.app, store.ledger, store.key, out)

    lines = [json.loads(line) for line in (out / EVENTS_FILE).read_text().splitlines()]
    exported = [line for line in lines if line["type"].startswith("AccountManager")]
    assert [line["type"] for line in exported] == MANAGER_EVENTS
    assert {line["occurred_at"] for line in exported} == {"2024-01-01T12:00:00Z"}
    assert verify_export(out, store.key).events == len(lines)


def test_an_erasure_keeps_them_and_the_chain_still_verifies(store: AuditedStore) -> None:
    store.app.forget("ann", reason="erasure request", actor="dpo", at=DAY_ZERO)

    assert _manager_events(store) == MANAGER_EVENTS
    assert store.verify().events > 0


def test_the_relay_reads_them_as_relationship_events(store: AuditedStore) -> None:
    relayed = store.app.recorder.select_notifications(1, 1_000, topics=RELATIONSHIP_TOPICS)

    types = [
        n.topic.rpartition(".")[2] for n in relayed if n.originator_id == relationship_id("ann")
    ]
    assert types.count("AccountManagerAssigned") == 2


def test_a_relationship_restored_from_a_snapshot_keeps_its_manager(database_url: str) -> None:
    settings = Settings(database_url=database_url, snapshot_interval=2)
    app = Components(settings).application()
    try:
        app.record_batch([touchpoint("inquiry", n, customer="c1") for n in range(3)])
        app.assign_account_manager("c1", "ana", actor="lead", reason="key", at=DAY_ZERO)
        app.record_batch([touchpoint("inquiry", 5, customer="c1")])
        snapshots = list(app.snapshots.get(relationship_id("c1"))) if app.snapshots else []

        assert snapshots
        assert app.relationship("c1").account_manager == "ana"
    finally:
        app.close()
