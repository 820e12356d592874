"""``audit verify`` against an intruder with SQL access, on SQLite and PostgreSQL alike:
every kind of tampering is detected and the first divergent event is named."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lifecycle.audit.ledger import AuditKeyMissing
from lifecycle.audit.verify import TamperingDetected, verify_customer, verify_store
from tests.integration.audit_support import (
    DAY_ZERO,
    LOG_EVENTS,
    STREAMS,
    AuditedStore,
    StoredRow,
    Tamperer,
    recorded_store,
)


@pytest.fixture
def store(database_url: str) -> Iterator[AuditedStore]:
    """Four customers recorded (32 events, after the policy's 2) and sealed."""
    yield from recorded_store(database_url, sealed=True)


@pytest.fixture
def tamper(store: AuditedStore) -> Tamperer:
    return store.tamperer


def edited(row: StoredRow, old: bytes, new: bytes) -> bytes:
    assert old in row.state
    return row.state.replace(old, new, 1)


def assert_verify_names(store: AuditedStore, *parts: str) -> None:
    """``verify`` detects the tampering, and its message names every one of the parts."""
    message = store.divergence()
    for part in parts:
        assert part in message


def test_a_clean_store_verifies_with_counts(store: AuditedStore) -> None:
    report = store.verify()
    assert (report.events, report.streams, report.checkpoints) == (LOG_EVENTS, STREAMS, 1)
    assert (report.sealed_events, report.unsealed_events) == (LOG_EVENTS, 0)


def test_events_recorded_after_the_seal_verify_as_unsealed(store: AuditedStore) -> None:
    store.app.forget("bob", reason="request", actor=None, at=DAY_ZERO)
    report = store.verify()
    assert (report.sealed_events, report.unsealed_events) == (LOG_EVENTS, 1)


def test_edited_event_bytes_are_named(store: AuditedStore, tamper: Tamperer) -> None:
    purchase = tamper.stream("bob")[2]
    tamper.replace_state(purchase, edited(purchase, b'"amount":"11.50"', b'"amount":"99.50"'))
    assert_verify_names(
        store,
        f"customer bob, version 3, position {purchase.position}",
        "content does not match its hash",
    )


def test_an_event_edited_after_the_last_seal_is_named_by_its_chain(
    store: AuditedStore, tamper: Tamperer
) -> None:
    store.app.forget("cyd", reason="request", actor="dpo", at=DAY_ZERO)
    erasure = tamper.stream("cyd")[-1]
    tamper.replace_state(erasure, edited(erasure, b'"actor":"dpo"', b'"actor":"eve"'))
    assert_verify_names(
        store,
        f"customer cyd, version 9, position {erasure.position}",
        "content does not match its hash",
    )


def test_a_deleted_event_is_named(store: AuditedStore, tamper: Tamperer) -> None:
    victim = tamper.stream("cyd")[3]
    tamper.delete(victim)
    assert_verify_names(
        store, f"customer cyd, version 4, position {victim.position}", "missing from the log"
    )


def test_the_deleted_last_event_of_a_relationship_is_named(
    store: AuditedStore, tamper: Tamperer
) -> None:
    victim = tamper.stream("dee")[-1]
    tamper.delete(victim)
    assert_verify_names(
        store, f"customer dee, version 8, position {victim.position}", "missing from the log"
    )


def test_reordered_events_are_named(store: AuditedStore, tamper: Tamperer) -> None:
    # Neighbours of different relationships swap places: each chain still holds.
    first, second = tamper.stream("ann")[-1], tamper.stream("bob")[0]
    assert second.position == first.position + 1
    tamper.swap_positions(first, second)
    assert_verify_names(
        store, f"customer bob, version 1, position {first.position}", "moved or reordered"
    )


def test_an_event_inserted_with_a_forged_hash_is_named(
    store: AuditedStore, tamper: Tamperer
) -> None:
    last = tamper.stream("ann")[-1]
    tamper.insert(None, StoredRow(0, last.originator_id, 9, last.topic, last.state))
    assert_verify_names(store, "customer ann, version 9", "content does not match its hash")


def test_a_well_chained_event_inserted_into_the_sealed_log_is_named(
    store: AuditedStore, tamper: Tamperer
) -> None:
    # A forger who knows the hashing writes a correct link, a version 9 of ann, and
    # slips it in at position 0, before everything that was sealed.
    tamper.insert(0, tamper.forge_next("ann", event_id="ann-forged"))
    assert_verify_names(store, "customer ann, version 9, position 0", "inserted")


def test_a_chain_rewritten_after_a_seal_is_named(store: AuditedStore, tamper: Tamperer) -> None:
    tamper.rewrite_chain("bob", 3, "source", "backoffice")
    rewritten = tamper.stream("bob")[2]
    assert_verify_names(
        store, f"customer bob, version 3, position {rewritten.position}", "rewritten after the seal"
    )


def test_a_chain_and_its_sealed_ledger_rewritten_together_are_caught(
    store: AuditedStore, tamper: Tamperer
) -> None:
    tamper.rewrite_chain("bob", 3, "source", "backoffice")
    tamper.rewrite_sealed_hashes("bob")
    assert_verify_names(store, "sealed ledger block", "does not carry a valid signature")


def test_a_checkpoint_with_an_altered_head_is_caught(store: AuditedStore, tamper: Tamperer) -> None:
    tamper.set_checkpoint_head(1, "0" * 64)
    assert_verify_names(store, "checkpoint #1", "valid signature")


def test_a_clean_log_reaches_a_checkpoint_kept_outside_the_database(
    store: AuditedStore,
) -> None:
    kept = store.ledger.checkpoints()
    store.tamperer.empty_ledger()
    report = verify_store(store.app, store.ledger, store.key, anchors=kept)
    assert (report.events, report.checkpoints) == (LOG_EVENTS, 0)


def test_a_rewrite_that_also_removed_the_ledger_is_caught_by_a_checkpoint_kept_outside(
    store: AuditedStore, tamper: Tamperer
) -> None:
    kept = store.ledger.checkpoints()
    tamper.rewrite_chain("bob", 3, "source", "backoffice")
    tamper.empty_ledger()
    with pytest.raises(TamperingDetected, match="head of checkpoint #1 \\(kept outside"):
        verify_store(store.app, store.ledger, store.key, anchors=kept)


def test_events_deleted_with_the_ledger_are_caught_by_a_checkpoint_kept_outside(
    store: AuditedStore, tamper: Tamperer
) -> None:
    kept = store.ledger.checkpoints()
    tamper.delete(tamper.stream("dee")[-1])
    tamper.empty_ledger()
    with pytest.raises(TamperingDetected, match=f"no event at position {LOG_EVENTS}"):
        verify_store(store.app, store.ledger, store.key, anchors=kept)


def test_one_customer_verifies_alone(store: AuditedStore, tamper: Tamperer) -> None:
    tamper.delete(tamper.stream("cyd")[1])
    report = verify_customer(store.app, store.ledger, store.key, "ann")
    assert (report.events, report.sealed_events) == (8, 8)


def test_one_customer_with_a_deleted_event_is_named(store: AuditedStore, tamper: Tamperer) -> None:
    victim = tamper.stream("cyd")[-1]
    tamper.delete(victim)
    with pytest.raises(TamperingDetected) as raised:
        verify_customer(store.app, store.ledger, store.key, "cyd")
    assert f"customer cyd, version 8, position {victim.position}" in str(raised.value)


def test_checkpoints_cannot_be_checked_without_the_key(store: AuditedStore) -> None:
    with pytest.raises(AuditKeyMissing, match="LIFECYCLE_AUDIT_HMAC_KEY"):
        verify_store(store.app, store.ledger, None)
