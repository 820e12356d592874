"""The ``operations`` tag: the read models' positions and lag (for admins), and, without
a key, for probes and scrapers, ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import os
from collections.abc import Sequence

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from projections.api import models
from projections.api.dependencies import ReadSide, ReadSideDep, admin, respond
from projections.api.errors import error_responses

router = APIRouter(tags=["operations"])


@router.get(
    "/v1/projections",
    response_model=models.ProjectionsResponse,
    responses=error_responses(401, 403),
    dependencies=[admin],
    summary="Each read model's position and lag behind the event log",
)
def get_projections(read_side: ReadSideDep) -> Response:
    return respond(_projections(read_side))


@router.get("/healthz", response_model=models.Health)
def healthz() -> models.Health:
    """The process answers."""
    return models.Health(status="ok")


@router.get(
    "/readyz",
    response_model=models.ProjectionsResponse,
    responses={503: {"model": models.ProjectionsResponse}},
)
def readyz(read_side: ReadSideDep) -> Response:
    """Ready when every read model lags the event log by at most the configured lag."""
    body = _projections(read_side)
    return respond(body, 200 if body.ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def get_metrics(read_side: ReadSideDep) -> Response:
    """Prometheus metrics: ingest and dead letters (when in this process), event log
    head, projection positions and lag, request latency (of every worker process
    when several serve)."""
    read_side.statuses()
    return Response(_scrape(read_side.metrics_registries), media_type=CONTENT_TYPE_LATEST)


def _projections(read_side: ReadSide) -> models.ProjectionsResponse:
    head, statuses = read_side.statuses()
    max_lag = read_side.settings.api_ready_max_lag
    return models.ProjectionsResponse(
        position=head,
        max_lag=max_lag,
        ready=all(s.lag <= max_lag for s in statuses),
        projections=statuses,
    )


def _scrape(others: Sequence[CollectorRegistry]) -> bytes:
    """This process's registries, or, in prometheus_client's multiprocess mode (several
    workers, see ``lifecycle.entrypoints.serve``), the values every process of the server
    wrote to the shared directory, whichever registry they belong to (so the other
    registries are not added again)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return b"".join(generate_latest(r) for r in (REGISTRY, *others))
    shared = CollectorRegistry()
    MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
    return generate_latest(shared)
