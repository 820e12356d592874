"""What eventsourcing's recorders do not offer and the batch path needs: which of many
aggregates already have events, answered with one query instead of one per aggregate;
a SQLite process recorder that inserts a batch with one ``executemany`` (PostgreSQL's
is in ``lifecycle.persistence.postgres``, so that a SQLite store never loads psycopg).
Both check a write's condition (``StreamAt``: a stream the write depends on has not
moved) inside its transaction, and read the log as plain rows made into notifications
at once, one shard of a rebuild's if asked (``SelectsShards``).

Idempotency of touchpoints: each recorded (relationship id, upstream event id) is a row
of a table of its own (``recorded_touchpoints``; ``lifecycle_recorded_touchpoints`` on
PostgreSQL), written in the same transaction as the events under a unique key. The
batch path asks which of a batch's keys are there with one query
(``recorded_touchpoints``), and a key recorded meanwhile by another writer fails the
transaction like a version conflict. So neither the aggregate nor its snapshots hold
every event id, and recording costs the same whatever the length of a history. A store
written before the table existed gets it filled from its log, once, by the first
process that records touchpoints (``ensure_touchpoint_keys``).

For auditing: the log read as plain rows (``select_notifications`` builds an object and
parses a UUID per event, which costs more than checking the event's hash), and one
stream's events with their log positions."""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Notification, StoredEvent, Tracking
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteProcessRecorder

from lifecycle.persistence import library

if TYPE_CHECKING:
    from eventsourcing.postgres import PostgresApplicationRecorder
    from psycopg.sql import Composed

    from lifecycle.persistence.postgres import BatchPostgresProcessRecorder

_SQLITE_CHUNK = 500

TouchpointKey = tuple[UUID, str]
"""(relationship id, upstream event id): what makes a touchpoint a duplicate."""

CONDITION = "condition"
"""The keyword of ``insert_events`` that carries a write's ``StreamAt`` condition."""


@dataclass(frozen=True)
class StreamAt:
    """A write's condition: the stream ``originator_id`` is still at ``version`` (its
    latest event's), as it was when the write was decided. It is checked inside the
    write's transaction once the transaction holds the log's write lock (SQLite's, or
    the table lock PostgreSQL inserts take), so no event of that stream can be committed
    between the check and the write."""

    originator_id: UUID
    version: int


class StreamMoved(Exception):
    """A write's ``StreamAt`` condition failed: nothing was written."""

    def __init__(self, condition: StreamAt, version: int) -> None:
        super().__init__(
            f"stream {condition.originator_id} is at version {version}, "
            f"not {condition.version}: the write was decided on what it was"
        )
        self.condition = condition
        self.version = version


def existing_originator_ids(recorder: ApplicationRecorder, ids: Collection[UUID]) -> set[UUID]:
    """The subset of ``ids`` that have at least one stored event."""
    if not ids:
        return set()
    if isinstance(recorder, SQLiteApplicationRecorder):
        return _sqlite_existing(recorder, list(ids))
    from eventsourcing.postgres import PostgresApplicationRecorder

    if isinstance(recorder, PostgresApplicationRecorder):
        return _postgres_existing(recorder, list(ids))
    # Any other recorder: ask per aggregate, as the library would.
    return {i for i in ids if recorder.select_events(i, limit=1)}


def recorded_touchpoints(
    recorder: ApplicationRecorder, keys: Collection[TouchpointKey]
) -> set[TouchpointKey]:
    """The subset of ``keys`` recorded before (one query per chunk of keys)."""
    if not keys:
        return set()
    return _keeping_touchpoint_keys(recorder).recorded_touchpoints(list(keys))


def ensure_touchpoint_keys(recorder: ApplicationRecorder, topics: Sequence[str]) -> None:
    """Create the table of touchpoint keys if it is missing, filled in the same
    transaction with the key of every event of ``topics`` in the log (each has an
    ``event_id``): a store written before the table existed keeps its old event ids
    as duplicates. Safe against processes doing the same at once."""
    _keeping_touchpoint_keys(recorder).ensure_touchpoint_keys(topics)


