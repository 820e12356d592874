"""The ``account managers`` tag: putting an account manager in charge of a relationship
(admins: it records an event on the relationship), and a manager's book, the customers
in their charge with stage, at-risk flags and latest stage change (readers: "account
managers are aware of changes for their customers")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from fastapi.concurrency import run_in_threadpool

from projections.api import models
from projections.api.cursors import decode_cursor, encode_cursor
from projections.api.dependencies import (
    AsOf,
    Credentials,
    Cursor,
    CustomerId,
    Limit,
    Reached,
    ReadSideDep,
    admin,
    key_fingerprint,
    reader,
    respond,
    respond_json,
)
from projections.api.errors import error_responses
from projections.api.summaries import SummaryRenderer
from projections.summary import SummaryView

router = APIRouter(tags=["account managers"])

ManagerId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00]+$",
        description="the manager's id, percent-encoded as one path segment ('/' as %2F)",
    ),
]


@router.put(
    "/v1/customers/{customer_id:segment}/account-manager",
    response_model=models.AccountManagerResponse,
    responses=error_responses(401, 403, 404, 422),
    dependencies=[admin],
    summary="Put an account manager in charge of a customer's relationship, or (null) take "
    "them off",
    description="Records `AccountManagerAssigned` or `AccountManagerUnassigned` on the "
    "relationship, with the reason and, as actor, a fingerprint of the key used. A "
    "relationship with an account manager is of the type `dedicated_personal_assistance`. "
    "Putting the manager in charge again changes nothing.",
)
async def put_account_manager(
    customer_id: CustomerId,
    change: models.AccountManagerChange,
    read_side: ReadSideDep,
    credentials: Credentials,
) -> Response:
    application = read_side.application
    assignment = await run_in_threadpool(
        application.assign_account_manager,
        customer_id,
        change.manager_id,
        actor=key_fingerprint(credentials),
        reason=change.reason,
        at=datetime.now(UTC),
    )
    position = assignment.position
    if position is None:
        position = await run_in_threadpool(read_side.head)
    relationship = assignment.relationship
    return respond(
        models.AccountManagerResponse(
            position=position,
            customer_id=customer_id,
            account_manager=relationship.account_manager,
            changed=assignment.changed,
            version=relationship.version,
        )
    )


@router.get(
    "/v1/account-managers/{manager_id:segment}/customers",
    response_model=models.BookPage,
    responses=error_responses(401, 403, 409, 422),
    dependencies=[reader],
    summary="A manager's book: the customers in their charge, with stage, at-risk flags and "
    "latest stage change",
)
def get_book(
    manager_id: ManagerId,
    summaries: Annotated[SummaryView, Depends(Reached("summary"))],
    as_of: AsOf = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    after = decode_cursor(cursor, 1)
    rows, position = summaries.book_records(
        manager_id,
        after=after[0] if after else None,
        limit=limit + 1,
        columns=SummaryRenderer.BOOK_COLUMNS,
    )
    next_cursor = encode_cursor([rows[limit - 1]["customer_id"]]) if len(rows) > limit else None
    renderer = SummaryRenderer(summaries, as_of or datetime.now(UTC))
    body = renderer.book(rows[:limit], manager_id, position or 0, next_cursor)
    return respond_json(body, position or 0)
