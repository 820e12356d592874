"""The read API's errors, answered in one shape (``models.Error``) and mapped to HTTP
here, in one place: 400 a body that is not JSON, 401 no valid key, 403 wrong role, 404
unknown customer (or route), 409 position not reached, 413 a body too large, 422 bad
parameter (never a 500 for bad input), 503 a write that kept meeting other writers or a
database that did not answer (with ``Retry-After``: a client sends the same request
again); and, not an error, 304 to a client that holds the answer already
(``NotModified``).

Domain errors (``LifecycleError``) are mapped by their stable ``code``
(``STATUS_OF_CODE``); the API's own refusals are ``ApiError``; FastAPI's validation and
routing errors are given the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lifecycle.domain.analytics import NoModelFitted
from lifecycle.domain.errors import InvalidAccountManager, LifecycleError, RelationshipNotFound
from lifecycle.faults import DATABASE_FAULTS, is_database_fault
from projections.api import models

STATUS_OF_CODE: dict[str, int] = {
    RelationshipNotFound.code: 404,
    InvalidAccountManager.code: 422,
    NoModelFitted.code: 409,
}
"""The HTTP status of each domain error the read API may meet. Any other is a server
error: the API did not expect it, so no client could have avoided it."""

ERROR_OF_STATUS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "not_allowed",
    422: "invalid_parameter",
}
"""The ``error`` an answer of the status names, where no more precise one is known."""


class ApiError(Exception):
    """A request the API refuses by its own rules (not a domain error)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


class NotModified(Exception):
    """The client holds the answer already (its ``If-None-Match`` names the answer's
    tag): 304, with the tag and the position, and no body."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__("not modified")
        self.headers = headers


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route that may answer ``statuses``."""
    return {status: {"model": models.Error} for status in statuses}


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NotModified, _not_modified)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(LifecycleError, _domain_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for fault in DATABASE_FAULTS:
        app.add_exception_handler(fault, _database_unavailable)


def _answer(
    status: int, body: models.Error, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body.model_dump(exclude_none=True), status, headers=headers)


async def _api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return _answer(error.status, models.Error(error=error.error, message=error.message), headers)


async def _not_modified(_: Request, answer: Exception) -> Response:
    assert isinstance(answer, NotModified)
    return Response(status_code=304, headers=answer.headers)


async def _domain_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, LifecycleError)
    status = STATUS_OF_CODE.get(error.code)
    if status is None:
        raise error
    name = ERROR_OF_STATUS.get(status, error.code)
    return _answer(status, models.Error(error=name, message=str(error)))


async def _invalid(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    detail = [
        {"loc": [str(part) for part in e["loc"]], "msg": str(e["msg"]), "type": str(e["type"])}
        for e in error.errors()
    ]
    first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"][1:] or first["loc"])
    return _answer(
        422,
        models.Error(error="invalid_parameter", message=f"{where}: {first['msg']}", detail=detail),
    )


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    body = models.Error(
        error=ERROR_OF_STATUS.get(error.status_code, "http_error"), message=str(error.detail)
    )
    return _answer(error.status_code, body, error.headers)


DATABASE_RETRY_AFTER_SECONDS = 1
"""What a client is told to wait before sending again while the database is away: the
pool has already waited for a connection before the API answers."""


async def _database_unavailable(_: Request, error: Exception) -> JSONResponse:
    if not is_database_fault(error):
        raise error  # not a fault that heals (a missing table): a server error
    body = models.Error(
        error="database_unavailable",
        message=f"the database did not answer ({error}): send the request again",
    )
    return _answer(503, body, {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
