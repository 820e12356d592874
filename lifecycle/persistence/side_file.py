"""A small SQLite file of the store's own beside its database (personal-data keys,
dead-letter re-drives): one table, written by one process's threads in turn."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_side_file(
    path: Path,
    create_table: str,
    *,
    lock_timeout: float,
    secure_delete: bool = False,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """The file at ``path`` (made, with its folder, when missing) holding the table that
    ``create_table`` makes if it is not there: in autocommit and write-ahead-log mode, so
    that readers in other processes do not wait for a writer. ``secure_delete``
    overwrites what is deleted, for what must not be recoverable once erased."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        path, timeout=lock_timeout, isolation_level=None, check_same_thread=check_same_thread
    )
    connection.execute("PRAGMA journal_mode=WAL")
    if secure_delete:
        connection.execute("PRAGMA secure_delete=ON")
    connection.execute(create_table)
    return connection
