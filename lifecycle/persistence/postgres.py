"""PostgreSQL's process recorder for the batch path, in a module of its own so that only
a PostgreSQL store loads psycopg (the other recorders are in ``recorders.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder

from lifecycle.faults import Backoff, is_database_fault, retry
from lifecycle.persistence import library
from lifecycle.persistence.recorders import CONDITION, StreamAt, check_condition

log = structlog.get_logger(__name__)

INSERT_ATTEMPTS = 10
INSERT_BACKOFF = Backoff(initial=0.2, factor=1.0)
"""A few quick attempts at an insert, as the library makes them (a pooled connection
lost): a longer outage is for the caller to wait out."""


class BatchPostgresProcessRecorder(PostgresProcessRecorder):
    """The library's PostgreSQL process recorder, inserting without pipeline mode.

    In pipeline mode, psycopg 3.3 over a Unix socket stalls on large batches (the server
    waits in ClientRead for the rest of the INSERT while the client waits in
    ``Pipeline.sync``). A plain transaction does the same work in the same order
    (``library.insert_in_plain_transaction``).
    """

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
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            ids = library.insert_in_plain_transaction(self, curs, stored_events, **kwargs)
            condition: StreamAt | None = kwargs.get(CONDITION)
            if condition is not None:
                self._check(curs, condition, locked=bool(stored_events))
            return ids

    def _check(self, curs: Any, condition: StreamAt, *, locked: bool) -> None:
        """A write's ``StreamAt`` condition, checked under the table lock every insert
        takes: an event committed before it is seen (read committed), and none can be
        committed after it until this transaction ends."""
        from psycopg.sql import SQL, Identifier

        if not locked:
            library.lock_events_table(self, curs)
        curs.execute(
            SQL(
                "SELECT MAX(originator_version) AS version FROM {schema}.{table} "
                "WHERE originator_id = %s"
            ).format(
                schema=Identifier(self.datastore.schema),
                table=Identifier(self.events_table_name),
            ),
            [condition.originator_id],
        )
        check_condition(condition, curs.fetchone()["version"])
