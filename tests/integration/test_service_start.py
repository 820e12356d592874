"""A service's start waits out the database as its run does: ``opened_when_reachable``.

The database may go away at any moment of a start, after it first answered too (the
soak found a relay that died building its application while PostgreSQL restarted).
Each attempt opens everything the service needs; one that meets a database fault closes
what it opened, and the whole start is tried again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from eventsourcing.persistence import OperationalError
from structlog.testing import capture_logs

from lifecycle.entrypoints.cli.common import opened_when_reachable
from lifecycle.settings import Settings


class Resource:
    def __init__(self, name: str, journal: list[str]) -> None:
        self.name = name
        self.journal = journal
        journal.append(f"open {name}")

    def close(self) -> None:
        self.journal.append(f"close {self.name}")


def opening(journal: list[str], failures: list[BaseException]) -> Callable[[ExitStack], str]:
    """Opens an application and a tracking recorder; the tracking recorder's open
    raises the next of ``failures`` while there are any."""
    attempts = iter(range(1_000))

    def open_service(stack: ExitStack) -> str:
        attempt = next(attempts)
        stack.callback(Resource(f"application {attempt}", journal).close)
        if failures:
            raise failures.pop(0)
        stack.callback(Resource(f"tracking {attempt}", journal).close)
        return f"service {attempt}"

    return open_service


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'lifecycle.db'}")


def test_a_start_that_meets_a_database_fault_closes_what_it_opened_and_starts_again(
    settings: Settings,
) -> None:
    journal: list[str] = []
    failure = OperationalError("couldn't get a connection after 5.00 sec")
    with (
        capture_logs() as logs,
        opened_when_reachable(settings, threading.Event(), opening(journal, [failure])) as service,
    ):
        assert service == "service 1"
        assert journal == [
            "open application 0",
            "close application 0",
            "open application 1",
            "open tracking 1",
        ]
    assert journal[-2:] == ["close tracking 1", "close application 1"]
    assert [line["event"] for line in logs] == ["database_unavailable", "database_available_again"]


def test_a_stop_while_the_database_is_away_opens_nothing(settings: Settings) -> None:
    journal: list[str] = []
    stop = threading.Event()
    stop.set()
    failures: list[BaseException] = [OperationalError("the database system is starting up")]
    with opened_when_reachable(settings, stop, opening(journal, failures)) as service:
        assert service is None
    assert journal == ["open application 0", "close application 0"]


def test_an_error_that_is_no_fault_ends_the_start_at_once_closing_what_it_opened(
    settings: Settings,
) -> None:
    journal: list[str] = []
    failures: list[BaseException] = [ValueError("no such read model")]
    with (
        pytest.raises(ValueError, match="no such read model"),
        opened_when_reachable(settings, threading.Event(), opening(journal, failures)),
    ):
        pass
    assert journal == ["open application 0", "close application 0"]
