"""What the view of every read model shares: tables of its own beside a tracking table,
written page by page with the page's position in the same transaction, on SQLite or
PostgreSQL, in a live generation and (while rebuilding) a next one.

A view is an eventsourcing ``TrackingRecorder`` (``SQLiteTrackingRecorder`` or
``PostgresTrackingRecorder``): its rows and its ``Tracking`` position are written in one
transaction by ``write_page``, which also checks that the position it starts from is
the one recorded (compare-and-set). A page is therefore applied exactly once: a second
runner, a crash between pages or a rebuild swapped in underneath all show up as
``PositionMoved``, after which the runner forgets what it held and resumes from the
recorded position.

Each read model writes its SQL once, with ``?`` placeholders and a few type names
taken from the dialect; the two backends differ only in how a write transaction is
taken and in those type names.

Rebuilding (``lifecycle replay``) fills the same tables under a ``__next`` suffix,
tracked under its own name, while the live tables keep serving; ``swap_in_next`` then
drops the live tables, renames the next ones and moves the position, in one
transaction. Secondary indexes are built at the swap, after the bulk load.

A read model whose tables gain columns in a new release starts over when a process of
that release opens its live view on a store written by an earlier one: ``create_table``
finds a column missing, drops the live tables and their position in one transaction,
and the runners that follow the log project it again from position zero. A read model
is what its events make of it, so this is exact for every new column (those only the
log knows included), and one rule serves every future change of any read model's
layout; meanwhile the read model says how far it has got (its position, ``/readyz``),
as one deployed for the first time does.

A table a read model gained that its other tables determine (a count of their rows) is
filled from them instead, in the transaction that creates it (``Table.backfill``): the
read model answers at once and exactly, without replaying the log.

Figures over a whole read model that cannot be kept as sums (medians) are computed once
per position of the view and kept until it moves (``PerPosition``).
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import threading
import zlib
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

import structlog
from eventsourcing.persistence import (
    IntegrityError,
    OperationalError,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder

from lifecycle.domain.errors import LifecycleError
from lifecycle.persistence import library
from projections.shards import TRACKING_SUFFIX_PATTERN, WHOLE_LOG, Shard

T = TypeVar("T")

log = structlog.get_logger(__name__)

UPSTREAM = "Lifecycle"
"""The name of the application whose event log every read model follows."""

LIVE = ""
NEXT = "__next"
_NEXT_TRACKING_NAME = UPSTREAM + "@next"
"""What a rebuild tracks its position under, followed by its shard's suffix."""
_KEY_CHUNK = 500


class PositionMoved(IntegrityError):
    """The view's recorded position is not the one this page was folded from."""


class RebuildInProgress(LifecycleError):
    """Another process is rebuilding this read model (its next generation is taken)."""

    code = "rebuild_in_progress"


@dataclass(frozen=True)
class Dialect:
    """How the two SQL backends differ in what the read models write."""

    name: str
    time_type: str
    float_type: str
    paramstyle_percent: bool

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.paramstyle_percent else statement

    def time(self, value: datetime | None) -> Any:
        """A time as this backend stores it: SQLite fixed-width UTC ISO text (which
        sorts like time), PostgreSQL timestamptz."""
        if value is None:
            return None
        if self.paramstyle_percent:
            return value
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.isoformat(timespec="microseconds")

    def from_time(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.fromisoformat(value)


SQLITE = Dialect("sqlite", time_type="TEXT", float_type="REAL", paramstyle_percent=False)
POSTGRES = Dialect(
    "postgres", time_type="TIMESTAMPTZ", float_type="DOUBLE PRECISION", paramstyle_percent=True
)


@dataclass(frozen=True)
class Table:
    """One table of a view: its columns (SQL, with ``{time}``/``{float}`` type names),
    primary key and secondary indexes (name suffix -> columns)."""

    base: str
    columns: tuple[tuple[str, str], ...]
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, str], ...] = ()
    backfill: str | None = None
    """SQL filling this table from the view's other tables (``{table}`` names), run in
    the transaction that creates it: a table added to a read model is filled for the
    rows a store holds already, at their position."""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


