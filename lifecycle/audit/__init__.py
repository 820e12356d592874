"""Audit: the tamper-evident ledger over the event log, verification, exports.

- ``chain``: hash-chain links checked from stored bytes; the global running hash.
- ``ledger``: signed blocks and checkpoints, stored apart from the events.
- ``sealing``: extend the ledger and sign a checkpoint (``seal``, ``PeriodicSealer``).
- ``verify``: recompute every chain and check every signature (``verify_store``).
- ``history``: a customer's events with positions, hashes and personal data revealed.
- ``export``: JSON lines of Contract 3 events plus a signed manifest; offline checks.

The hash of each event is defined by the domain (``lifecycle.hashchain``) and computed
by the ``Relationship`` aggregate as events are recorded.
"""

from __future__ import annotations

from lifecycle.application import LifecycleApplication
from lifecycle.audit.ledger import (
    AuditKey,
    AuditKeyMissing,
    AuditLedger,
    PostgresAuditLedger,
    SQLiteAuditLedger,
)
from lifecycle.audit.sealing import PeriodicSealer
from lifecycle.settings import Settings
from lifecycle.store import Store

LEDGER_NAME = "lifecycle_audit"


def build_ledger(settings: Settings) -> AuditLedger:
    """The audit ledger of this store: lifecycle.audit.db beside a SQLite database,
    lifecycle_audit_* tables on PostgreSQL."""
    from eventsourcing.utils import Environment

    store = Store.from_url(settings.database_url)
    env = Environment(LEDGER_NAME, {**store.persistence_env("audit"), "POSTGRES_POOL_SIZE": "2"})
    if store.is_sqlite:
        from eventsourcing.sqlite import SQLiteFactory

        return SQLiteFactory(env).tracking_recorder(SQLiteAuditLedger)  # type: ignore[return-value]
    from eventsourcing.postgres import PostgresFactory

    return PostgresFactory(env).tracking_recorder(PostgresAuditLedger)


def audit_key(settings: Settings, *, required: bool = True) -> AuditKey | None:
    """The HMAC key from settings; ``AuditKeyMissing`` when required and unset."""
    if settings.audit_hmac_key is None:
        if required:
            raise AuditKeyMissing(
                "LIFECYCLE_AUDIT_HMAC_KEY is not set: the audit ledger is signed with a key "
                "kept outside the database (at least 16 characters)"
            )
        return None
    return AuditKey(settings.audit_hmac_key.get_secret_value().encode())


def build_sealer(settings: Settings, app: LifecycleApplication) -> PeriodicSealer:
    """The sealer ``lifecycle run`` runs: every ``LIFECYCLE_AUDIT_SEAL_INTERVAL_SECONDS``,
    with its own ledger connection (closed by ``PeriodicSealer.close``)."""
    key = audit_key(settings)
    assert key is not None
    return PeriodicSealer(
        app, build_ledger(settings), key, interval=settings.audit_seal_interval_seconds
    )
