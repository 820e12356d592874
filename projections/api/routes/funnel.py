"""The ``lifecycle`` tag: the funnel of the lifecycle stages; for readers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from projections.api import models
from projections.api.dependencies import Reached, reader, respond
from projections.api.errors import error_responses
from projections.funnel import FunnelView

router = APIRouter(tags=["lifecycle"], dependencies=[reader])


@router.get(
    "/v1/funnel",
    response_model=models.FunnelResponse,
    responses=error_responses(401, 403, 409, 422),
    summary="Stage counts, transitions, conversion, days in stage, dissolution reasons",
)
def get_funnel(funnel: Annotated[FunnelView, Depends(Reached("funnel"))]) -> Response:
    figures, position = funnel.figures()
    return respond(
        models.FunnelResponse.model_validate(models.Attributes(figures, position=position or 0))
    )
