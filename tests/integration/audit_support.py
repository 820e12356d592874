"""What the audit tests share: a small recorded population, and a tamperer that edits
the real database with SQL the way an intruder with database access would."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import psycopg

from lifecycle.audit.ledger import ENTRY
from lifecycle.audit.sealing import SealOutcome, seal
from lifecycle.audit.verify import TamperingDetected, VerifyReport, verify_store
from lifecycle.domain.hashchain import GENESIS_HASH, HASH, PREVIOUS_HASH, reference_hasher
from lifecycle.domain.hashchain import header as chain_header
from lifecycle.domain.relationship import relationship_id
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Channel, Kind
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.persistence.store import Store
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings

AUDIT_KEY = "test-audit-key-0123456789abcdef"
DAY_ZERO = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
CUSTOMERS = ("ann", "bob", "cyd", "dee")
PLAINTEXT_EMAIL = "ann.secret-address@example.org"


def audited_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, log_format="json", audit_hmac_key=AUDIT_KEY)


def population() -> list[Touchpoint]:
    """Four customers, a handful of touchpoints each; ann gives personal data."""
    touchpoints = []
    for number, customer in enumerate(CUSTOMERS):
        for day, kind in enumerate(("inquiry", "purchase", "delivery", "purchase", "survey")):
            attributes: dict[str, Any] = {
                "purchase": {"amount": f"{10 + day}.50", "currency": "EUR", "category": "books"},
                "survey": {"score": 9},
            }.get(kind, {})
            touchpoints.append(
                Touchpoint(
                    event_id=f"{customer}-{day}",
                    customer_id=customer,
                    kind=Kind(kind),
                    channel=Channel.WEB,
                    occurred_at=DAY_ZERO + timedelta(days=day * 3 + number, hours=number),
                    producer="shop",
                    attributes=attributes,
                    personal=(
                        {"name": "Ann Example", "email": PLAINTEXT_EMAIL}
                        if customer == "ann" and day == 0
                        else None
                    ),
                )
            )
    return touchpoints


@dataclass(frozen=True)
class StoredRow:
    position: int
    originator_id: UUID
    version: int
    topic: str
    state: bytes

    @property
    def content(self) -> dict[str, Any]:
        loaded: dict[str, Any] = orjson.loads(self.state)
        return loaded


class Tamperer:
    """Direct SQL on the events table and the audit ledger, on SQLite or PostgreSQL."""

    def __init__(self, settings: Settings) -> None:
        self.store = Store.from_url(settings.database_url)

    @property
    def position_column(self) -> str:
        return "rowid" if self.store.is_sqlite else "notification_id"

    @property
    def events_table(self) -> str:
        return "stored_events" if self.store.is_sqlite else "lifecycle_events"

    def blocks_table(self) -> str:
        return "audit_blocks" if self.store.is_sqlite else "lifecycle_audit_blocks"

    def checkpoints_table(self) -> str:
        return "audit_checkpoints" if self.store.is_sqlite else "lifecycle_audit_checkpoints"

    def _events_db(self) -> AbstractContextManager[Any]:
        return self._connected(self.store.sqlite_path)

    def _audit_db(self) -> AbstractContextManager[Any]:
        return self._connected(self.store.sibling_path("audit") if self.store.is_sqlite else None)

    @contextmanager
    def _connected(self, sqlite_file: Path | None) -> Iterator[Any]:
        """A committing connection: to ``sqlite_file`` of a SQLite store (its events and its
        audit ledger are separate files), else to the one database of a PostgreSQL store."""
        if sqlite_file is not None:
            connection = sqlite3.connect(sqlite_file)
            try:
                yield connection
                connection.commit()
            finally:
                connection.close()
        else:
            with psycopg.connect(self.store.conninfo) as connection:
                yield connection

    def _sql(self, statement: str) -> str:
        return statement if self.store.is_sqlite else statement.replace("?", "%s")

    def _id(self, originator_id: UUID) -> Any:
        return originator_id.hex if self.store.is_sqlite else originator_id

    # Reading --------------------------------------------------------------------------

    def stream(self, customer_id: str) -> list[StoredRow]:
        with self._events_db() as db:
            rows = db.execute(
                self._sql(
                    f"SELECT {self.position_column}, originator_version, topic, state "
                    f"FROM {self.events_table} WHERE originator_id = ? ORDER BY originator_version"
                ),
                (self._id(relationship_id(customer_id)),),
            ).fetchall()
        return [
            StoredRow(row[0], relationship_id(customer_id), row[1], row[2], bytes(row[3]))
            for row in rows
        ]

    # Tampering ------------------------------------------------------------------------

    def replace_state(self, row: StoredRow, state: bytes) -> None:
        with self._events_db() as db:
            db.execute(
                self._sql(
                    f"UPDATE {self.events_table} SET state = ? "
                    "WHERE originator_id = ? AND originator_version = ?"
                ),
                (state, self._id(row.originator_id), row.version),
            )

    def delete(self, row: StoredRow) -> None:
        with self._events_db() as db:
            db.execute(
                self._sql(
                    f"DELETE FROM {self.events_table} "
                    "WHERE originator_id = ? AND originator_version = ?"
                ),
                (self._id(row.originator_id), row.version),
            )

    def swap_positions(self, first: StoredRow, second: StoredRow) -> None:
        column, table = self.position_column, self.events_table
        with self._events_db() as db:
            for position, row in ((-1, first), (first.position, second), (second.position, first)):
                db.execute(
                    self._sql(
                        f"UPDATE {table} SET {column} = ? "
                        "WHERE originator_id = ? AND originator_version = ?"
                    ),
                    (position, self._id(row.originator_id), row.version),
                )

    def insert(self, position: int | None, row: StoredRow) -> None:
        """A new row with ``row``'s id, version, topic and state, at ``position`` (None: the
        next free one)."""
        with self._events_db() as db:
            if position is None:
                db.execute(
                    self._sql(
                        f"INSERT INTO {self.events_table} "
                        "(originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)"
                    ),
                    (self._id(row.originator_id), row.version, row.topic, row.state),
                )
            else:
                db.execute(
                    self._sql(
                        f"INSERT INTO {self.events_table} ({self.position_column}, "
                        "originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?, ?)"
                    ),
                    (position, self._id(row.originator_id), row.version, row.topic, row.state),
                )

    def rewrite_chain(self, customer_id: str, version: int, field: str, value: Any) -> None:
        """Change one field of one event and recompute every hash from there on, so the
        relationship's chain is consistent again — the rewrite a seal must expose."""
        rows = self.stream(customer_id)
        previous = GENESIS_HASH
        for row in rows:
            content = row.content
            if row.version < version:
                previous = content[HASH]
                continue
            if row.version == version:
                content[field] = value
            content[PREVIOUS_HASH] = previous
            content[HASH] = reference_hasher(
                chain_header(previous, row.originator_id, row.version, _type(row.topic)),
                content,
            )
            previous = content[HASH]
            self.replace_state(row, orjson.dumps(content))

    def forge_next(self, customer_id: str, **changes: Any) -> StoredRow:
        """A copy of the customer's last event with ``changes``, as the next version,
        correctly linked and hashed."""
        last = self.stream(customer_id)[-1]
        content = {**last.content, **changes, PREVIOUS_HASH: last.content[HASH]}
        content[HASH] = reference_hasher(
            chain_header(
                last.content[HASH], last.originator_id, last.version + 1, _type(last.topic)
            ),
            content,
        )
        return StoredRow(0, last.originator_id, last.version + 1, last.topic, orjson.dumps(content))

    def rewrite_sealed_hashes(self, customer_id: str) -> None:
        """Make the ledger's entries agree with the (rewritten) events, keeping the
        blocks' signatures as they were: the intruder cannot sign."""
        current = {row.position: row.content[HASH] for row in self.stream(customer_id)}
        with self._audit_db() as db:
            blocks = db.execute(f"SELECT first_position, entries FROM {self.blocks_table()}")
            for first_position, entries in blocks.fetchall():
                unpacked = list(ENTRY.iter_unpack(bytes(entries)))
                rewritten = b"".join(
                    ENTRY.pack(
                        position,
                        bytes.fromhex(current[position]) if position in current else event_hash,
                        rid,
                        version,
                    )
                    for position, event_hash, rid, version in unpacked
                )
                db.execute(
                    self._sql(
                        f"UPDATE {self.blocks_table()} SET entries = ? WHERE first_position = ?"
                    ),
                    (rewritten, first_position),
                )

    def empty_ledger(self) -> None:
        """Remove every trace of sealing from the database."""
        tracking = "tracking" if self.store.is_sqlite else "lifecycle_audit_tracking"
        with self._audit_db() as db:
            for table in (self.blocks_table(), self.checkpoints_table(), tracking):
                db.execute(f"DELETE FROM {table}")

    def set_checkpoint_head(self, sequence: int, head: str) -> None:
        with self._audit_db() as db:
            db.execute(
                self._sql(f"UPDATE {self.checkpoints_table()} SET head = ? WHERE sequence = ?"),
                (head, sequence),
            )


