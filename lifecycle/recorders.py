"""What eventsourcing's recorders do not offer and the batch path needs: which of many
aggregates already have events, answered with one query instead of one per aggregate;
a SQLite process recorder that inserts a batch with one ``executemany``; and a
PostgreSQL process recorder that does not stall on large batches."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    OperationalError,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteProcessRecorder
from eventsourcing.utils import retry

_SQLITE_CHUNK = 500


def existing_originator_ids(recorder: ApplicationRecorder, ids: Collection[UUID]) -> set[UUID]:
    """The subset of ``ids`` that have at least one stored event."""
    if not ids:
        return set()
    if isinstance(recorder, SQLiteApplicationRecorder):
        return _sqlite_existing(recorder, list(ids))
    if isinstance(recorder, PostgresApplicationRecorder):
        return _postgres_existing(recorder, list(ids))
    # Any other recorder: ask per aggregate, as the library would.
    return {i for i in ids if recorder.select_events(i, limit=1)}


def _sqlite_existing(recorder: SQLiteApplicationRecorder, ids: list[UUID]) -> set[UUID]:
    found: set[UUID] = set()
    table = recorder.events_table_name
    with recorder.datastore.transaction(commit=False) as cursor:
        for start in range(0, len(ids), _SQLITE_CHUNK):
            chunk = [i.hex for i in ids[start : start + _SQLITE_CHUNK]]
            marks = ",".join("?" * len(chunk))
            cursor.execute(
                f"SELECT DISTINCT originator_id FROM {table} WHERE originator_id IN ({marks})",
                chunk,
            )
            found.update(UUID(row[0]) for row in cursor.fetchall())
    return found


def _postgres_existing(recorder: PostgresApplicationRecorder, ids: list[UUID]) -> set[UUID]:
    from psycopg.sql import SQL, Identifier

    statement = SQL(
        "SELECT DISTINCT originator_id FROM {schema}.{table} WHERE originator_id = ANY(%s)"
    ).format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
    )
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (ids,))
        return {row["originator_id"] for row in cursor.fetchall()}


class BulkSQLiteProcessRecorder(SQLiteProcessRecorder):
    """The library's SQLite process recorder, inserting a batch with one ``executemany``.

    The library inserts row by row to learn each notification id. Once the first row is
    in, this transaction holds SQLite's write lock, so the batch's rowids are the
    contiguous run ending at ``MAX(rowid)``: the same ids, at a fraction of the cost.
    """

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        c.executemany(
            self.insert_events_statement,
            [
                (
                    s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                    s.originator_version,
                    s.topic,
                    s.state,
                )
                for s in stored_events
            ],
        )
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(c, tracking)
        if not stored_events:
            return []
        last: int = self._max_notification_id(c)
        return list(range(last - len(stored_events) + 1, last + 1))


class BatchPostgresProcessRecorder(PostgresProcessRecorder):
    """The library's PostgreSQL process recorder, inserting without pipeline mode.

    In pipeline mode, psycopg 3.3 over a Unix socket stalls on large batches (the server
    waits in ClientRead for the rest of the INSERT while the client waits in
    ``Pipeline.sync``). A plain transaction does the same work in the same order:
    tracking row, table lock, NOTIFY, the one multi-row INSERT, its notification ids.
    """

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