class SqlView(TrackingRecorder):
    """The part of every view that does not depend on the backend."""

    projection_name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]
    dialect: ClassVar[Dialect]

    generation: str = LIVE

    # Backend hooks -----------------------------------------------------------------

    @abstractmethod
    def _write_transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A cursor in a transaction that holds this view's write lock, committed on exit."""

    @abstractmethod
    def _read_transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A cursor in a read-only transaction (one consistent snapshot)."""

    @abstractmethod
    def _tracking_table(self) -> str: ...

    @abstractmethod
    def _table_exists(self, cursor: Any, name: str) -> bool: ...

    @abstractmethod
    def _column_names(self, cursor: Any, name: str) -> set[str]:
        """The columns of table ``name`` (none when it does not exist)."""

    @abstractmethod
    def rebuilding(self) -> contextlib.AbstractContextManager[None]:
        """Held while the next generation is in use (a rebuild, a drift check): taking it
        a second time, in any process, raises ``RebuildInProgress`` at once rather than
        dropping the tables the first holder is filling. A process that dies lets go."""

    @abstractmethod
    def reach(self, other: SqlView, base: str) -> str:
        """The name under which this view's reads reach table ``base`` of ``other`` (the
        summary's reads join the analytics predictions in): on PostgreSQL the views
        share one database; a SQLite view attaches the other's file to its readers."""

    # Names ---------------------------------------------------------------------------

    shard: Shard = WHOLE_LOG
    """Which shard of a rebuild shared between processes this view's rows come from;
    each shard tracks its own position."""

    def use_generation(self, generation: str, shard: Shard = WHOLE_LOG) -> None:
        """Point this view at the live tables or at those of a rebuild in progress (of
        one ``shard`` of the customers, when several processes share it)."""
        self.generation = generation
        self.shard = shard if generation == NEXT else WHOLE_LOG

    @property
    def tracking_name(self) -> str:
        if self.generation == LIVE:
            return UPSTREAM
        return _NEXT_TRACKING_NAME + self.shard.tracking_suffix

    def table(self, base: str, generation: str | None = None) -> str:
        suffix = self.generation if generation is None else generation
        return f"{self.projection_name}_{base}{suffix}"

    def sql(self, statement: str) -> str:
        """A statement with ``{table}`` names of this generation and this backend's
        placeholders."""
        names = {t.base: self.table(t.base) for t in self.tables}
        return self.dialect.sql(statement.format(**names))

    # Tables --------------------------------------------------------------------------

    def create_table(self) -> None:
        super().create_table()  # type: ignore[misc]  # the backend's tracking table
        with self._write_transaction() as cursor:
            if self.generation == LIVE and self._laid_out_before(cursor):
                self._start_over(cursor)
            for table in self.tables:
                name = self.table(table.base)
                added = table.backfill is not None and not self._table_exists(cursor, name)
                cursor.execute(self._create_statement(table, name))
                if added:
                    assert table.backfill is not None
                    cursor.execute(self.sql(table.backfill))
                if self.generation == LIVE:
                    for statement in self._index_statements(table, self.table(table.base)):
                        cursor.execute(statement)

    def _laid_out_before(self, cursor: Any) -> bool:
        """Whether a live table was created by an earlier release (a column missing)."""
        for table in self.tables:
            present = self._column_names(cursor, self.table(table.base, LIVE))
            if present and not present.issuperset(table.column_names):
                return True
        return False

    def _start_over(self, cursor: Any) -> None:
        """Drop the live tables and their position: the runners project them again from
        position zero, in this release's layout (see the module docstring)."""
        log.warning(
            "read_model_layout_changed",
            projection=self.projection_name,
            action="projecting again from position zero",
        )
        for table in self.tables:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table(table.base, LIVE)}")
        cursor.execute(
            self.dialect.sql(f"DELETE FROM {self._tracking_table()} WHERE application_name = ?"),
            (UPSTREAM,),
        )

    def _create_statement(self, table: Table, name: str) -> str:
        columns = ", ".join(
            f"{column} {kind.format(time=self.dialect.time_type, float=self.dialect.float_type)}"
            for column, kind in table.columns
        )
        key = ", ".join(table.primary_key)
        return f"CREATE TABLE IF NOT EXISTS {name} ({columns}, PRIMARY KEY ({key}))"

    def _index_statements(self, table: Table, name: str) -> list[str]:
        return [
            f"CREATE INDEX IF NOT EXISTS {name}_{suffix} ON {name} ({columns})"
            for suffix, columns in table.indexes
        ]

    def drop_next(self) -> None:
        """Forget a rebuild's tables and position (a new rebuild starts from zero)."""
        with self._write_transaction() as cursor:
            for table in self.tables:
                cursor.execute(f"DROP TABLE IF EXISTS {self.table(table.base, NEXT)}")
            cursor.execute(
                self.dialect.sql(
                    f"DELETE FROM {self._tracking_table()} "
                    "WHERE application_name = ? OR application_name LIKE ?"
                ),
                (_NEXT_TRACKING_NAME, _NEXT_TRACKING_NAME + TRACKING_SUFFIX_PATTERN),
            )

    def swap_in_next(self) -> int | None:
        """Make the rebuilt tables the live ones, with their position, atomically.

        A runner still writing the old generation finds the position moved at its next
        page and resumes from the rebuilt one.
        """
        with self._write_transaction() as cursor:
            position = self._next_position(cursor)
            for table in self.tables:
                live, rebuilt = self.table(table.base, LIVE), self.table(table.base, NEXT)
                if not self._table_exists(cursor, rebuilt):
                    raise LookupError(f"no rebuilt table {rebuilt} to swap in")
                cursor.execute(f"DROP TABLE IF EXISTS {live}")
                cursor.execute(f"ALTER TABLE {rebuilt} RENAME TO {live}")
                for statement in self._index_statements(table, live):
                    cursor.execute(statement)
            cursor.execute(
                self.dialect.sql(
                    f"DELETE FROM {self._tracking_table()} "
                    "WHERE application_name IN (?, ?) OR application_name LIKE ?"
                ),
                (UPSTREAM, _NEXT_TRACKING_NAME, _NEXT_TRACKING_NAME + TRACKING_SUFFIX_PATTERN),
            )
            if position is not None:
                library.insert_tracking(self, cursor, Tracking(UPSTREAM, position))
        return position

    def _next_position(self, cursor: Any) -> int | None:
        """The position the rebuilt tables reflect: that of the rebuild, or the one
        every shard of it reached (shards that disagree are a rebuild not finished)."""
        cursor.execute(
            self.dialect.sql(
                "SELECT application_name, MAX(notification_id) AS position "
                f"FROM {self._tracking_table()} "
                "WHERE application_name = ? OR application_name LIKE ? GROUP BY application_name"
            ),
            (_NEXT_TRACKING_NAME, _NEXT_TRACKING_NAME + TRACKING_SUFFIX_PATTERN),
        )
        positions = {row["position"] for row in cursor.fetchall()}
        if len(positions) > 1:
            raise LookupError(
                f"{self.projection_name}: the shards of the rebuild reached different "
                f"positions {sorted(positions)}"
            )
        return positions.pop() if positions else None

    # Positions and pages -------------------------------------------------------------

    def _tracking_position(self, cursor: Any, name: str) -> int | None:
        """The position recorded under ``name``, read in the transaction of ``cursor``
        (the library's ``max_tracking_id`` reads in one of its own)."""
        cursor.execute(
            self.dialect.sql(
                "SELECT MAX(notification_id) AS position "
                f"FROM {self._tracking_table()} WHERE application_name = ?"
            ),
            (name,),
        )
        position: int | None = cursor.fetchone()["position"]
        return position

    def position(self) -> int | None:
        """The last notification id of the upstream log this generation reflects."""
        return self.max_tracking_id(self.tracking_name)

    def write_page(
        self, tracking: Tracking, expected: int | None, write: Callable[[Any], None]
    ) -> None:
        """Write a page's rows and its position in one transaction, if the recorded
        position is still ``expected``; otherwise raise ``PositionMoved``."""
        with self._write_transaction() as cursor:
            recorded = self._tracking_position(cursor, tracking.application_name)
            if recorded != expected:
                raise PositionMoved(
                    f"{self.projection_name}: position is {recorded}, expected {expected}"
                )
            write(cursor)
            if tracking.notification_id != expected:
                library.insert_tracking(self, cursor, tracking)

    # Reading -------------------------------------------------------------------------

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._read_transaction() as cursor:
            cursor.execute(self.sql(statement), params)
            return list(cursor.fetchall())

    def fetch_with_position(
        self, statement: str, params: Sequence[Any] = ()
    ) -> tuple[list[Any], int | None]:
        """Rows and the position they reflect, read in one snapshot."""
        with self._read_transaction() as cursor:
            cursor.execute(self.sql(statement), params)
            rows = list(cursor.fetchall())
            return rows, self._tracking_position(cursor, self.tracking_name)

    def fetch_by_keys(
        self, cursor: Any, base: str, key_column: str, keys: Iterable[str]
    ) -> Iterator[Any]:
        """Rows of a table whose ``key_column`` is among ``keys``."""
        keys = list(keys)
        name = self.table(base)
        if self.dialect.paramstyle_percent:
            cursor.execute(f"SELECT * FROM {name} WHERE {key_column} = ANY(%s)", (keys,))
            yield from cursor.fetchall()
            return
        for start in range(0, len(keys), _KEY_CHUNK):
            chunk = keys[start : start + _KEY_CHUNK]
            marks = ",".join("?" * len(chunk))
            cursor.execute(f"SELECT * FROM {name} WHERE {key_column} IN ({marks})", chunk)
            yield from cursor.fetchall()

    def load_by_keys(self, base: str, key_column: str, keys: Iterable[str]) -> list[Any]:
        with self._read_transaction() as cursor:
            return list(self.fetch_by_keys(cursor, base, key_column, keys))

    @abstractmethod
    def upsert(
        self,
        cursor: Any,
        base: str,
        rows: Iterable[Sequence[Any]],
        assignments: Sequence[str] | None = None,
    ) -> None:
        """Insert ``rows`` (values of every column of table ``base``, in order), or, for
        a row whose primary key is there already, SET ``assignments`` (default: every
        other column from the row inserted; ``excluded.`` names the row inserted). The
        rows must differ in their primary key, as every fold keeps them (in dicts and
        counters keyed by it). ``rows`` is read once, a row at a time."""

    def _table_named(self, base: str) -> Table:
        return next(t for t in self.tables if t.base == base)

    def _on_conflict(self, table: Table, assignments: Sequence[str] | None) -> str:
        if assignments is None:
            assignments = [
                f"{c} = excluded.{c}" for c in table.column_names if c not in table.primary_key
            ]
        clause = f"ON CONFLICT ({', '.join(table.primary_key)}) "
        return clause + (f"DO UPDATE SET {', '.join(assignments)}" if assignments else "DO NOTHING")

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, sorted: what a rebuild must reproduce."""
        dumped: dict[str, list[tuple[Any, ...]]] = {}
        with self._read_transaction() as cursor:
            for table in self.tables:
                columns = ", ".join(table.column_names)
                cursor.execute(f"SELECT {columns} FROM {self.table(table.base)}")
                rows = [tuple(row[c] for c in table.column_names) for row in cursor.fetchall()]
                dumped[table.base] = sorted(rows, key=_sort_key)
        return dumped


class PerPosition(Generic[T]):
    """A figure over a whole read model, computed once per position of its view and kept
    until the position moves, so that answering it does not cost more with more
    customers (only each new position does, once per process).

    ``compute`` reads the figure and the position it reflects in one snapshot. A route
    asks ``kept_at`` first and computes in the thread pool when it is not: one thread
    computes while the others wait for it and take its result. A rebuild swapped in at
    the position of the tables it replaces keeps the figure: a rebuild reproduces the
    same rows.
    """

    def __init__(self, compute: Callable[[], tuple[T, int | None]]) -> None:
        self._compute = compute
        self._kept: tuple[T, int | None] | None = None
        self._computing = threading.Lock()

    def kept_at(self, position: int | None) -> bool:
        """Whether the figure at ``position`` is kept (answering it reads no table)."""
        kept = self._kept
        return kept is not None and kept[1] == position

    def at(self, position: int | None) -> tuple[T, int | None]:
        """The figure at ``position`` (the view's, read just before), or, if the view
        has moved on meanwhile, at the position it has reached."""
        kept = self._kept
        if kept is not None and kept[1] == position:
            return kept
        with self._computing:
            kept = self._kept
            if kept is None or kept[1] != position:
                kept = self._kept = self._compute()
            return kept


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((value is None, "" if value is None else value) for value in row)


class SQLiteView(SqlView, SQLiteTrackingRecorder):
    """A view in its own SQLite file (``lifecycle.<projection>.db``)."""

    dialect = SQLITE

    def upsert(
        self,
        cursor: Any,
        base: str,
        rows: Iterable[Sequence[Any]],
        assignments: Sequence[str] | None = None,
    ) -> None:
        table = self._table_named(base)
        columns = table.column_names
        cursor.executemany(
            f"INSERT INTO {self.table(base)} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))}) {self._on_conflict(table, assignments)}",
            rows,
        )

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[Any]:
        # BEGIN IMMEDIATE takes the write lock before the position is read, so the
        # compare-and-set cannot race another writer (the library's BEGIN is deferred).
        with self.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                connection.commit()
            except BaseException as error:
                connection.rollback()
                if isinstance(error, sqlite3.OperationalError):
                    raise OperationalError(error) from error
                if isinstance(error, sqlite3.IntegrityError):
                    raise IntegrityError(error) from error
                raise

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attached: dict[str, str] = {}
        """Files of other views attached to this view's read connections, by schema."""

    @contextlib.contextmanager
    def _read_transaction(self) -> Iterator[Any]:
        if not self.attached:
            with self.datastore.transaction(commit=False) as cursor:
                yield cursor
            return
        with self.datastore.get_connection(commit=False) as connection:
            cursor = connection.cursor()
            # Outside a transaction (SQLite refuses ATTACH inside one), once per connection.
            cursor.execute("PRAGMA database_list")
            present = {row["name"] for row in cursor.fetchall()}
            for schema, path in self.attached.items():
                if schema not in present:
                    cursor.execute("ATTACH DATABASE ? AS " + schema, (path,))
            cursor.execute("BEGIN")
            try:
                yield cursor
            finally:
                connection.rollback()

    def reach(self, other: SqlView, base: str) -> str:
        self.attached[other.projection_name] = other.datastore.pool.db_name  # type: ignore[attr-defined]
        return f"{other.projection_name}.{other.table(base)}"

    def _tracking_table(self) -> str:
        return "tracking"

    def _table_exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return cursor.fetchone() is not None

    def _column_names(self, cursor: Any, name: str) -> set[str]:
        cursor.execute("SELECT name FROM pragma_table_info(?)", (name,))
        return {row["name"] for row in cursor.fetchall()}

    @contextlib.contextmanager
    def rebuilding(self) -> Iterator[None]:
        # A lock file of its own: SQLite's locks are POSIX locks on the database file,
        # which closing any other descriptor of that file in this process would drop.
        database: str = self.datastore.pool.db_name
        if self.datastore.pool.is_sqlite_memory_mode:
            yield
            return
        with open(f"{database}-rebuild", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RebuildInProgress(
                    f"{self.projection_name} is being rebuilt by another process"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class PostgresView(SqlView, PostgresTrackingRecorder):
    """A view in the shared PostgreSQL database, its tables prefixed by its name.

    Rows are written by COPY into a temporary table of the session, then moved with
    one ``INSERT … SELECT … ON CONFLICT``: a statement per row (``executemany``) costs
    the server an execution each and the client a round of parameters each.
    """

    dialect = POSTGRES

    def upsert(
        self,
        cursor: Any,
        base: str,
        rows: Iterable[Sequence[Any]],
        assignments: Sequence[str] | None = None,
    ) -> None:
        table = self._table_named(base)
        name = self.table(base)
        staged = f"{name}__staged"
        columns = ", ".join(table.column_names)
        # The session's own table, emptied after each use (a rollback empties it too).
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staged} (LIKE {name})")
        with cursor.copy(f"COPY {staged} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {staged} "
            + self._on_conflict(table, assignments)
        )
        cursor.execute(f"TRUNCATE {staged}")

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=True) as cursor:
            # One writer per view at a time, so the position read below stays true
            # until this transaction commits.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key(),))
            yield cursor

    @contextlib.contextmanager
    def _read_transaction(self) -> Iterator[Any]:
        with (
            self.datastore.get_connection() as connection,
            connection.transaction(force_rollback=True),
        ):
            cursor = connection.cursor()
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield cursor

    def _lock_key(self, purpose: str = "view") -> int:
        return zlib.crc32(f"lifecycle-{purpose}:{self.tracking_table_name}".encode())

    @contextlib.contextmanager
    def rebuilding(self) -> Iterator[None]:
        # A session-level advisory lock, on a connection held until the end.
        key = self._lock_key("rebuild")
        with self.datastore.get_connection() as connection:
            row = connection.execute("SELECT pg_try_advisory_lock(%s) AS locked", (key,))
            locked = row.fetchone()
            connection.commit()
            if not (locked and locked["locked"]):
                raise RebuildInProgress(
                    f"{self.projection_name} is being rebuilt by another process"
                )
            try:
                yield
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
                connection.commit()

    def reach(self, other: SqlView, base: str) -> str:
        return other.table(base)

    def _tracking_table(self) -> str:
        return self.tracking_table_name

    def _table_exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (name,))
        row = cursor.fetchone()
        return bool(row["present"])

    def _column_names(self, cursor: Any, name: str) -> set[str]:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (name,),
        )
        return {row["column_name"] for row in cursor.fetchall()}


def backend_views(view: type, **attributes: Any) -> dict[str, type[SqlView]]:
    """A read model's ``view_classes``: its view (a ``SqlView`` that leaves the database
    open) on each database, with ``attributes`` set on both (the configuration that tells
    apart read models sharing one view)."""
    name = view.__name__
    return {
        "sqlite": type(f"SQLite{name}", (view, SQLiteView), attributes),
        "postgres": type(f"Postgres{name}", (view, PostgresView), attributes),
    }
