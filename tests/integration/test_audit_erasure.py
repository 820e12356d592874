"""Personal data: encrypted at rest per customer, erased by destroying one key; every
other fact stays and the audit chain still verifies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import structlog

from lifecycle.audit.export import export_events
from lifecycle.audit.history import audited_history
from lifecycle.audit.sealing import PeriodicSealer
from lifecycle.domain.errors import RelationshipNotFound
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.entrypoints.cli.records import describe_state
from lifecycle.persistence.personal import ERASED_MARKER
from lifecycle.persistence.store import Store
from tests.integration.audit_support import (
    DAY_ZERO,
    LOG_EVENTS,
    PLAINTEXT_EMAIL,
    AuditedStore,
    audited_store,
    population,
    record_population,
    recorded_store,
)


@pytest.fixture
def store(database_url: str) -> Iterator[AuditedStore]:
    yield from recorded_store(database_url)


def personal_views(store: AuditedStore, customer: str) -> list[object]:
    return [e.personal for e in audited_history(store.app, customer) if e.personal is not None]


def stored_bytes(store: AuditedStore) -> bytes:
    """Everything the database keeps: the files of a SQLite store; the events and the
    key table of a PostgreSQL one."""
    location = Store.from_url(store.settings.database_url)
    if location.sqlite_path is not None:
        directory = location.sqlite_path.parent
        return b"".join(path.read_bytes() for path in sorted(directory.glob("lifecycle*")))
    with psycopg.connect(location.conninfo) as connection:
        rows = connection.execute(
            "SELECT state FROM lifecycle_events UNION ALL "
            "SELECT coalesce(key, '') FROM lifecycle_personal_keys"
        ).fetchall()
    return b"".join(bytes(row[0]) for row in rows)


def test_history_reveals_the_personal_data_given(store: AuditedStore) -> None:
    assert personal_views(store, "ann") == [{"name": "Ann Example", "email": PLAINTEXT_EMAIL}]


def test_personal_data_is_never_stored_in_plain_text(store: AuditedStore) -> None:
    assert PLAINTEXT_EMAIL.encode() not in stored_bytes(store)
    recorded = store.tamperer.stream("ann")[1].content["personal"]
    assert recorded["alg"] == "AES-256-GCM"
    assert set(recorded) == {"alg", "key_id", "nonce", "ciphertext"}


def test_forgetting_shows_personal_data_as_erased(store: AuditedStore) -> None:
    store.app.forget("ann", reason="erasure request 17", actor="dpo", at=DAY_ZERO)
    assert personal_views(store, "ann") == [{"erased": True}]


def test_forgetting_keeps_every_other_fact(store: AuditedStore) -> None:
    before = describe_state(store.app.relationship("ann"))
    store.app.forget("ann", reason="erasure request 17", actor="dpo", at=DAY_ZERO)
    after = describe_state(store.app.relationship("ann"))
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"version", "recorded_at"}
    erasure = audited_history(store.app, "ann")[-1]
    assert (erasure.type, erasure.data["reason"]) == ("PersonalDataErased", "erasure request 17")


def test_the_audit_chain_still_verifies_after_erasure(store: AuditedStore) -> None:
    store.seal()
    store.app.forget("ann", reason="erasure request 17", actor=None, at=DAY_ZERO)
    store.seal()
    assert store.verify().sealed_events == LOG_EVENTS + 1


def test_the_key_leaves_the_key_store(store: AuditedStore) -> None:
    key = store.app.vault.keys.load(["ann"])["ann"].key  # type: ignore[union-attr]
    assert key is not None
    assert key in stored_bytes(store)
    store.app.forget("ann", reason="erasure request 17", actor=None, at=DAY_ZERO)
    assert key not in stored_bytes(store)
    assert store.app.vault.keys.load(["ann"])["ann"].key is None  # type: ignore[union-attr]


def test_an_export_shows_erased_personal_data(store: AuditedStore, tmp_path: Path) -> None:
    store.seal()
    store.app.forget("ann", reason="erasure request 17", actor=None, at=DAY_ZERO)
    export_events(
        store.app, store.ledger, store.key, tmp_path, customer_id="ann", include_personal=True
    )
    text = (tmp_path / "events.jsonl").read_text(encoding="utf-8")
    assert '"personal":{"erased":true}' in text
    assert PLAINTEXT_EMAIL not in text


def test_personal_data_arriving_after_erasure_is_not_kept(store: AuditedStore) -> None:
    store.app.forget("ann", reason="erasure request 17", actor=None, at=DAY_ZERO)
    again = replace(population()[0], event_id="ann-again")
    store.app.record_batch([again])
    assert store.tamperer.stream("ann")[-1].content["personal"] == ERASED_MARKER
    assert personal_views(store, "ann") == [{"erased": True}, {"erased": True}]
    assert PLAINTEXT_EMAIL.encode() not in stored_bytes(store)


def test_forgetting_twice_records_one_erasure(store: AuditedStore) -> None:
    _, first = store.app.forget("ann", reason="request", actor=None, at=DAY_ZERO)
    relationship, second = store.app.forget("ann", reason="request", actor=None, at=DAY_ZERO)
    assert (first, second) == (True, False)
    assert relationship.version == 9


def test_another_process_reads_the_same_customer_key(store: AuditedStore) -> None:
    other = Components(store.settings).application()
    try:
        views = [e.personal for e in audited_history(other, "ann") if e.personal]
    finally:
        other.close()
    assert views == [{"name": "Ann Example", "email": PLAINTEXT_EMAIL}]


def test_personal_data_moved_to_another_event_cannot_be_read(store: AuditedStore) -> None:
    tamper = store.tamperer
    with_personal, without = tamper.stream("ann")[1], tamper.stream("ann")[4]
    moved = without.state.replace(
        b'"personal":null',
        b'"personal":' + with_personal.state.split(b'"personal":', 1)[1].split(b"}", 1)[0] + b"}",
    )
    tamper.replace_state(without, moved)
    views = [e.personal for e in audited_history(store.app, "ann") if e.personal]
    assert {"unreadable": True} in views


def test_nothing_personal_is_logged(database_url: str) -> None:
    with structlog.testing.capture_logs() as logs, audited_store(database_url) as audited:
        record_population(audited.app)
        audited.app.forget("ann", reason="request", actor=None, at=DAY_ZERO)
        PeriodicSealer(audited.app, audited.ledger, audited.key, interval=60).seal_once()
    assert [log["event"] for log in logs] == ["policy_adopted", "policy_followed", "audit_sealed"]
    assert PLAINTEXT_EMAIL not in repr(logs)
    assert "Ann Example" not in repr(logs)


def test_forgetting_an_unknown_customer_changes_nothing(store: AuditedStore) -> None:
    with pytest.raises(RelationshipNotFound):
        store.app.forget("nobody", reason="request", actor=None, at=DAY_ZERO)
    assert store.app.vault.keys.load(["nobody"]) == {}  # type: ignore[union-attr]
