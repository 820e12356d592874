"""Waiting out transient faults (``lifecycle.faults.retry``), without any server."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import structlog
from structlog.testing import capture_logs

from lifecycle.faults import Backoff, Stopped, retry

NO_WAIT = Backoff(initial=0.0)
log = structlog.get_logger(__name__)


class Away(Exception):
    """The fault of these tests."""


def failing(times: int, then: str = "done") -> Callable[[], str]:
    calls = iter(range(times + 1))

    def operation() -> str:
        if next(calls) < times:
            raise Away("not now")
        return then

    return operation


def is_away(error: BaseException) -> bool:
    return isinstance(error, Away)


def test_an_operation_is_repeated_after_each_fault_until_it_succeeds() -> None:
    with capture_logs() as logs:
        result = retry(failing(2), is_fault=is_away, cause="database", log=log, backoff=NO_WAIT)

    assert result == "done"
    assert [entry["event"] for entry in logs] == [
        "database_unavailable",
        "database_unavailable",
        "database_available_again",
    ]


def test_an_error_that_is_not_a_fault_is_raised_at_once() -> None:
    calls: list[int] = []

    def operation() -> str:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        retry(operation, is_fault=is_away, cause="database", log=log, backoff=NO_WAIT)
    assert calls == [1]


def test_the_last_fault_is_raised_once_the_attempts_allowed_are_spent() -> None:
    with pytest.raises(Away):
        retry(failing(3), is_fault=is_away, cause="database", log=log, backoff=NO_WAIT, attempts=3)


def test_a_stop_requested_while_waiting_abandons_the_operation() -> None:
    stop = threading.Event()
    stop.set()

    with pytest.raises(Stopped):
        retry(failing(1), is_fault=is_away, cause="broker", log=log, stop=stop, backoff=NO_WAIT)


def test_delays_grow_exponentially_up_to_their_cap() -> None:
    backoff = Backoff(initial=0.5, maximum=3.0)

    assert [backoff.delay(attempt) for attempt in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
