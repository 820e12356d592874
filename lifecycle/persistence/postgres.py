"""PostgreSQL's process recorder for the batch path, in a module of its own so that only
a PostgreSQL store loads psycopg (the other recorders are in ``recorders.py``, whose
docstring says how touchpoint keys are kept)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import structlog
from eventsourcing.persistence import Notification, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from psycopg.sql import SQL

from lifecycle.faults import Backoff, is_database_fault, retry
from lifecycle.persistence import library
from lifecycle.persistence.recorders import (
    CONDITION,
    LogSQL,
    SelectsShards,
    StreamAt,
    TouchpointKey,
    check_condition,
    postgres_table,
)

log = structlog.get_logger(__name__)

INSERT_ATTEMPTS = 10
INSERT_BACKOFF = Backoff(initial=0.2, factor=1.0)
"""A few quick attempts at an insert, as the library makes them (a pooled connection
lost): a longer outage is for the caller to wait out."""


class BatchPostgresProcessRecorder(SelectsShards, PostgresProcessRecorder):
    """The library's PostgreSQL process recorder, inserting a batch with ``COPY`` in a
    plain transaction, keeping touchpoint keys (see the module docstring), and reading
    the log as the SQLite one does.

    The library inserts in pipeline mode, where psycopg 3.3 over a Unix socket stalls on
    large batches (the server waits in ClientRead for the rest of the INSERT while the
    client waits in ``Pipeline.sync``), and adapts each event to a composite type in
    Python after it has taken the table lock that makes every writer of the log take
    turns: with several writers, that Python time was serialised too. Here everything
    that can happen before the lock does (the tracking row, the touchpoint keys, the
    rows made ready), and under the lock (``library.lock_log``) only a binary ``COPY``
    and the commit. The lock keeps anyone else from drawing notification ids meanwhile,
    so the batch's ids are the run ending at the sequence's value after the ``COPY``.
    """

    @property
    def touchpoints_table_name(self) -> str:
        prefix = self.events_table_name.removesuffix("_events")
        return f"{prefix}_recorded_touchpoints"

    def ensure_touchpoint_keys(self, topics: Sequence[str]) -> None:
        table = postgres_table(self, self.touchpoints_table_name)
        with self.datastore.transaction(commit=True) as cursor:
            # One process at a time checks and fills; the others find the table made.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [self.touchpoints_table_name]
            )
            cursor.execute(
                "SELECT to_regclass(%s) IS NOT NULL AS present",
                [f"{self.datastore.schema}.{self.touchpoints_table_name}"],
            )
            row = cursor.fetchone()
            if row is not None and row["present"]:
                return
            cursor.execute(
                SQL(
                    "CREATE TABLE {table} (originator_id uuid NOT NULL, "
                    "event_id text NOT NULL, PRIMARY KEY (originator_id, event_id))"
                ).format(table=table)
            )
            cursor.execute(
                SQL(
                    "INSERT INTO {table} (originator_id, event_id) "
                    "SELECT originator_id, convert_from(state, 'UTF8')::json ->> 'event_id' "
                    "FROM {events} WHERE topic = ANY(%s) ON CONFLICT DO NOTHING"
                ).format(table=table, events=postgres_table(self, self.events_table_name)),
                [list(topics)],
            )

    def recorded_touchpoints(self, keys: list[TouchpointKey]) -> set[TouchpointKey]:
        statement = SQL(
            "SELECT t.originator_id, t.event_id "
            "FROM unnest(%s::uuid[], %s::text[]) AS batch(originator_id, event_id) "
            "JOIN {table} t "
            "ON t.originator_id = batch.originator_id AND t.event_id = batch.event_id"
        ).format(table=postgres_table(self, self.touchpoints_table_name))
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, ([key[0] for key in keys], [key[1] for key in keys]))
            return {(row["originator_id"], row["event_id"]) for row in cursor.fetchall()}

    def _insert_touchpoint_keys(self, curs: Any, keys: Sequence[TouchpointKey]) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {table} (originator_id, event_id) "
                "SELECT * FROM unnest(%s::uuid[], %s::text[])"
            ).format(table=postgres_table(self, self.touchpoints_table_name)),
            ([key[0] for key in keys], [key[1] for key in keys]),
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return retry(
            lambda: self._insert_in_one_transaction(stored_events, **kwargs),
            is_fault=is_database_fault,
            cause="database",
            log=log,
            backoff=INSERT_BACKOFF,
            attempts=INSERT_ATTEMPTS,
        )

    def _insert_in_one_transaction(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        table = postgres_table(self, self.events_table_name)
        condition: StreamAt | None = kwargs.get(CONDITION)
        with self.datastore.get_connection() as conn:
            with conn.transaction(), conn.cursor() as curs:
                tracking: Tracking | None = kwargs.get("tracking")
                if tracking is not None:
                    library.insert_tracking(self, curs, tracking)
                keys: Sequence[TouchpointKey] = kwargs.get("touchpoint_keys", ())
                if keys:
                    self._insert_touchpoint_keys(curs, keys)
                if not stored_events:
                    if condition is not None:
                        self._check(curs, condition, locked=False)
                    return None
                rows = [
                    (s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events
                ]
                library.lock_log(self, curs)
                locked = time.perf_counter()
                copy_statement = SQL(
                    "COPY {table} (originator_id, originator_version, topic, state) "
                    "FROM STDIN (FORMAT BINARY)"
                ).format(table=table)
                with curs.copy(copy_statement) as copy:
                    copy.set_types(["uuid", "int8", "text", "bytea"])
                    for row in rows:
                        copy.write_row(row)
                curs.execute(
                    "SELECT currval(pg_get_serial_sequence(%s, 'notification_id')) AS last",
                    [f"{self.datastore.schema}.{self.events_table_name}"],
                )
                last = curs.fetchone()["last"]  # type: ignore[index]
                if condition is not None:
                    self._check(curs, condition, locked=True)
            held: list[float] | None = kwargs.get("lock_held")
            if held is not None:
                held.append(time.perf_counter() - locked)  # the commit released it
        return list(range(last - len(rows) + 1, last + 1))

    def _check(self, curs: Any, condition: StreamAt, *, locked: bool) -> None:
        """A write's ``StreamAt`` condition, checked under the table lock every insert
        takes: an event committed before it is seen (read committed), and none can be
        committed after it until this transaction ends."""
        from psycopg.sql import SQL

        if not locked:
            library.lock_events_table(self, curs)
        curs.execute(
            SQL(
                "SELECT MAX(originator_version) AS version FROM {table} WHERE originator_id = %s"
            ).format(table=postgres_table(self, self.events_table_name)),
            [condition.originator_id],
        )
        check_condition(condition, curs.fetchone()["version"])

    _LOG_SQL = LogSQL(
        last_digit_in="strpos(%s, right(originator_id::text, 1)) > 0",
        from_start="notification_id >= %s",
        after_start="notification_id > %s",
        up_to_stop="notification_id <= %s",
        topic_in=lambda _: "topic = ANY(%s)",
        topic_params=lambda topics: [list(topics)],
    )

    def _notifications(self, where: str, params: list[Any]) -> list[Notification]:
        from psycopg.rows import tuple_row

        statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {table} "
        ).format(table=postgres_table(self, self.events_table_name))
        if where:
            # The conditions are _LOG_SQL's own text, with no name nor value in them.
            statement += SQL("WHERE ") + SQL(where) + SQL(" ")
        statement += SQL("ORDER BY notification_id LIMIT %s")
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, params, prepare=True)
            rows = curs.fetchall()
        return library.notifications(rows, _as_is)


def _as_is(originator_id: Any) -> Any:
    """PostgreSQL returns ids as ``UUID`` already."""
    return originator_id