def _keeping_touchpoint_keys(
    recorder: ApplicationRecorder,
) -> BulkSQLiteProcessRecorder | BatchPostgresProcessRecorder:
    if isinstance(recorder, BulkSQLiteProcessRecorder):
        return recorder
    from lifecycle.persistence.postgres import BatchPostgresProcessRecorder

    if isinstance(recorder, BatchPostgresProcessRecorder):
        return recorder
    # The engine stores events in SQLite or PostgreSQL only (lifecycle.persistence.store).
    raise TypeError(f"touchpoint keys are not kept by {recorder!r}")


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
    from psycopg.sql import SQL

    statement = SQL(
        "SELECT DISTINCT originator_id FROM {table} WHERE originator_id = ANY(%s)"
    ).format(table=postgres_table(recorder, recorder.events_table_name))
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (ids,))
        return {row["originator_id"] for row in cursor.fetchall()}


class SelectsShards:
    """Mixed in before the library's recorder by a recorder whose
    ``select_notifications`` takes ``shard_digits``: only the events of aggregates whose
    id ends in one of these hex digits (a shard of a rebuild,
    ``projections.shards.Shard.hex_digits``), selected by the database.

    The query is the library's, its rows read as tuples and made into notifications at
    once (``library.notifications``): a page is read in half the time, and every
    projection and the relay read the log through here. Each database says its
    conditions in its own SQL (``_LOG_SQL``) and runs the query (``_notifications``)."""

    _LOG_SQL: ClassVar[LogSQL]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
        shard_digits: str | None = None,
    ) -> Sequence[Notification]:
        """The library's ``select_notifications``, and ``shard_digits``."""
        sql = self._LOG_SQL
        where: list[str] = []
        params: list[Any] = []
        if shard_digits is not None:
            where.append(sql.last_digit_in)
            params.append(shard_digits)
        if start is not None:
            where.append(sql.from_start if inclusive_of_start else sql.after_start)
            params.append(start)
        if stop is not None:
            where.append(sql.up_to_stop)
            params.append(stop)
        if topics:
            where.append(sql.topic_in(len(topics)))
            params.extend(sql.topic_params(topics))
        params.append(limit)
        return self._notifications(" AND ".join(where), params)

    @abstractmethod
    def _notifications(self, where: str, params: list[Any]) -> list[Notification]:
        """The events matching ``where`` (no condition when empty), in log order, up to
        the limit that ends ``params``."""


@dataclass(frozen=True)
class LogSQL:
    """The conditions of ``SelectsShards.select_notifications`` in one database's SQL."""

    last_digit_in: str
    """The originator id's last hex digit is in the parameter."""
    from_start: str
    after_start: str
    up_to_stop: str
    topic_in: Callable[[int], str]
    """The topic is one of that many parameters (``topic_params``)."""
    topic_params: Callable[[Sequence[str]], list[Any]]


