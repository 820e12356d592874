"""What the dead-letter re-drive remembers: every message it re-drove, by identity (see
``consumers.dead_letters``), with how many times and the offset of the letter it last
re-drove.

A small table of the store: ``lifecycle.redrives.db`` beside a SQLite database, the
``lifecycle_dead_letter_redrives`` table on PostgreSQL. A log opened to read only
(``lifecycle dead-letters list``) creates nothing: before the first re-drive it
remembers nothing.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lifecycle.persistence.side_file import open_side_file

if TYPE_CHECKING:  # psycopg is imported only where PostgreSQL is used
    from eventsourcing.postgres import PostgresDatastore

_CHUNK = 500


@dataclass(frozen=True)
class Redrive:
    """One message re-driven: its identity, the count it was re-driven with (1 the first
    time), the offset of the dead letter re-driven, and when."""

    identity: str
    count: int
    offset: int
    at: datetime


class RedriveLog(ABC):
    """Where re-drives are remembered."""

    @abstractmethod
    def counts(self, identities: Collection[str]) -> dict[str, int]:
        """How many times each of these messages was re-driven (those never are absent)."""

    @abstractmethod
    def remember(self, redrives: Sequence[Redrive]) -> None:
        """Record these re-drives (each replaces what was known of its message)."""

    @abstractmethod
    def close(self) -> None: ...


class SQLiteRedriveLog(RedriveLog):
    """Re-drives in a SQLite file of their own."""

    def __init__(self, path: Path, *, read_only: bool = False, lock_timeout: float = 30.0):
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        if read_only and not path.exists():
            return  # nothing was ever re-driven
        if read_only:
            self._connection = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=lock_timeout
            )
            return
        self._connection = open_side_file(
            path,
            "CREATE TABLE IF NOT EXISTS dead_letter_redrives ("
            "identity TEXT PRIMARY KEY, redrive_count INTEGER NOT NULL, "
            "last_offset INTEGER NOT NULL, redriven_at TEXT NOT NULL)",
            lock_timeout=lock_timeout,
        )

    def counts(self, identities: Collection[str]) -> dict[str, int]:
        if self._connection is None:
            return {}
        found: dict[str, int] = {}
        ids = list(identities)
        with self._lock:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                rows = self._connection.execute(
                    "SELECT identity, redrive_count FROM dead_letter_redrives "
                    f"WHERE identity IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                found.update(dict(rows))
        return found

    def remember(self, redrives: Sequence[Redrive]) -> None:
        if not redrives:
            return
        if self._connection is None:
            raise RuntimeError("a re-drive log opened to read cannot remember")
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany(
                    "INSERT INTO dead_letter_redrives VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (identity) DO UPDATE SET redrive_count = excluded.redrive_count, "
                    "last_offset = excluded.last_offset, redriven_at = excluded.redriven_at",
                    [(r.identity, r.count, r.offset, r.at.isoformat()) for r in redrives],
                )
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()


class PostgresRedriveLog(RedriveLog):
    """Re-drives in a table of the PostgreSQL database."""

    TABLE = "lifecycle_dead_letter_redrives"

    def __init__(self, datastore: PostgresDatastore, *, read_only: bool = False) -> None:
        self.datastore = datastore
        self._exists = True
        if read_only:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (self.TABLE,))
                row = cursor.fetchone()
                self._exists = bool(row and row["present"])
            return
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} ("
                "identity text PRIMARY KEY, redrive_count integer NOT NULL, "
                "last_offset bigint NOT NULL, redriven_at timestamptz NOT NULL)"
            )

    def counts(self, identities: Collection[str]) -> dict[str, int]:
        if not self._exists:
            return {}
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT identity, redrive_count FROM {self.TABLE} WHERE identity = ANY(%s)",
                (list(identities),),
            )
            return {row["identity"]: row["redrive_count"] for row in cursor.fetchall()}

    def remember(self, redrives: Sequence[Redrive]) -> None:
        if not redrives:
            return
        with self.datastore.transaction(commit=True) as cursor:
            cursor.executemany(
                f"INSERT INTO {self.TABLE} VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (identity) DO UPDATE SET redrive_count = excluded.redrive_count, "
                "last_offset = excluded.last_offset, redriven_at = excluded.redriven_at",
                [(r.identity, r.count, r.offset, r.at) for r in redrives],
            )

    def close(self) -> None:
        self.datastore.close()
