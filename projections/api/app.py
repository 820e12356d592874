"""The read API (Contract 4): FastAPI over the read models' views, for downstream
services, plus the event history and point-in-time state for auditors.

Every answer names the projection position it reflects (``position`` in the body and
the ``X-Projection-Position`` header); a request may ask for ``min_position``, waited
for briefly, else 409 (read-your-writes). Errors have one shape (``Error``) and are
mapped here, in one place: 401 no valid key, 403 wrong role, 404 unknown customer, 409
position not reached, 422 bad parameter (never a 500 for bad input). ``/healthz``,
``/readyz`` and ``/metrics`` answer without a key, for probes and scrapers.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import AfterValidator, AwareDatetime
from starlette.exceptions import HTTPException as StarletteHTTPException

from lifecycle.audit.history import audited_history
from lifecycle.domain.errors import RelationshipNotFound
from lifecycle.domain.vocabulary import Stage
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections import metrics
from projections.api import models
from projections.api.paths import KeepEncodedSlashes, register_segment_convertor
from projections.api.summaries import SummaryRenderer
from projections.at_risk import FLAGS
from projections.follow_ups import KINDS, MAX_ANNIVERSARY_WINDOW, FollowUpsView
from projections.funnel import FunnelView
from projections.pairs import CLOSED, OPEN, Case, CaseStats, CaseView
from projections.purchases import PurchasesView, purchase_pattern
from projections.summary import SummaryView
from projections.views import SqlView

POSITION_HEADER = "X-Projection-Position"
READERS = frozenset({"reader", "auditor", "admin"})
AUDITORS = frozenset({"auditor", "admin"})
ADMINS = frozenset({"admin"})

_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _bounded_time(value: datetime) -> datetime:
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError("must be between 1900-01-01 and 9000-01-01")
    return value.astimezone(UTC)


def _bounded_date(value: date) -> date:
    if not _EARLIEST.date() <= value <= _LATEST.date():
        raise ValueError("must be between 1900-01-01 and 9000-01-01")
    return value


Time = Annotated[AwareDatetime, AfterValidator(_bounded_time)]
Day = Annotated[date, AfterValidator(_bounded_date)]
CustomerId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00]+$",
        description="the customer's id upstream, percent-encoded as one path segment ('/' as %2F)",
    ),
]
MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**62,
        description="wait (briefly) until the answer reflects at least this position; "
        "409 if it does not in time",
    ),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=1024, description="next_cursor of a page")]
bearer = HTTPBearer(auto_error=False, description="an API key from LIFECYCLE_API_KEYS")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
AsOf = Annotated[Time | None, Query(description="judge time-dependent figures at (default now)")]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": models.Error} for status in statuses}


@dataclass
class ReadSide:
    """What the API reads: the views of the read models and, for auditors, the
    application itself."""

    settings: Settings
    views: dict[str, SqlView]
    application: LifecycleApplication
    close: Callable[[], None] = field(default=lambda: None)
    metrics_registries: Sequence[CollectorRegistry] = ()
    """Registries of other parts of this process (the Kafka edge's) that /metrics
    serves beside the read side's."""

    def head(self) -> int:
        head = self.application.recorder.max_notification_id() or 0
        metrics.EVENT_LOG_HEAD.set(head)
        return head

    def statuses(self) -> tuple[int, list[models.ProjectionStatus]]:
        head = self.head()
        statuses = []
        for name, view in self.views.items():
            position = view.position() or 0
            lag = max(head - position, 0)
            metrics.PROJECTION_POSITION.labels(name).set(position)
            metrics.PROJECTION_LAG.labels(name).set(lag)
            statuses.append(models.ProjectionStatus(name=name, position=position, lag=lag))
        return head, statuses


def create_app(read_side: ReadSide) -> FastAPI:
    """The API over ``read_side`` (closed when the app shuts down)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            read_side.close()

    app = FastAPI(
        title="Relationship lifecycle read API",
        version="1.0.0",
        description="Read models of the relationship-lifecycle engine (Contract 4). "
        "Authenticate with `Authorization: Bearer <key>`; roles reader, auditor, admin.",
        lifespan=lifespan,
    )
    register_segment_convertor()
    app.add_middleware(KeepEncodedSlashes)
    app.add_middleware(_LatencyMiddleware)
    _add_error_handlers(app)
    keys = dict(read_side.settings.api_keys)
    settings = read_side.settings

    def role_of(credentials: HTTPAuthorizationCredentials | None) -> str | None:
        if credentials is None:
            return None
        presented = credentials.credentials.encode()
        found = None
        for key, role in keys.items():
            if hmac.compare_digest(key.encode(), presented):
                found = role
        return found

    def authorize(allowed: frozenset[str]) -> Any:
        # async: it does no I/O, and a sync dependency would cost a hop to the thread pool
        async def dependency(credentials: Credentials) -> str:
            role = role_of(credentials)
            if role is None:
                raise ApiError(401, "unauthorized", "a valid API key is required (Bearer)")
            if role not in allowed:
                raise ApiError(403, "forbidden", f"the {role} role may not use this route")
            return role

        return Depends(dependency)

    reader, auditor, admin = authorize(READERS), authorize(AUDITORS), authorize(ADMINS)
    scrape = _metrics_scraper(read_side.metrics_registries)

    def at_least(view: SqlView, min_position: int | None) -> None:
        if min_position is None:
            return
        try:
            view.wait(view.tracking_name, min_position, timeout=settings.api_wait_seconds)
        except TimeoutError:
            raise ApiError(
                409,
                "position_not_reached",
                f"{view.projection_name} has not reached position {min_position} yet",
            ) from None

    def positioned(response: Response, position: int | None) -> int:
        response.headers[POSITION_HEADER] = str(position or 0)
        return position or 0

    def view(name: str) -> Any:
        return read_side.views[name]

    # Customers --------------------------------------------------------------------------

    @app.get(
        "/v1/customers",
        response_model=models.SummaryPage,
        responses=_errors(401, 403, 409, 422),
        dependencies=[reader],
        tags=["customers"],
        summary="List relationship summaries, filtered, with cursor pagination",
    )
    def list_customers(
        stage: Annotated[list[Stage] | None, Query()] = None,
        at_risk: Annotated[bool | None, Query(description="any at-risk flag raised")] = None,
        flag: Annotated[list[Literal[FLAGS]] | None, Query()] = None,  # type: ignore[valid-type]
        as_of: AsOf = None,
        limit: Limit = 50,
        cursor: Cursor = None,
        min_position: MinPosition = None,
    ) -> Response:
        summaries: SummaryView = view("summary")
        at_least(summaries, min_position)
        when = as_of or datetime.now(UTC)
        after = _decode_cursor(cursor, 1)
        rows, position = summaries.page_records(
            as_of=when,
            stages=[s.value for s in stage or ()],
            flags=list(flag or ()),
            at_risk=at_risk,
            after=after[0] if after else None,
            limit=limit + 1,
            columns=SummaryRenderer.COLUMNS,
        )
        next_cursor = (
            _encode_cursor([rows[limit - 1]["customer_id"]]) if len(rows) > limit else None
        )
        body = SummaryRenderer(summaries, when).page(rows[:limit], position or 0, next_cursor)
        return _respond_json(body, position or 0)

    @app.get(
        "/v1/customers/{customer_id:segment}",
        response_model=models.SummaryResponse,
        responses=_errors(401, 403, 404, 409, 422),
        dependencies=[reader],
        tags=["customers"],
        summary="The relationship summary (customer 360) of one customer",
    )
    def get_customer(
        customer_id: CustomerId,
        as_of: AsOf = None,
        min_position: MinPosition = None,
    ) -> Response:
        summaries: SummaryView = view("summary")
        at_least(summaries, min_position)
        row, position = summaries.record(customer_id, SummaryRenderer.COLUMNS)
        if row is None:
            raise ApiError(404, "not_found", f"no relationship for customer {customer_id!r}")
        body = SummaryRenderer(summaries, as_of or datetime.now(UTC)).one(row, position or 0)
        return _respond_json(body, position or 0)

    @app.get(
        "/v1/customers/{customer_id:segment}/purchase-pattern",
        response_model=models.PurchasePatternResponse,
        responses=_errors(401, 403, 404, 409, 422),
        dependencies=[reader],
        tags=["customers"],
        summary="BTYD purchase pattern and category affinity of one customer",
    )
    def get_purchase_pattern(
        customer_id: CustomerId,
        response: Response,
        observation_end: Annotated[
            Day | None, Query(description="last day observed (default today, UTC)")
        ] = None,
        affinity_limit: Annotated[int, Query(ge=0, le=50)] = 3,
        min_position: MinPosition = None,
    ) -> Response:
        purchases: PurchasesView = view("purchases")
        at_least(purchases, min_position)
        row, position = purchases.customer(customer_id)
        if row is None:
            raise ApiError(404, "not_found", f"no relationship for customer {customer_id!r}")
        end = observation_end or datetime.now(UTC).date()
        pattern = purchase_pattern(row.days, end)
        return _respond(
            models.PurchasePatternResponse(
                position=positioned(response, position),
                customer_id=customer_id,
                observation_end=end,
                purchase_days=pattern.purchase_days,
                first_purchase_on=pattern.first_purchase_on,
                last_purchase_on=pattern.last_purchase_on,
                frequency=pattern.frequency,
                recency=pattern.recency,
                T=pattern.T,
                currency=pattern.currency,
                monetary_value=pattern.monetary_value,
                monetary_value_by_currency=pattern.monetary_value_by_currency,
                mean_interpurchase_days=pattern.mean_interpurchase_days,
                expected_next_purchase_on=pattern.expected_next_purchase_on,
                categories=row.categories,
                category_affinity=[
                    models.CategoryAffinity(
                        category=a.category, score=a.score, customers=a.customers
                    )
                    for a in purchases.affinity(sorted(row.categories), affinity_limit)
                ],
            )
        )

    @app.get(
        "/v1/customers/{customer_id:segment}/history",
        response_model=models.HistoryResponse,
        responses=_errors(401, 403, 404, 422),
        dependencies=[auditor],
        tags=["audit"],
        summary="Every recorded event of a customer's relationship (Contract 3), each with "
        "its business time, recorded time, version, log position and hash",
        description="Personal data is never revealed here: each event's `personal` says "
        "`encrypted` or `erased`. Verify the hashes offline with `lifecycle audit verify`.",
    )
    def get_history(customer_id: CustomerId, response: Response) -> Response:
        position = read_side.head()
        try:
            events = audited_history(read_side.application, customer_id, reveal=False)
        except RelationshipNotFound as missing:
            raise ApiError(404, "not_found", str(missing)) from None
        return _respond(
            models.HistoryResponse(
                position=positioned(response, position), customer_id=customer_id, events=events
            )
        )

    @app.get(
        "/v1/customers/{customer_id:segment}/state",
        response_model=models.StateResponse,
        responses=_errors(401, 403, 404, 422),
        dependencies=[auditor],
        tags=["audit"],
        summary="A relationship as recorded now, at a version, or as known at a time",
    )
    def get_state(
        customer_id: CustomerId,
        response: Response,
        version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
        as_of: Annotated[Time | None, Query(description="recorded time")] = None,
    ) -> Response:
        if version is not None and as_of is not None:
            raise ApiError(422, "invalid_parameter", "give version or as_of, not both")
        position = read_side.head()
        application = read_side.application
        try:
            if as_of is not None:
                relationship = application.relationship_as_of(customer_id, as_of)
            else:
                relationship = application.relationship(customer_id, version=version)
        except RelationshipNotFound as missing:
            raise ApiError(404, "not_found", str(missing)) from None
        if version is not None and relationship.version != version:
            raise ApiError(404, "not_found", f"customer {customer_id!r} has no version {version}")
        return _respond(
            models.StateResponse(
                position=positioned(response, position),
                state=models.RelationshipState(
                    customer_id=relationship.customer_id,
                    relationship_id=str(relationship.id),
                    version=relationship.version,
                    recorded_at=relationship.modified_on,
                    stage=relationship.stage.value,
                    stage_since=relationship.stage_since,
                    cycle=relationship.cycle,
                    started_at=relationship.started_at,
                    touchpoints=relationship.touchpoint_count,
                    first_touchpoint_at=relationship.first_touchpoint_at,
                    last_touchpoint_at=relationship.last_touchpoint_at,
                    open_complaints=dict(relationship.open_complaints),
                    personal_data_erased=relationship.personal_data_erased,
                ),
            )
        )

    # Funnel, complaints, inquiries, follow-ups --------------------------------------------

    @app.get(
        "/v1/funnel",
        response_model=models.FunnelResponse,
        responses=_errors(401, 403, 409, 422),
        dependencies=[reader],
        tags=["lifecycle"],
        summary="Stage counts, transitions, conversion, days in stage, dissolution reasons",
    )
    def get_funnel(response: Response, min_position: MinPosition = None) -> Response:
        funnel: FunnelView = view("funnel")
        at_least(funnel, min_position)
        figures, position = funnel.figures()
        return _respond(
            models.FunnelResponse(
                position=positioned(response, position),
                relationships=figures.relationships,
                stages=[
                    models.StageFigures(
                        stage=s.stage,
                        current=s.current,
                        entered=s.entered,
                        median_days_in_stage=s.median_days,
                        completed_stays=s.completed_stays,
                    )
                    for s in figures.stages
                ],
                conversions=[
                    models.Conversion(
                        from_stage=c.from_stage,
                        to_stage=c.to_stage,
                        entered=c.entered,
                        converted=c.converted,
                        rate=c.rate,
                    )
                    for c in figures.conversions
                ],
                transitions=[
                    models.Transition(
                        from_stage=t.from_stage, to_stage=t.to_stage, rule=t.rule, count=t.count
                    )
                    for t in figures.transitions
                ],
                dissolutions=[
                    models.Dissolution(rule=d.rule, reason=d.reason, count=d.count)
                    for d in figures.dissolutions
                ],
            )
        )

    @app.get(
        "/v1/complaints",
        response_model=models.ComplaintsResponse,
        responses=_errors(401, 403, 409, 422),
        dependencies=[reader],
        tags=["service"],
        summary="Complaints, open or resolved, with age and resolution-time figures",
    )
    def list_complaints(
        response: Response,
        status: Literal["open", "resolved", "all"] = "all",
        customer_id: Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00]+$")] = None,
        as_of: AsOf = None,
        limit: Limit = 50,
        cursor: Cursor = None,
        min_position: MinPosition = None,
    ) -> Response:
        complaints: CaseView = view("complaints")
        at_least(complaints, min_position)
        when = as_of or datetime.now(UTC)
        cases, position, next_cursor, stats = _case_page(
            complaints,
            {"open": OPEN, "resolved": CLOSED}.get(status),
            customer_id,
            when,
            cursor,
            limit,
        )
        return _respond(
            models.ComplaintsResponse(
                position=positioned(response, position),
                as_of=when,
                stats=_stats(stats),
                items=[
                    models.Complaint(
                        customer_id=c.customer_id,
                        complaint_id=c.ref,
                        status="open" if c.is_open else "resolved",
                        raised_at=c.opened_at or when,
                        channel=c.opened_channel,
                        reason=c.note,
                        resolved_at=c.closed_at,
                        age_days=_days_between(c.opened_at, when) if c.is_open else None,
                        resolution_hours=_hours(c),
                    )
                    for c in cases
                ],
                next_cursor=next_cursor,
            )
        )

    @app.get(
        "/v1/inquiries",
        response_model=models.InquiriesResponse,
        responses=_errors(401, 403, 409, 422),
        dependencies=[reader],
        tags=["service"],
        summary="Inquiries and the time to their first response",
    )
    def list_inquiries(
        response: Response,
        status: Literal["answered", "unanswered", "all"] = "all",
        customer_id: Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00]+$")] = None,
        as_of: AsOf = None,
        limit: Limit = 50,
        cursor: Cursor = None,
        min_position: MinPosition = None,
    ) -> Response:
        inquiries: CaseView = view("inquiries")
        at_least(inquiries, min_position)
        when = as_of or datetime.now(UTC)
        cases, position, next_cursor, stats = _case_page(
            inquiries,
            {"unanswered": OPEN, "answered": CLOSED}.get(status),
            customer_id,
            when,
            cursor,
            limit,
        )
        return _respond(
            models.InquiriesResponse(
                position=positioned(response, position),
                as_of=when,
                stats=_stats(stats),
                items=[
                    models.Inquiry(
                        customer_id=c.customer_id,
                        inquiry_id=c.ref,
                        status="unanswered" if c.is_open else "answered",
                        asked_at=c.opened_at or when,
                        channel=c.opened_channel,
                        answered_at=c.closed_at,
                        response_hours=_hours(c),
                    )
                    for c in cases
                ],
                next_cursor=next_cursor,
            )
        )

    @app.get(
        "/v1/follow-ups",
        response_model=models.FollowUpsResponse,
        responses=_errors(401, 403, 409, 422),
        dependencies=[reader],
        tags=["service"],
        summary="Follow-ups due before a date: thank-you calls, satisfaction checks "
        "(overdue ones included) and anniversaries in [since, before)",
    )
    def list_follow_ups(
        response: Response,
        before: Annotated[Day, Query(description="due before this day (UTC)")],
        since: Annotated[
            Day | None, Query(description="anniversaries from this day (default today)")
        ] = None,
        kind: Annotated[list[Literal[KINDS]] | None, Query()] = None,  # type: ignore[valid-type]
        limit: Limit = 50,
        cursor: Cursor = None,
        min_position: MinPosition = None,
    ) -> Response:
        follow_ups: FollowUpsView = view("follow_ups")
        at_least(follow_ups, min_position)
        start = since or datetime.now(UTC).date()
        if start > before:
            raise ApiError(422, "invalid_parameter", "since must not be after before")
        if before - start > MAX_ANNIVERSARY_WINDOW:
            raise ApiError(422, "invalid_parameter", "before may be at most 366 days after since")
        after = _decode_cursor(cursor, 4)
        after_key = None
        if after is not None:
            try:
                after_key = (_bounded_time(datetime.fromisoformat(after[0])), *after[1:])
            except (ValueError, TypeError):
                raise ApiError(
                    422, "invalid_parameter", "cursor: not a cursor of this list"
                ) from None
        due, position = follow_ups.due(
            before=before,
            since=start,
            kinds=list(kind or KINDS),
            after=after_key,  # type: ignore[arg-type]
            limit=limit + 1,
        )
        last = due[limit - 1] if len(due) > limit else None
        return _respond(
            models.FollowUpsResponse(
                position=positioned(response, position),
                before=before,
                since=start,
                items=[
                    models.FollowUp(
                        customer_id=d.customer_id,
                        kind=d.kind,
                        ref=d.ref,
                        due_at=d.due_at,
                        basis_at=d.basis_at,
                    )
                    for d in due[:limit]
                ],
                next_cursor=(
                    _encode_cursor([last.due_at.isoformat(), last.customer_id, last.kind, last.ref])
                    if last
                    else None
                ),
            )
        )

    # Operations ---------------------------------------------------------------------------

    @app.get(
        "/v1/projections",
        response_model=models.ProjectionsResponse,
        responses=_errors(401, 403),
        dependencies=[admin],
        tags=["operations"],
        summary="Each read model's position and lag behind the event log",
    )
    def get_projections(response: Response) -> Response:
        head, statuses = read_side.statuses()
        positioned(response, head)
        return _respond(
            models.ProjectionsResponse(
                position=head,
                max_lag=settings.api_ready_max_lag,
                ready=all(s.lag <= settings.api_ready_max_lag for s in statuses),
                projections=statuses,
            )
        )

    @app.get("/healthz", response_model=models.Health, tags=["operations"])
    def healthz() -> models.Health:
        """The process answers."""
        return models.Health(status="ok")

    @app.get(
        "/readyz",
        response_model=models.ProjectionsResponse,
        responses={503: {"model": models.ProjectionsResponse}},
        tags=["operations"],
    )
    def readyz(response: Response) -> Response:
        """Ready when every read model lags the event log by at most the configured lag."""
        head, statuses = read_side.statuses()
        ready = all(s.lag <= settings.api_ready_max_lag for s in statuses)
        return _respond(
            models.ProjectionsResponse(
                position=head, max_lag=settings.api_ready_max_lag, ready=ready, projections=statuses
            ),
            200 if ready else 503,
        )

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
        tags=["operations"],
    )
    def get_metrics() -> Response:
        """Prometheus metrics: ingest and dead letters (when in this process), event log
        head, projection positions and lag, request latency (of every worker process
        when several serve)."""
        read_side.statuses()
        return Response(scrape(), media_type=CONTENT_TYPE_LATEST)

    return app


# Rendering ----------------------------------------------------------------------------------


def _respond_json(body: bytes, position: int) -> Response:
    """An answer already serialized (see ``projections.api.summaries``)."""
    return Response(body, media_type="application/json", headers={POSITION_HEADER: str(position)})


def _respond(body: Any, status: int = 200) -> Response:
    """The answer, serialized once (FastAPI would validate a returned model again), with
    the position it reflects in a header too."""
    return Response(
        body.model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers={POSITION_HEADER: str(body.position)},
    )


def _case_page(
    cases_view: CaseView,
    status: str | None,
    customer_id: str | None,
    as_of: datetime,
    cursor: str | None,
    limit: int,
) -> tuple[list[Case], int | None, str | None, CaseStats]:
    after = _decode_cursor(cursor, 2)
    cases, position = cases_view.cases(
        status=status,
        customer_id=customer_id,
        after=(after[0], after[1]) if after else None,
        limit=limit + 1,
    )
    stats = cases_view.stats(as_of=as_of, customer_id=customer_id)
    next_cursor = (
        _encode_cursor([cases[limit - 1].customer_id, cases[limit - 1].ref])
        if len(cases) > limit
        else None
    )
    return cases[:limit], position, next_cursor, stats


def _stats(stats: CaseStats) -> models.CaseStats:
    return models.CaseStats(
        total=stats.total,
        open=stats.open,
        closed=stats.closed,
        median_hours=stats.median_hours,
        mean_hours=stats.mean_hours,
        p90_hours=stats.p90_hours,
        oldest_open_days=stats.oldest_open_days,
    )


def _hours(case: Case) -> float | None:
    duration = case.duration
    return None if duration is None else duration.total_seconds() / 3600


def _days_between(start: datetime | None, end: datetime) -> float | None:
    if start is None:
        return None
    return max((end - start).total_seconds(), 0.0) / 86400


def _encode_cursor(values: list[str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def _decode_cursor(cursor: str | None, size: int) -> list[str] | None:
    if cursor is None:
        return None
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != size
        or not all(isinstance(v, str) and "\x00" not in v for v in values)
    ):
        raise ApiError(422, "invalid_parameter", "cursor: not a cursor of this list")
    return values


def _metrics_scraper(others: Sequence[CollectorRegistry]) -> Callable[[], bytes]:
    """What /metrics serves: this process's registries, or, in prometheus_client's
    multiprocess mode (several workers, see ``lifecycle.entrypoints.serve``), the values
    every process of the server wrote to the shared directory, whichever registry they
    belong to (so the other registries are not added again)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return lambda: b"".join(generate_latest(r) for r in (REGISTRY, *others))
    shared = CollectorRegistry()
    MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
    return lambda: generate_latest(shared)


# Errors and latency -------------------------------------------------------------------------

_STATUS_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "not_allowed"}


def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        body = models.Error(error=error.error, message=error.message)
        return JSONResponse(body.model_dump(exclude_none=True), error.status, headers=headers)

    async def invalid(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        detail = [
            {"loc": [str(part) for part in e["loc"]], "msg": str(e["msg"]), "type": str(e["type"])}
            for e in error.errors()
        ]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"][1:] or first["loc"])
        body = models.Error(
            error="invalid_parameter", message=f"{where}: {first['msg']}", detail=detail
        )
        return JSONResponse(body.model_dump(exclude_none=True), 422)

    async def http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        body = models.Error(
            error=_STATUS_CODES.get(error.status_code, "http_error"), message=str(error.detail)
        )
        return JSONResponse(
            body.model_dump(exclude_none=True), error.status_code, headers=error.headers
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _LatencyMiddleware:
    """Times every HTTP request into ``lifecycle_api_request_seconds`` (pure ASGI: no
    per-request task, unlike ``BaseHTTPMiddleware``)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            route = scope.get("route")
            path = getattr(route, "path_format", "unmatched")
            metrics.REQUEST_SECONDS.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - started
            )
