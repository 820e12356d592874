"""The ``customers`` tag: relationship summaries (customer 360), listed or one, a
customer's purchase pattern, and their stage history with the stage in force at a
business time; for readers, and for publishers reading their own writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from lifecycle.domain.analytics import NoModelFitted
from lifecycle.domain.errors import RelationshipNotFound
from lifecycle.domain.relationship import Relationship, stage_in_force
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
    ReadSideDep,
    Time,
    respond,
    respond_json,
    summary_reader,
)
from projections.api.errors import error_responses
from projections.api.summaries import SummaryRenderer
from projections.at_risk import FLAGS, limits_of
from projections.purchases import PurchasesView, purchase_pattern
from projections.summary import RELATIONSHIP_TYPES, SummaryView

router = APIRouter(tags=["customers"], dependencies=[summary_reader])

Summaries = Annotated[SummaryView, Depends(Reached("summary"))]
Purchases = Annotated[PurchasesView, Depends(Reached("purchases"))]


@router.get(
    "/v1/customers",
    response_model=models.SummaryPage,
    responses=error_responses(401, 403, 409, 422),
    summary="List relationship summaries, filtered, with cursor pagination",
)
def list_customers(
    read_side: ReadSideDep,
    summaries: Summaries,
    stage: Annotated[list[Stage] | None, Query()] = None,
    at_risk: Annotated[bool | None, Query(description="any at-risk flag raised")] = None,
    flag: Annotated[list[Literal[FLAGS]] | None, Query()] = None,  # type: ignore[valid-type]
    relationship_type: Annotated[
        list[Literal[RELATIONSHIP_TYPES]] | None,  # type: ignore[valid-type]
        Query(description="any of these relationship types"),
    ] = None,
    p_alive_below: Annotated[
        float | None,
        Query(
            gt=0,
            le=1,
            description="customers whose p_alive in the latest fit of the analytics models "
            "is below this (409 no_model_fitted before any fit)",
        ),
    ] = None,
    as_of: AsOf = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    if p_alive_below is not None and read_side.predictions.fit_in_force() is None:
        raise NoModelFitted("no model fitted yet: p_alive_below needs `lifecycle analytics fit`")
    when = as_of or datetime.now(UTC)
    after = decode_cursor(cursor, 1)
    limits = limits_of(read_side.settings)
    rows, position = summaries.page_records(
        as_of=when,
        stages=[s.value for s in stage or ()],
        flags=list(flag or ()),
        at_risk=at_risk,
        relationship_types=list(relationship_type or ()),
        after=after[0] if after else None,
        limit=limit + 1,
        columns=SummaryRenderer.COLUMNS,
        p_alive_below=p_alive_below,
        limits=limits,
    )
    next_cursor = encode_cursor([rows[limit - 1]["customer_id"]]) if len(rows) > limit else None
    body = SummaryRenderer(summaries, when, limits).page(rows[:limit], position or 0, next_cursor)
    return respond_json(body, position or 0)


@router.get(
    "/v1/customers/{customer_id:segment}",
    response_model=models.SummaryResponse,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="The relationship summary (customer 360) of one customer",
)
def get_customer(
    customer_id: CustomerId, read_side: ReadSideDep, summaries: Summaries, as_of: AsOf = None
) -> Response:
    row, position = summaries.record(customer_id, SummaryRenderer.COLUMNS)
    if row is None:
        raise _no_relationship(customer_id)
    when = as_of or datetime.now(UTC)
    body = SummaryRenderer(summaries, when, limits_of(read_side.settings)).one(row, position or 0)
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


@router.get(
    "/v1/customers/{customer_id:segment}/stages",
    response_model=models.StagesResponse,
    responses=error_responses(401, 403, 404, 422),
    summary="Every stage change of a customer's relationship, with its effective (business) "
    "and recorded times; with `at`, the stage in force at that business time",
    description="`at` is business time: the stage of the latest change effective at or before "
    "it (ties: the later in the log), whenever it was recorded. `as_of` on the other routes is "
    "recorded time (what the engine knew then). Read from the event log itself.",
)
def get_stages(
    customer_id: CustomerId,
    read_side: ReadSideDep,
    at: Annotated[Time | None, Query(description="business time")] = None,
) -> Response:
    position = read_side.head()
    events = read_side.application.stage_history(customer_id)
    return respond(
        models.StagesResponse(
            customer_id=customer_id,
            position=position,
            stages=[
                models.StageChange.model_validate(e)
                for e in events
                if isinstance(e, Relationship.StageChanged)
            ],
            at=None if at is None else models.StageAt.model_validate(stage_in_force(events, at)),
        )
    )


def _no_relationship(customer_id: str) -> RelationshipNotFound:
    return RelationshipNotFound(f"no relationship for customer {customer_id!r}")