class BulkSQLiteProcessRecorder(SelectsShards, SQLiteProcessRecorder):
    """The library's SQLite process recorder, inserting a batch with one ``executemany``,
    and keeping touchpoint keys (see the module docstring).

    The library inserts row by row to learn each notification id. Once the first row is
    in, this transaction holds SQLite's write lock, so the batch's rowids are the
    contiguous run ending at ``MAX(rowid)``: the same ids, at a fraction of the cost.

    Reading, each event's originator id is parsed into a ``UUID``; an aggregate's id
    comes back once per event it has, so parsed ids are kept (a bounded number).
    """

    _MAX_PARSED_IDS = 100_000
    touchpoints_table_name = "recorded_touchpoints"

    def ensure_touchpoint_keys(self, topics: Sequence[str]) -> None:
        table = self.touchpoints_table_name
        with self.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            # The write lock first: the check and the fill are one step for every process.
            cursor.execute("BEGIN IMMEDIATE")
            try:
                cursor.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
                )
                if cursor.fetchone() is None:
                    cursor.execute(
                        f"CREATE TABLE {table} (originator_id TEXT, event_id TEXT, "
                        "PRIMARY KEY (originator_id, event_id)) WITHOUT ROWID"
                    )
                    marks = ",".join("?" * len(topics))
                    cursor.execute(
                        f"INSERT OR IGNORE INTO {table} (originator_id, event_id) "
                        "SELECT originator_id, json_extract(CAST(state AS TEXT), '$.event_id') "
                        f"FROM {self.events_table_name} WHERE topic IN ({marks})",
                        list(topics),
                    )
            except BaseException:
                connection.rollback()
                raise
            connection.commit()

    def recorded_touchpoints(self, keys: list[TouchpointKey]) -> set[TouchpointKey]:
        found: set[TouchpointKey] = set()
        table = self.touchpoints_table_name
        with self.datastore.transaction(commit=False) as cursor:
            for start in range(0, len(keys), _SQLITE_CHUNK):
                chunk = keys[start : start + _SQLITE_CHUNK]
                ids = {originator_id.hex: originator_id for originator_id, _ in chunk}
                cursor.execute(
                    f"WITH batch(originator_id, event_id) AS (VALUES "
                    f"{','.join(['(?,?)'] * len(chunk))}) "
                    f"SELECT t.originator_id, t.event_id FROM batch JOIN {table} t "
                    "ON t.originator_id = batch.originator_id AND t.event_id = batch.event_id",
                    [value for key in chunk for value in (key[0].hex, key[1])],
                )
                found.update((ids[row[0]], row[1]) for row in cursor.fetchall())
        return found

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        keys: Sequence[TouchpointKey] = kwargs.get("touchpoint_keys", ())
        key_rows = [(originator_id.hex, event_id) for originator_id, event_id in keys]
        rows = [
            (
                s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                s.originator_version,
                s.topic,
                s.state,
            )
            for s in stored_events
        ]
        tracking: Tracking | None = kwargs.get("tracking")
        with self.datastore.transaction(commit=True) as c:
            # The transaction began deferred: the first write takes the write lock.
            locked = time.perf_counter()
            if key_rows:
                c.executemany(f"INSERT INTO {self.touchpoints_table_name} VALUES (?, ?)", key_rows)
            c.executemany(self.insert_events_statement, rows)
            if tracking is not None:
                library.insert_tracking(self, c, tracking)
            condition: StreamAt | None = kwargs.get(CONDITION)
            if condition is not None:
                # After the inserts: this transaction holds the write lock (when it wrote
                # anything), so what it reads now is the latest and stays so until it
                # commits.
                c.execute(
                    f"SELECT MAX(originator_version) FROM {self.events_table_name} "
                    "WHERE originator_id = ?",
                    [condition.originator_id.hex],
                )
                check_condition(condition, c.fetchone()[0])
            if not stored_events:
                return []
            c.execute(f"SELECT MAX(rowid) FROM {self.events_table_name}")
            last: int = c.fetchone()[0]
        held: list[float] | None = kwargs.get("lock_held")
        if held is not None:
            held.append(time.perf_counter() - locked)  # the commit released it
        return list(range(last - len(stored_events) + 1, last + 1))

    _LOG_SQL = LogSQL(
        last_digit_in="instr(?, lower(substr(originator_id, -1))) > 0",
        from_start="rowid>=?",
        after_start="rowid>?",
        up_to_stop="rowid<=?",
        topic_in=lambda count: f"topic IN ({','.join('?' * count)})",
        topic_params=list,
    )

    def _notifications(self, where: str, params: list[Any]) -> list[Notification]:
        statement = (
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} "
        )
        if where:
            statement += f"WHERE {where} "
        statement += "ORDER BY rowid LIMIT ?"
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None
            c.execute(statement, params)
            rows = c.fetchall()
        return library.notifications(rows, self.convert_originator_id)

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        parsed = self.__dict__.setdefault("_parsed_ids", {})
        found: UUID | str | None = parsed.get(originator_id)
        if found is None:
            if len(parsed) >= self._MAX_PARSED_IDS:
                parsed.clear()
            found = parsed[originator_id] = super().convert_originator_id(originator_id)
        return found


