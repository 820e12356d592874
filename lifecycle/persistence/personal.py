"""Personal data at rest: encrypted per customer, erasable by destroying one key.

The ``personal`` object of a touchpoint (Contract 1: name, email, phone, note) never
reaches the event store in plain text. Before a batch is recorded, the application
asks the vault to protect it: each customer has their own random AES-256-GCM key in a
key table kept apart from the events (a file of its own beside the SQLite database,
``lifecycle.keys.db``; a table of its own on PostgreSQL), and the event records only an
envelope::

    {"alg": "AES-256-GCM", "key_id": "…", "nonce": "<base64>", "ciphertext": "<base64>"}

The ciphertext is bound to the customer and the touchpoint's event_id (associated
data), so it cannot be moved to another event. Event hashes cover the envelope, so
erasure changes no hash.

Erasing (``lifecycle forget``) destroys the key and leaves a tombstone: every envelope
of that customer becomes unreadable and is shown as ``{"erased": true}``; personal data
that arrives for the customer afterwards is not kept (the event records
``{"erased": "true"}`` in its place). On SQLite the key file runs with
``secure_delete`` and is checkpointed after the deletion so the key's bytes leave the
file; on PostgreSQL the key table is rewritten (``VACUUM FULL``) after the deletion.
Write-ahead-log segments and backups of the key store keep a destroyed key until they
are recycled: operators age backups of the key store accordingly.

Delivery policy: keys are created before the batch that first needs them, in their own
small idempotent transaction (a key created for a batch that then fails is simply used
by the retry); the write path caches keys in memory. Reads (history, export, the API)
always look keys up afresh, so an erasure shows at once in every process. A process
that still holds an erased customer's key in its write cache encrypts new data with a
key that no longer exists anywhere else: that data is unreadable too, i.e. erased.
Nothing personal is ever logged.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.persistence.side_file import open_side_file

if TYPE_CHECKING:  # psycopg and cryptography are imported only where they are used
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from eventsourcing.postgres import PostgresDatastore

ALGORITHM = "AES-256-GCM"
ERASED_MARKER: dict[str, str] = {"erased": "true"}
"""Recorded in place of personal data that arrived after the customer was forgotten."""
ERASED_VIEW: dict[str, Any] = {"erased": True}
"""How erased personal data is shown everywhere."""

_NONCE_BYTES = 12
_KEY_BYTES = 32


@dataclass(frozen=True)
class CustomerKey:
    key_id: str
    key: bytes | None
    """None once destroyed: the customer's personal data is erased."""


class KeyStore(ABC):
    """Where the per-customer keys live, apart from the events."""

    @abstractmethod
    def load(self, customer_ids: Collection[str]) -> dict[str, CustomerKey]:
        """The keys (or tombstones) of those customers that have one."""

    @abstractmethod
    def create(self, customer_ids: Collection[str], now: datetime) -> dict[str, CustomerKey]:
        """Create keys for customers without one; return every customer's key.

        Idempotent and safe against a concurrent creator: the first key stored wins.
        """

    @abstractmethod
    def destroy(self, customer_id: str, now: datetime) -> bool:
        """Destroy the customer's key, leaving a tombstone; False if it was gone already."""

    @abstractmethod
    def close(self) -> None: ...


def new_key() -> CustomerKey:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return CustomerKey(key_id=os.urandom(8).hex(), key=AESGCM.generate_key(_KEY_BYTES * 8))


class SQLiteKeyStore(KeyStore):
    """Keys in a SQLite file of their own, overwritten on deletion (``secure_delete``)."""

    def __init__(self, path: Path, lock_timeout: float = 30.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection = open_side_file(
            path,
            "CREATE TABLE IF NOT EXISTS personal_keys ("
            "customer_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, key BLOB, "
            "created_at TEXT NOT NULL, erased_at TEXT)",
            lock_timeout=lock_timeout,
            secure_delete=True,
            check_same_thread=False,
        )

    def load(self, customer_ids: Collection[str]) -> dict[str, CustomerKey]:
        found: dict[str, CustomerKey] = {}
        ids = list(customer_ids)
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = self._connection.execute(
                    "SELECT customer_id, key_id, key FROM personal_keys "
                    f"WHERE customer_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                found.update({row[0]: CustomerKey(row[1], row[2]) for row in rows})
        return found

    def create(self, customer_ids: Collection[str], now: datetime) -> dict[str, CustomerKey]:
        rows = []
        for customer_id in customer_ids:
            key = new_key()
            rows.append((customer_id, key.key_id, key.key, now.isoformat()))
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany(
                    "INSERT INTO personal_keys (customer_id, key_id, key, created_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (customer_id) DO NOTHING",
                    rows,
                )
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")
        return self.load(customer_ids)

    def destroy(self, customer_id: str, now: datetime) -> bool:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                row = self._connection.execute(
                    "SELECT key_id, key FROM personal_keys WHERE customer_id = ?", (customer_id,)
                ).fetchone()
                # Delete, then write the tombstone: with secure_delete the freed cell
                # holding the key is overwritten with zeros.
                self._connection.execute(
                    "DELETE FROM personal_keys WHERE customer_id = ?", (customer_id,)
                )
                self._connection.execute(
                    "INSERT INTO personal_keys (customer_id, key_id, key, created_at, erased_at) "
                    "VALUES (?, ?, NULL, ?, ?)",
                    (customer_id, row[0] if row else "none", now.isoformat(), now.isoformat()),
                )
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")
            # Move the change into the main file and empty the write-ahead log, which
            # still holds the page with the key until it is checkpointed.
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return row is not None and row[1] is not None

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class PostgresKeyStore(KeyStore):
    """Keys in a table of the PostgreSQL database, rewritten after a deletion."""

    TABLE = "lifecycle_personal_keys"

    def __init__(self, datastore: PostgresDatastore, conninfo: str) -> None:
        self.datastore = datastore
        self.conninfo = conninfo
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} ("
                "customer_id text PRIMARY KEY, key_id text NOT NULL, key bytea, "
                "created_at timestamptz NOT NULL, erased_at timestamptz)"
            )

    def load(self, customer_ids: Collection[str]) -> dict[str, CustomerKey]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT customer_id, key_id, key FROM {self.TABLE} WHERE customer_id = ANY(%s)",
                (list(customer_ids),),
            )
            return {
                row["customer_id"]: CustomerKey(
                    row["key_id"], bytes(row["key"]) if row["key"] is not None else None
                )
                for row in cursor.fetchall()
            }

    def create(self, customer_ids: Collection[str], now: datetime) -> dict[str, CustomerKey]:
        rows = []
        for customer_id in customer_ids:
            key = new_key()
            rows.append((customer_id, key.key_id, key.key, now))
        with self.datastore.transaction(commit=True) as cursor:
            cursor.executemany(
                f"INSERT INTO {self.TABLE} (customer_id, key_id, key, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (customer_id) DO NOTHING",
                rows,
            )
        return self.load(customer_ids)

    def destroy(self, customer_id: str, now: datetime) -> bool:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"SELECT key FROM {self.TABLE} WHERE customer_id = %s FOR UPDATE", (customer_id,)
            )
            row = cursor.fetchone()
            cursor.execute(
                f"INSERT INTO {self.TABLE} (customer_id, key_id, key, created_at, erased_at) "
                "VALUES (%s, 'none', NULL, %s, %s) ON CONFLICT (customer_id) "
                "DO UPDATE SET key = NULL, erased_at = EXCLUDED.erased_at",
                (customer_id, now, now),
            )
        # The old row version keeps the key until the table is rewritten.
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            connection.execute(f"VACUUM FULL {self.TABLE}")
        return row is not None and row["key"] is not None

    def close(self) -> None:
        self.datastore.close()


