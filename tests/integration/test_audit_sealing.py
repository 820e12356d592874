"""Sealing: signed checkpoints over the log, extended as events arrive."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from lifecycle.audit.ledger import AuditKey
from lifecycle.audit.sealing import (
    CHECKPOINT_PURPOSE,
    LedgerInconsistent,
    PeriodicSealer,
    seal,
)
from lifecycle.entrypoints.bootstrap import Components
from tests.integration.audit_support import (
    DAY_ZERO,
    LOG_EVENTS,
    AuditedStore,
    recorded_store,
)


@pytest.fixture
def store(database_url: str) -> Iterator[AuditedStore]:
    yield from recorded_store(database_url)


def test_the_first_seal_signs_a_checkpoint_over_the_whole_log(store: AuditedStore) -> None:
    outcome = store.seal()
    checkpoint = outcome.checkpoint
    assert checkpoint is not None
    assert (outcome.sealed, checkpoint.sequence, checkpoint.events) == (LOG_EVENTS, 1, LOG_EVENTS)
    assert checkpoint.position == store.app.recorder.max_notification_id()
    assert store.key.verifies(CHECKPOINT_PURPOSE, checkpoint.payload(), checkpoint.signature)


def test_sealing_with_nothing_new_writes_nothing(store: AuditedStore) -> None:
    first = store.seal()
    again = store.seal()
    assert again.sealed == 0
    assert again.checkpoint == first.checkpoint
    assert len(store.ledger.checkpoints()) == 1


def test_a_later_seal_extends_the_chain(store: AuditedStore) -> None:
    store.seal()
    store.app.forget("ann", reason="request", actor=None, at=DAY_ZERO)
    outcome = store.seal()
    assert outcome.checkpoint is not None
    assert (outcome.sealed, outcome.checkpoint.sequence, outcome.checkpoint.events) == (
        1,
        2,
        LOG_EVENTS + 1,
    )
    assert store.verify().checkpoints == 2


def test_a_log_sealed_in_many_small_blocks_verifies(store: AuditedStore) -> None:
    seal(store.app, store.ledger, store.key, block_size=5)
    assert len(list(store.ledger.all_blocks())) == -(-LOG_EVENTS // 5)
    assert store.verify().sealed_events == LOG_EVENTS


def test_a_ledger_signed_with_another_key_is_not_extended(store: AuditedStore) -> None:
    seal(store.app, store.ledger, AuditKey(b"another-key-of-someone-else"))
    with pytest.raises(LedgerInconsistent, match="valid signature"):
        store.seal()


def test_the_periodic_sealer_seals_what_arrives(store: AuditedStore) -> None:
    sealer = PeriodicSealer(store.app, store.ledger, store.key, interval=0.05)
    worker = threading.Thread(target=sealer.run)
    worker.start()
    try:
        store.app.forget("bob", reason="request", actor=None, at=DAY_ZERO)
        sealed_all = threading.Event()
        for _ in range(200):
            latest = store.ledger.latest_checkpoint()
            if latest is not None and latest.events == LOG_EVENTS + 1:
                sealed_all.set()
                break
            sealed_all.wait(0.05)
    finally:
        sealer.stop()
        worker.join()
    assert sealed_all.is_set()
    assert store.verify().unsealed_events == 0


def test_the_sealer_for_lifecycle_run_is_built_from_settings(store: AuditedStore) -> None:
    settings = store.settings.model_copy(update={"audit_seal_interval_seconds": 42.0})
    sealer = Components(settings).sealer(store.app)
    try:
        outcome = sealer.seal_once()
    finally:
        sealer.close()
    assert sealer.interval == 42.0
    assert outcome is not None
    assert outcome.sealed == LOG_EVENTS
