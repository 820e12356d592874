"""The audit ledger: what was sealed, kept apart from the events and signed.

Sealing (``lifecycle.audit.sealing``) copies each new event's position, relationship,
version and hash from the log into *blocks*, advances the global running hash over them
in log order, and writes a *checkpoint* (sequence, log position, global head, count,
time) — blocks, checkpoint and the library's ``Tracking`` row (the sealed position) in
one transaction. Every block carries an HMAC over its entries and the global heads
before and after it; every checkpoint an HMAC over its fields. The key comes from
settings (``LIFECYCLE_AUDIT_HMAC_KEY``) and is never stored: someone who can rewrite
the database can recompute hashes, but cannot sign what they rewrote.

Where it lives: on SQLite a file of its own beside the main one (``lifecycle.audit.db``);
on PostgreSQL the tables ``lifecycle_audit_blocks``, ``lifecycle_audit_checkpoints`` and
``lifecycle_audit_tracking`` in the same database. The recorders extend eventsourcing's
tracking recorders, so the sealed position is ordinary tracking.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from pydantic import BaseModel, ConfigDict, Field

from lifecycle.domain.errors import LifecycleError
from lifecycle.persistence import library

ENTRY = struct.Struct(">q32s16sq")
"""One sealed event: position, event hash, relationship id, version. The first 40 bytes
(position and hash) are what the global chain advances over."""


class AuditKeyMissing(LifecycleError):
    code = "audit_key_missing"


class AuditKey:
    """The HMAC-SHA256 key that signs blocks, checkpoints and export manifests."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, purpose: str, payload: bytes) -> str:
        # The purpose keeps a signature of one kind from passing for another.
        return hmac.digest(self._secret, purpose.encode() + b"\n" + payload, "sha256").hex()

    def verifies(self, purpose: str, payload: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(purpose, payload), signature)


class Checkpoint(BaseModel):
    """A signed statement: the log up to ``position`` hashes to ``head``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sequence: int = Field(ge=1, description="1 for the first checkpoint, then one more each")
    position: int = Field(description="the last log position sealed (notification id)")
    head: str = Field(description="global running hash after that position, hex")
    events: int = Field(ge=0, description="events sealed up to and including this checkpoint")
    sealed_at: datetime
    signature: str = Field(description="HMAC-SHA256 over the other fields, hex")

    def payload(self) -> bytes:
        return checkpoint_payload(
            self.sequence, self.position, self.head, self.events, self.sealed_at
        )


def checkpoint_payload(
    sequence: int, position: int, head: str, events: int, sealed_at: datetime
) -> bytes:
    return f"{sequence}\n{position}\n{head}\n{events}\n{sealed_at.isoformat()}".encode()


@dataclass(frozen=True)
class Block:
    """Consecutive sealed events, signed with the global heads around them."""

    first_position: int
    last_position: int
    entries: bytes
    head_before: bytes
    head_after: bytes
    mac: str

    def __len__(self) -> int:
        return len(self.entries) // ENTRY.size

    def unpacked(self) -> Iterator[tuple[int, bytes, bytes, int]]:
        """(position, event hash, relationship id bytes, version) per sealed event."""
        return ENTRY.iter_unpack(self.entries)

    def payload(self) -> bytes:
        return block_payload(
            self.first_position, self.last_position, self.entries, self.head_before, self.head_after
        )


def block_payload(
    first: int, last: int, entries: bytes, head_before: bytes, head_after: bytes
) -> bytes:
    return b"".join(
        (
            struct.pack(">qq", first, last),
            hashlib.sha256(entries).digest(),
            head_before,
            head_after,
        )
    )


class AuditLedger(TrackingRecorder, ABC):
    """Blocks and checkpoints, written together with the sealed position's tracking."""

    @abstractmethod
    def record_seal(
        self, blocks: Sequence[Block], checkpoint: Checkpoint, tracking: Tracking
    ) -> None:
        """One transaction; ``IntegrityError`` if another sealer got there first."""

    @abstractmethod
    def checkpoints(self) -> list[Checkpoint]: ...

    @abstractmethod
    def blocks(self, after_position: int | None, limit: int) -> list[Block]:
        """Blocks in log order whose first position is after ``after_position``."""

    @abstractmethod
    def close(self) -> None: ...

    def latest_checkpoint(self) -> Checkpoint | None:
        checkpoints = self.checkpoints()
        return checkpoints[-1] if checkpoints else None

    def all_blocks(self, page: int = 64) -> Iterator[Block]:
        after: int | None = None
        while True:
            blocks = self.blocks(after, page)
            yield from blocks
            if len(blocks) < page:
                return
            after = blocks[-1].first_position


def _checkpoint_from(row: Any) -> Checkpoint:
    return Checkpoint(
        sequence=row[0],
        position=row[1],
        head=row[2],
        events=row[3],
        sealed_at=datetime.fromisoformat(row[4]) if isinstance(row[4], str) else row[4],
        signature=row[5],
    )


def _block_from(row: Any) -> Block:
    return Block(
        first_position=row[0],
        last_position=row[1],
        entries=bytes(row[2]),
        head_before=bytes(row[3]),
        head_after=bytes(row[4]),
        mac=row[5],
    )


_BLOCK_COLUMNS = "first_position, last_position, entries, head_before, head_after, mac"


