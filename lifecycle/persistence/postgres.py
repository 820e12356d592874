"""PostgreSQL's process recorder for the batch path, in a module of its own so that only
a PostgreSQL store loads psycopg (the other recorders are in ``recorders.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.utils import retry


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