class AuditedStore:
    """An application with its audit ledger and key on one database, for a test."""

    def __init__(self, database_url: str) -> None:
        self.settings = audited_settings(database_url)
        self.app = Components(self.settings).application()
        self.ledger = Components(self.settings).ledger()
        key = Components(self.settings).audit_key()
        assert key is not None
        self.key = key
        self.tamperer = Tamperer(self.settings)

    def seal(self) -> SealOutcome:
        return seal(self.app, self.ledger, self.key)

    def verify(self) -> VerifyReport:
        return verify_store(self.app, self.ledger, self.key)

    def divergence(self) -> str:
        """What ``verify`` names; fails the test if it finds nothing."""
        try:
            self.verify()
        except TamperingDetected as tampering:
            return str(tampering)
        raise AssertionError("tampering went undetected")

    def close(self) -> None:
        self.ledger.close()
        self.app.close()


@contextmanager
def audited_store(database_url: str) -> Iterator[AuditedStore]:
    store = AuditedStore(database_url)
    try:
        yield store
    finally:
        store.close()


def recorded_store(database_url: str, *, sealed: bool = False) -> Iterator[AuditedStore]:
    """For a fixture: the population recorded (and sealed), closed afterwards."""
    with audited_store(database_url) as audited:
        record_population(audited.app)
        if sealed:
            audited.seal()
        yield audited


def _type(topic: str) -> str:
    return topic.rpartition(".")[2]


POPULATION_EVENTS = 32
"""The events of the population's four relationships."""
POLICY_EVENTS = 2
"""The policy stream's first events (started, the built-in policy adopted), which the
first batch recorded into a store writes before its own."""
LOG_EVENTS = POLICY_EVENTS + POPULATION_EVENTS
STREAMS = len(CUSTOMERS) + 1
"""The population's relationships and the policy stream."""


def record_population(app: LifecycleApplication) -> None:
    app.record_batch(population())