class PersonalDataVault:
    """Encrypts ``personal`` objects before they are recorded and reveals them after."""

    def __init__(self, keys: KeyStore, cache_size: int = 100_000) -> None:
        self.keys = keys
        self.cache_size = cache_size
        self._ciphers: dict[str, tuple[str, AESGCM] | None] = {}

    # The write path ---------------------------------------------------------------------

    def protect(self, touchpoints: Sequence[Touchpoint], now: datetime) -> Sequence[Touchpoint]:
        """The touchpoints with every ``personal`` object replaced by its envelope."""
        customers = {t.customer_id for t in touchpoints if t.personal is not None}
        if not customers:
            return touchpoints
        missing = customers - self._ciphers.keys()
        if len(self._ciphers) + len(missing) > self.cache_size:
            self._ciphers.clear()
            missing = customers
        if missing:
            self._load_keys(missing, now)
        protected: list[Touchpoint] = []
        for touchpoint in touchpoints:
            if touchpoint.personal is not None:
                envelope = self._encrypt(touchpoint)
                touchpoint = replace(touchpoint, personal=envelope)
            protected.append(touchpoint)
        return protected

    def _load_keys(self, customers: set[str], now: datetime) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        known = self.keys.load(customers)
        absent = customers - known.keys()
        if absent:
            known.update(self.keys.create(absent, now))
        for customer_id, key in known.items():
            self._ciphers[customer_id] = (
                (key.key_id, AESGCM(key.key)) if key.key is not None else None
            )

    def _encrypt(self, touchpoint: Touchpoint) -> dict[str, str]:
        cipher = self._ciphers[touchpoint.customer_id]  # loaded by protect()
        if cipher is None:  # the customer was forgotten
            return dict(ERASED_MARKER)
        key_id, aesgcm = cipher
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(touchpoint.personal, separators=(",", ":"), sort_keys=True)
        ciphertext = aesgcm.encrypt(
            nonce, plaintext.encode(), _associated_data(touchpoint.customer_id, touchpoint.event_id)
        )
        return {
            "alg": ALGORITHM,
            "key_id": key_id,
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ciphertext).decode(),
        }

    # Erasure ------------------------------------------------------------------------------

    def destroy(self, customer_id: str, now: datetime) -> bool:
        """Destroy the customer's key; True if there was one to destroy."""
        self._ciphers[customer_id] = None
        return self.keys.destroy(customer_id, now)

    # The read path ------------------------------------------------------------------------

    def revealer(self, customer_ids: Iterable[str]) -> Revealer:
        """Reads the keys of these customers afresh (never the write cache)."""
        return Revealer(self.keys.load(set(customer_ids)))

    def close(self) -> None:
        self.keys.close()


class Revealer:
    """Turns recorded ``personal`` envelopes back into what the customer gave, or into
    ``{"erased": true}`` when their key is gone."""

    def __init__(self, keys: Mapping[str, CustomerKey]) -> None:
        self._keys = keys

    def reveal(
        self, customer_id: str, event_id: str, personal: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        if personal is None:
            return None
        if "ciphertext" not in personal:
            return dict(ERASED_VIEW)
        key = self._keys.get(customer_id)
        if key is None or key.key is None or key.key_id != personal.get("key_id"):
            return dict(ERASED_VIEW)
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            plaintext = AESGCM(key.key).decrypt(
                base64.b64decode(personal["nonce"]),
                base64.b64decode(personal["ciphertext"]),
                _associated_data(customer_id, event_id),
            )
        except (InvalidTag, ValueError, KeyError):
            return {"unreadable": True}
        revealed: dict[str, Any] = json.loads(plaintext)
        return revealed


def _associated_data(customer_id: str, event_id: str) -> bytes:
    return f"{customer_id}\x1f{event_id}".encode()
