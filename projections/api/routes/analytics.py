"""The ``analytics`` tag: a customer's predictions from the latest fit of the
customer-base models (Contract 8), for readers.

Predictions are kept per fit (``projections.predictions``): at the default horizon and
discount an answer is one row read; another horizon is computed from the row with numpy
and scipy, which this module loads with the app rather than at the first such request
(a second or more, during which requests would queue).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

import lifecycle.analytics.service  # noqa: F401  (numpy and scipy, loaded with the app)
from lifecycle.analytics import DEFAULT_HORIZON_DAYS, DEFAULT_MONTHLY_DISCOUNT
from lifecycle.domain.analytics import NoModelFitted
from lifecycle.domain.errors import RelationshipNotFound
from projections.api import models
from projections.api.dependencies import CustomerId, Reached, ReadSideDep, reader, respond
from projections.api.errors import error_responses
from projections.predictions import predictions_of
from projections.summary import SummaryView

router = APIRouter(tags=["analytics"], dependencies=[reader])

Summaries = Annotated[SummaryView, Depends(Reached("summary"))]
MAX_HORIZON_DAYS = 3_660


@router.get(
    "/v1/customers/{customer_id:segment}/predictions",
    response_model=models.PredictionsResponse,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="A customer's predictions from the latest fit: p_alive, expected purchases, "
    "expected average value and CLV over a horizon",
    description="409 `no_model_fitted` before any `lifecycle analytics fit`; null "
    "predictions for a customer without a purchase by the fit's observation end.",
)
def get_predictions(
    customer_id: CustomerId,
    read_side: ReadSideDep,
    summaries: Summaries,
    horizon_days: Annotated[
        int, Query(ge=1, le=MAX_HORIZON_DAYS, description="days after the observation end")
    ] = DEFAULT_HORIZON_DAYS,
    monthly_discount: Annotated[
        float, Query(ge=0, lt=1, description="discount rate per 30-day month of the clv")
    ] = DEFAULT_MONTHLY_DISCOUNT,
) -> Response:
    fit, figures = read_side.predictions.customer(customer_id)
    if fit is None:
        raise NoModelFitted("no model fitted yet: run `lifecycle analytics fit`")
    if figures is None and summaries.record(customer_id, ("customer_id",))[0] is None:
        raise RelationshipNotFound(f"no relationship for customer {customer_id!r}")
    return respond(
        models.PredictionsResponse(
            **predictions_of(
                fit,
                customer_id,
                figures,
                horizon_days=horizon_days,
                monthly_discount=monthly_discount,
            )
        )
    )