def _block_row(block: Block) -> tuple[Any, ...]:
    """A block as the values of ``_BLOCK_COLUMNS``, for either backend."""
    return (
        block.first_position,
        block.last_position,
        block.entries,
        block.head_before,
        block.head_after,
        block.mac,
    )


def _checkpoint_row(checkpoint: Checkpoint) -> tuple[Any, ...]:
    """A checkpoint as the values of ``_CHECKPOINT_COLUMNS``, for either backend."""
    return (
        checkpoint.sequence,
        checkpoint.position,
        checkpoint.head,
        checkpoint.events,
        checkpoint.sealed_at.isoformat(),
        checkpoint.signature,
    )


_CHECKPOINT_COLUMNS = "sequence, position, head, events, sealed_at, signature"


class SQLiteAuditLedger(SQLiteTrackingRecorder, AuditLedger):
    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)

    def close(self) -> None:
        self.datastore.close()

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS audit_blocks ("
            "first_position INTEGER PRIMARY KEY, last_position INTEGER NOT NULL, "
            "entries BLOB NOT NULL, head_before BLOB NOT NULL, head_after BLOB NOT NULL, "
            "mac TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS audit_checkpoints ("
            "sequence INTEGER PRIMARY KEY, position INTEGER NOT NULL, head TEXT NOT NULL, "
            "events INTEGER NOT NULL, sealed_at TEXT NOT NULL, signature TEXT NOT NULL)",
        ]

    def record_seal(
        self, blocks: Sequence[Block], checkpoint: Checkpoint, tracking: Tracking
    ) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.executemany(
                f"INSERT INTO audit_blocks ({_BLOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [_block_row(b) for b in blocks],
            )
            cursor.execute(
                f"INSERT INTO audit_checkpoints ({_CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                _checkpoint_row(checkpoint),
            )
            library.insert_tracking(self, cursor, tracking)

    def checkpoints(self) -> list[Checkpoint]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY sequence")
            return [_checkpoint_from(row) for row in cursor.fetchall()]

    def blocks(self, after_position: int | None, limit: int) -> list[Block]:
        where, params = (
            ("WHERE first_position > ? ", [after_position, limit])
            if after_position is not None
            else ("", [limit])
        )
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT {_BLOCK_COLUMNS} FROM audit_blocks {where}ORDER BY first_position LIMIT ?",
                params,
            )
            return [_block_from(row) for row in cursor.fetchall()]


class PostgresAuditLedger(PostgresTrackingRecorder, AuditLedger):
    def __init__(
        self, datastore: PostgresDatastore, *, tracking_table_name: str, **kwargs: Any
    ) -> None:
        super().__init__(datastore, tracking_table_name=tracking_table_name, **kwargs)
        prefix = tracking_table_name.removesuffix("_tracking")
        self.blocks_table = f"{prefix}_blocks"
        self.checkpoints_table = f"{prefix}_checkpoints"
        from psycopg.sql import SQL, Identifier

        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.{1} ("
                    "first_position bigint PRIMARY KEY, last_position bigint NOT NULL, "
                    "entries bytea NOT NULL, head_before bytea NOT NULL, "
                    "head_after bytea NOT NULL, mac text NOT NULL)"
                ).format(schema, Identifier(self.blocks_table)),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.{1} ("
                    "sequence bigint PRIMARY KEY, position bigint NOT NULL, head text NOT NULL, "
                    "events bigint NOT NULL, sealed_at text NOT NULL, signature text NOT NULL)"
                ).format(schema, Identifier(self.checkpoints_table)),
            ]
        )

    def close(self) -> None:
        self.datastore.close()

    def _table(self, name: str) -> Any:
        from psycopg.sql import SQL, Identifier

        return SQL("{0}.{1}").format(Identifier(self.datastore.schema), Identifier(name))

    def record_seal(
        self, blocks: Sequence[Block], checkpoint: Checkpoint, tracking: Tracking
    ) -> None:
        from psycopg.sql import SQL

        with self.datastore.transaction(commit=True) as cursor:
            cursor.executemany(
                SQL(f"INSERT INTO {{0}} ({_BLOCK_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)").format(
                    self._table(self.blocks_table)
                ),
                [_block_row(b) for b in blocks],
            )
            cursor.execute(
                SQL(
                    f"INSERT INTO {{0}} ({_CHECKPOINT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
                ).format(self._table(self.checkpoints_table)),
                _checkpoint_row(checkpoint),
            )
            library.insert_tracking(self, cursor, tracking)

    def checkpoints(self) -> list[Checkpoint]:
        from psycopg.sql import SQL

        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                SQL(f"SELECT {_CHECKPOINT_COLUMNS} FROM {{0}} ORDER BY sequence").format(
                    self._table(self.checkpoints_table)
                )
            )
            return [_checkpoint_from(list(row.values())) for row in cursor.fetchall()]

    def blocks(self, after_position: int | None, limit: int) -> list[Block]:
        from psycopg.sql import SQL

        where = SQL("WHERE first_position > %s ") if after_position is not None else SQL("")
        params = [after_position, limit] if after_position is not None else [limit]
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                SQL(
                    f"SELECT {_BLOCK_COLUMNS} FROM {{0}} {{1}}ORDER BY first_position LIMIT %s"
                ).format(self._table(self.blocks_table), where),
                params,
            )
            return [_block_from(list(row.values())) for row in cursor.fetchall()]
