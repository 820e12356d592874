"""How the read API answers the domain's errors: one handler, which maps each error's
stable code to one HTTP status, and leaves any other a server error; a database that does
not answer is a 503 the client may send again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lifecycle.domain.errors import LifecycleError, RejectedTouchpoint
from projections.api.errors import ERROR_OF_STATUS, STATUS_OF_CODE, add_error_handlers


def _error_classes(base: type[LifecycleError] = LifecycleError) -> Iterator[type[LifecycleError]]:
    for subclass in base.__subclasses__():
        yield subclass
        yield from _error_classes(subclass)


def _answer_to(error: Exception) -> tuple[int, object]:
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/")
    async def fail() -> None:
        raise error

    response = TestClient(app, raise_server_exceptions=False).get("/")
    return response.status_code, response.json() if response.status_code < 500 else None


@pytest.mark.parametrize(("code", "status"), STATUS_OF_CODE.items())
def test_each_domain_error_code_the_api_meets_is_answered_with_its_one_status(
    code: str, status: int
) -> None:
    [error_class] = [c for c in _error_classes() if c.code == code]

    answer = _answer_to(error_class("what went wrong"))

    # Named by its status where one names it (not_found), else by its own code.
    expected = ERROR_OF_STATUS.get(status, code)
    assert answer == (status, {"error": expected, "message": "what went wrong"})


@pytest.mark.parametrize(
    "error",
    [
        *(
            c("unexpected")
            for c in _error_classes()
            if c is not RejectedTouchpoint and c.code not in STATUS_OF_CODE
        ),
        RejectedTouchpoint("schema_violation", "unexpected"),  # its code is the instance's
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_domain_error_the_api_does_not_meet_is_a_server_error(error: LifecycleError) -> None:
    assert _answer_to(error) == (500, None)


def test_every_domain_error_goes_through_the_one_handler() -> None:
    app = FastAPI()
    add_error_handlers(app)

    handled = [error for error in app.exception_handlers if isinstance(error, type)]

    assert [error for error in handled if issubclass(error, LifecycleError)] == [LifecycleError]


@pytest.mark.parametrize(
    "fault",
    [
        OperationalError("couldn't get a connection after 5.00 sec"),
        InterfaceError("the connection is closed"),
    ],
    ids=lambda fault: type(fault).__name__,
)
def test_a_database_that_does_not_answer_is_503_with_retry_after(fault: Exception) -> None:
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/")
    async def fail() -> None:
        raise fault

    response = TestClient(app).get("/")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"] == "database_unavailable"
    assert str(fault) in response.json()["message"]


def test_a_missing_table_is_a_server_error_not_an_outage() -> None:
    assert _answer_to(OperationalError("no such table: funnel")) == (500, None)