LogRow = tuple[int, str, int, str, bytes]
"""One event of the log: (position, relationship id as 32 hex digits, version, topic, state)."""


def read_log(recorder: ApplicationRecorder, start: int | None, limit: int) -> list[LogRow]:
    """Up to ``limit`` events from position ``start`` (None: from the very first row,
    whatever its position), in log order."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        where, params = (
            ("WHERE rowid >= ? ", [start, limit]) if start is not None else ("", [limit])
        )
        statement = (
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {recorder.events_table_name} {where}ORDER BY rowid LIMIT ?"
        )
        with recorder.datastore.transaction(commit=False) as cursor:
            # Plain tuples, not the library's sqlite3.Row; SQLite keeps ids as 32 hex digits.
            raw = cursor.sqlite_cursor if isinstance(cursor, SQLiteCursor) else cursor
            raw.row_factory = None
            raw.execute(statement, params)
            rows: list[LogRow] = raw.fetchall()
            return rows
    from eventsourcing.postgres import PostgresApplicationRecorder

    if isinstance(recorder, PostgresApplicationRecorder):
        return _postgres_log(recorder, start, limit)
    return [
        (n.id, UUID(str(n.originator_id)).hex, n.originator_version, n.topic, n.state)
        for n in recorder.select_notifications(start, limit)
    ]


def stream_log(recorder: ApplicationRecorder, originator_id: UUID) -> list[LogRow]:
    """Every event of one stream, by version, with its log position."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {recorder.events_table_name} WHERE originator_id = ? "
                "ORDER BY originator_version",
                [originator_id.hex],
            )
            return [(r[0], r[1], r[2], r[3], r[4]) for r in cursor.fetchall()]
    from eventsourcing.postgres import PostgresApplicationRecorder

    if isinstance(recorder, PostgresApplicationRecorder):
        return _postgres_stream(recorder, originator_id)
    # The engine stores events in SQLite or PostgreSQL only (lifecycle.persistence.store).
    raise TypeError(f"log positions of one stream are not available on {recorder!r}")


def _postgres_log(
    recorder: PostgresApplicationRecorder, start: int | None, limit: int
) -> list[LogRow]:
    from psycopg.sql import SQL

    where = SQL("WHERE notification_id >= %s ") if start is not None else SQL("")
    statement = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state "
        "FROM {table} {where}ORDER BY notification_id LIMIT %s"
    ).format(table=postgres_table(recorder, recorder.events_table_name), where=where)
    params = [start, limit] if start is not None else [limit]
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, params)
        return [_postgres_row(row) for row in cursor.fetchall()]


def _postgres_stream(recorder: PostgresApplicationRecorder, originator_id: UUID) -> list[LogRow]:
    from psycopg.sql import SQL

    statement = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state "
        "FROM {table} WHERE originator_id = %s ORDER BY originator_version"
    ).format(table=postgres_table(recorder, recorder.events_table_name))
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, [originator_id])
        return [_postgres_row(row) for row in cursor.fetchall()]


def _postgres_row(row: Any) -> LogRow:
    return (
        row["notification_id"],
        row["originator_id"].hex,
        row["originator_version"],
        row["topic"],
        bytes(row["state"]),
    )


def postgres_table(
    recorder: PostgresApplicationRecorder | BatchPostgresProcessRecorder, name: str
) -> Composed:
    """The table ``name`` of the recorder's schema, quoted, to format into a statement."""
    from psycopg.sql import SQL, Identifier

    return SQL("{}.{}").format(Identifier(recorder.datastore.schema), Identifier(name))


def check_condition(condition: StreamAt, version: int | None) -> None:
    """Raise ``StreamMoved`` unless the stream is at the condition's version."""
    if (version or 0) != condition.version:
        raise StreamMoved(condition, version or 0)
