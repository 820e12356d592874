"""The ``audit`` tag: a customer's recorded events and their relationship as recorded,
from the event log itself; for auditors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from lifecycle.audit.history import audited_history
from lifecycle.domain.errors import RelationshipNotFound
from projections.api import models
from projections.api.dependencies import CustomerId, ReadSideDep, Time, auditor, respond
from projections.api.errors import ApiError, error_responses

router = APIRouter(tags=["audit"], dependencies=[auditor])


@router.get(
    "/v1/customers/{customer_id:segment}/history",
    response_model=models.HistoryResponse,
    responses=error_responses(401, 403, 404, 422),
    summary="Every recorded event of a customer's relationship (Contract 3), each with "
    "its business time, recorded time, version, log position and hash",
    description="Personal data is never revealed here: each event's `personal` says "
    "`encrypted` or `erased`. Verify the hashes offline with `lifecycle audit verify`.",
)
def get_history(customer_id: CustomerId, read_side: ReadSideDep) -> Response:
    position = read_side.head()
    events = audited_history(read_side.application, customer_id, reveal=False)
    return respond(
        models.HistoryResponse(position=position, customer_id=customer_id, events=events)
    )


@router.get(
    "/v1/customers/{customer_id:segment}/state",
    response_model=models.StateResponse,
    responses=error_responses(401, 403, 404, 422),
    summary="A relationship as recorded now, at a version, or as known at a time",
)
def get_state(
    customer_id: CustomerId,
    read_side: ReadSideDep,
    version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
    as_of: Annotated[Time | None, Query(description="recorded time")] = None,
) -> Response:
    if version is not None and as_of is not None:
        raise ApiError(422, "invalid_parameter", "give version or as_of, not both")
    position = read_side.head()
    application = read_side.application
    if as_of is not None:
        relationship = application.relationship_as_of(customer_id, as_of)
    else:
        relationship = application.relationship(customer_id, version=version)
    if version is not None and relationship.version != version:
        raise RelationshipNotFound(f"customer {customer_id!r} has no version {version}")
    return respond(models.StateResponse(position=position, state=relationship))
