"""The ``customers`` tag: relationship summaries (customer 360), listed or one, and a
customer's purchase pattern; for readers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from lifecycle.domain.errors import RelationshipNotFound
from lifecycle.domain.vocabulary import Stage
from projections.api import models
from projections.api.cursors import decode_cursor, encode_cursor
from projections.api.dependencies import (
    AsOf,
    Cursor,
    CustomerId,
    Day,
    Limit,
    Reached,
    reader,
    respond,
    respond_json,
)
from projections.api.errors import error_responses
from projections.api.summaries import SummaryRenderer
from projections.at_risk import FLAGS
from projections.purchases import PurchasesView, purchase_pattern
from projections.summary import SummaryView

router = APIRouter(tags=["customers"], dependencies=[reader])

Summaries = Annotated[SummaryView, Depends(Reached("summary"))]
Purchases = Annotated[PurchasesView, Depends(Reached("purchases"))]


@router.get(
    "/v1/customers",
    response_model=models.SummaryPage,
    responses=error_responses(401, 403, 409, 422),
    summary="List relationship summaries, filtered, with cursor pagination",
)
def list_customers(
    summaries: Summaries,
    stage: Annotated[list[Stage] | None, Query()] = None,
    at_risk: Annotated[bool | None, Query(description="any at-risk flag raised")] = None,
    flag: Annotated[list[Literal[FLAGS]] | None, Query()] = None,  # type: ignore[valid-type]
    as_of: AsOf = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    when = as_of or datetime.now(UTC)
    after = decode_cursor(cursor, 1)
    rows, position = summaries.page_records(
        as_of=when,
        stages=[s.value for s in stage or ()],
        flags=list(flag or ()),
        at_risk=at_risk,
        after=after[0] if after else None,
        limit=limit + 1,
        columns=SummaryRenderer.COLUMNS,
    )
    next_cursor = encode_cursor([rows[limit - 1]["customer_id"]]) if len(rows) > limit else None
    body = SummaryRenderer(summaries, when).page(rows[:limit], position or 0, next_cursor)
    return respond_json(body, position or 0)


@router.get(
    "/v1/customers/{customer_id:segment}",
    response_model=models.SummaryResponse,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="The relationship summary (customer 360) of one customer",
)
def get_customer(customer_id: CustomerId, summaries: Summaries, as_of: AsOf = None) -> Response:
    row, position = summaries.record(customer_id, SummaryRenderer.COLUMNS)
    if row is None:
        raise _no_relationship(customer_id)
    body = SummaryRenderer(summaries, as_of or datetime.now(UTC)).one(row, position or 0)
    return respond_json(body, position or 0)


@router.get(
    "/v1/customers/{customer_id:segment}/purchase-pattern",
    response_model=models.PurchasePatternResponse,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="BTYD purchase pattern and category affinity of one customer",
)
def get_purchase_pattern(
    customer_id: CustomerId,
    purchases: Purchases,
    observation_end: Annotated[
        Day | None, Query(description="last day observed (default today, UTC)")
    ] = None,
    affinity_limit: Annotated[int, Query(ge=0, le=50)] = 3,
) -> Response:
    row, position = purchases.customer(customer_id)
    if row is None:
        raise _no_relationship(customer_id)
    pattern = purchase_pattern(row.days, observation_end or datetime.now(UTC).date())
    return respond(
        models.PurchasePatternResponse.model_validate(
            models.Attributes(
                pattern,
                position=position or 0,
                customer_id=customer_id,
                categories=row.categories,
                category_affinity=purchases.affinity(sorted(row.categories), affinity_limit),
            )
        )
    )


def _no_relationship(customer_id: str) -> RelationshipNotFound:
    return RelationshipNotFound(f"no relationship for customer {customer_id!r}")
