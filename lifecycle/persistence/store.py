"""Where events live: ``LIFECYCLE_DATABASE_URL`` turned into eventsourcing's persistence
environment. SQLite (one file, WAL) is the embedded default; PostgreSQL the scale-out store.

On SQLite each component that keeps its own tables (the application, projections,
ingest bookkeeping) gets its own file beside the main one, because the library keeps
one ``stored_events`` table per file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from lifecycle.domain.errors import LifecycleError

SQLITE_PROCESS_RECORDER = "lifecycle.persistence.recorders:BulkSQLiteProcessRecorder"
POSTGRES_PROCESS_RECORDER = "lifecycle.persistence.postgres:BatchPostgresProcessRecorder"
"""The process recorders the library is told to construct (topics: module and class)."""


class InvalidDatabaseUrl(LifecycleError):
    code = "invalid_database_url"


@dataclass(frozen=True)
class Store:
    """A parsed database URL."""

    url: str
    sqlite_path: Path | None = None
    postgres_dbname: str = ""
    postgres_host: str = ""
    postgres_port: str = "5432"
    postgres_user: str = ""
    postgres_password: str = ""

    @property
    def is_sqlite(self) -> bool:
        return self.sqlite_path is not None

    @classmethod
    def from_url(cls, url: str) -> Store:
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
            path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
            if not path:
                raise InvalidDatabaseUrl(f"database URL {url!r} names no file: use sqlite:///PATH")
            return cls(url=url, sqlite_path=Path(path))
        if parts.scheme in ("postgresql", "postgres"):
            query = parse_qs(parts.query)
            host = query.get("host", [parts.hostname or ""])[0]
            dbname = unquote(parts.path.lstrip("/")) or "postgres"
            if not host:
                raise InvalidDatabaseUrl(f"database URL {url!r} names no host")
            return cls(
                url=url,
                postgres_dbname=dbname,
                postgres_host=host,
                postgres_port=str(parts.port or query.get("port", ["5432"])[0]),
                postgres_user=unquote(parts.username or "postgres"),
                postgres_password=unquote(parts.password or ""),
            )
        raise InvalidDatabaseUrl(
            f"database URL {url!r} is neither sqlite:///PATH nor postgresql://…"
        )

    @property
    def conninfo(self) -> str:
        """A libpq connection string for PostgreSQL (for what needs its own connection)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            dbname=self.postgres_dbname,
            host=self.postgres_host,
            port=self.postgres_port,
            user=self.postgres_user,
            password=self.postgres_password,
        )

    def check_reachable(self, timeout: int = 5) -> None:
        """Connect once and hang up. Raises eventsourcing's ``OperationalError`` while a
        PostgreSQL server does not answer (or is still recovering); a SQLite file always
        answers. A service's start calls it before it builds anything on the store
        (``opened_when_reachable``), so that a start during an outage waits it out quietly
        instead of through the connection pool's timeouts."""
        if self.sqlite_path is not None:
            return
        import psycopg
        from eventsourcing.persistence import OperationalError

        try:
            psycopg.connect(self.conninfo, connect_timeout=timeout).close()
        except psycopg.OperationalError as error:
            raise OperationalError(str(error)) from error

    def sibling_path(self, component: str) -> Path:
        """The SQLite file of a component that keeps its own tables: lifecycle.<component>.db"""
        assert self.sqlite_path is not None
        return self.sqlite_path.with_name(
            f"{self.sqlite_path.stem}.{component}{self.sqlite_path.suffix or '.db'}"
        )

    def persistence_env(self, component: str | None = None) -> dict[str, str]:
        """eventsourcing's environment for the application (component None) or a
        component with tables of its own (a projection view, ingest tracking)."""
        if self.sqlite_path is not None:
            path = self.sqlite_path if component is None else self.sibling_path(component)
            path.parent.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(path),
                "SQLITE_LOCK_TIMEOUT": "30",
                "PROCESS_RECORDER_TOPIC": SQLITE_PROCESS_RECORDER,
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.postgres_dbname,
            "POSTGRES_HOST": self.postgres_host,
            "POSTGRES_PORT": self.postgres_port,
            "POSTGRES_USER": self.postgres_user,
            "POSTGRES_PASSWORD": self.postgres_password,
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "PROCESS_RECORDER_TOPIC": POSTGRES_PROCESS_RECORDER,
            # Check a pooled connection before use: after a database restart, the first
            # retry of a long-running service gets a fresh connection, not a dead one.
            "POSTGRES_PRE_PING": "y",
            # Give up waiting for a pooled connection after 5 s (the library waits 30 s):
            # services then log the outage and retry on their own schedule.
            "POSTGRES_CONNECT_TIMEOUT": "5",
        }
