"""The ``service`` tag: complaints, inquiries and the follow-ups that purchases,
resolved complaints and anniversaries call for; for readers. A case list answers on the
event loop when the figures of every case are kept at the view's position, and in the
thread pool when they must be read again (once per new position and process; see
``projections.api.routes``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from projections.api import models
from projections.api.cursors import decode_cursor, encode_cursor, not_a_cursor
from projections.api.dependencies import (
    Answer,
    Answering,
    AsOf,
    Cursor,
    Day,
    Limit,
    Reached,
    bounded_time,
    reader,
)
from projections.api.errors import ApiError, error_responses
from projections.follow_ups import KINDS, MAX_ANNIVERSARY_WINDOW, FollowUpsView
from projections.pairs import CLOSED, OPEN, Case, CaseStats, CaseView

router = APIRouter(tags=["service"], dependencies=[reader])

OfCustomer = Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00]+$")]


@dataclass(frozen=True)
class _CasePageQuery:
    """What a case list (complaints, inquiries) asks for beside the status: the cases of
    one customer or all, their figures judged at ``as_of`` (default now), a page of
    ``limit`` after ``cursor``."""

    customer_id: str | None
    as_of: datetime | None
    limit: int
    cursor: str | None

    async def answer(
        self,
        cases_view: CaseView,
        status: str | None,
        answer: Answer,
        item: Callable[[Case, datetime], models.Complaint | models.Inquiry],
        response_model: type[models.ComplaintsResponse | models.InquiriesResponse],
    ) -> Response:
        """The page of the cases of ``status`` (None: all) from ``cases_view``, each case
        rendered by ``item``."""
        when = self.as_of or datetime.now(UTC)
        answer.unless_unchanged(cases_view.position, when)
        # On the event loop when the page is bounded (the figures are kept), else in the
        # thread pool, so that reading every case does not stall the worker's other
        # requests. (Should the view move between the two, the loop computes: rare, once.)
        if cases_view.figures_kept(self.customer_id):
            page = self._read(cases_view, status, when)
        else:
            page = await run_in_threadpool(self._read, cases_view, status, when)
        items = [item(case, page.as_of) for case in page.cases]
        body = response_model.model_validate(models.Attributes(page, items=items))
        return answer.model(body, when)

    def _read(self, cases_view: CaseView, status: str | None, when: datetime) -> _CasePage:
        after = decode_cursor(self.cursor, 2)
        cases, position = cases_view.cases(
            status=status,
            customer_id=self.customer_id,
            after=(after[0], after[1]) if after else None,
            limit=self.limit + 1,
        )
        stats = cases_view.stats(as_of=when, customer_id=self.customer_id, position=position)
        next_cursor = (
            encode_cursor([cases[self.limit - 1].customer_id, cases[self.limit - 1].ref])
            if len(cases) > self.limit
            else None
        )
        return _CasePage(cases[: self.limit], position or 0, when, stats, next_cursor)


async def _case_page_query(
    customer_id: OfCustomer = None,
    as_of: AsOf = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> _CasePageQuery:
    """The query parameters the case lists share. Declared first among a route's
    dependencies, so that the OpenAPI document lists them right after the route's own."""
    return _CasePageQuery(customer_id, as_of, limit, cursor)


CasePage = Annotated[_CasePageQuery, Depends(_case_page_query)]


@router.get(
    "/v1/complaints",
    response_model=models.ComplaintsResponse,
    responses=error_responses(401, 403, 409, 422),
    summary="Complaints, open or resolved, with age and resolution-time figures",
)
async def list_complaints(
    page: CasePage,
    complaints: Annotated[CaseView, Depends(Reached("complaints"))],
    answer: Answering,
    status: Literal["open", "resolved", "all"] = "all",
) -> Response:
    status_of_case = {"open": OPEN, "resolved": CLOSED}.get(status)
    return await page.answer(
        complaints, status_of_case, answer, _complaint, models.ComplaintsResponse
    )


@router.get(
    "/v1/inquiries",
    response_model=models.InquiriesResponse,
    responses=error_responses(401, 403, 409, 422),
    summary="Inquiries and the time to their first response",
)
async def list_inquiries(
    page: CasePage,
    inquiries: Annotated[CaseView, Depends(Reached("inquiries"))],
    answer: Answering,
    status: Literal["answered", "unanswered", "all"] = "all",
) -> Response:
    status_of_case = {"unanswered": OPEN, "answered": CLOSED}.get(status)
    return await page.answer(inquiries, status_of_case, answer, _inquiry, models.InquiriesResponse)


@router.get(
    "/v1/follow-ups",
    response_model=models.FollowUpsResponse,
    responses=error_responses(401, 403, 409, 422),
    summary="Follow-ups due before a date: thank-you calls, satisfaction checks "
    "(overdue ones included) and anniversaries in [since, before)",
)
async def list_follow_ups(
    follow_ups: Annotated[FollowUpsView, Depends(Reached("follow_ups"))],
    answer: Answering,
    before: Annotated[Day, Query(description="due before this day (UTC)")],
    since: Annotated[
        Day | None, Query(description="anniversaries from this day (default today)")
    ] = None,
    kind: Annotated[list[Literal[KINDS]] | None, Query()] = None,  # type: ignore[valid-type]
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    start = since or datetime.now(UTC).date()
    if start > before:
        raise ApiError(422, "invalid_parameter", "since must not be after before")
    if before - start > MAX_ANNIVERSARY_WINDOW:
        raise ApiError(422, "invalid_parameter", "before may be at most 366 days after since")
    after = decode_cursor(cursor, 4)
    answer.unless_unchanged(follow_ups.position, start)
    after_key = None
    if after is not None:
        try:
            after_key = (bounded_time(datetime.fromisoformat(after[0])), *after[1:])
        except (ValueError, TypeError):
            raise not_a_cursor() from None
    due, position = follow_ups.due(
        before=before,
        since=start,
        kinds=list(kind or KINDS),
        after=after_key,  # type: ignore[arg-type]
        limit=limit + 1,
    )
    last = due[limit - 1] if len(due) > limit else None
    return answer.model(
        models.FollowUpsResponse(
            position=position or 0,
            before=before,
            since=start,
            items=due[:limit],
            next_cursor=(
                encode_cursor([last.due_at.isoformat(), last.customer_id, last.kind, last.ref])
                if last
                else None
            ),
        ),
        start,
    )


@dataclass(frozen=True)
class _CasePage:
    """A page of cases, with the figures of every case the list holds."""

    cases: list[Case]
    position: int
    as_of: datetime
    stats: CaseStats
    next_cursor: str | None


def _complaint(case: Case, as_of: datetime) -> models.Complaint:
    return models.Complaint(
        customer_id=case.customer_id,
        complaint_id=case.ref,
        status="open" if case.is_open else "resolved",
        raised_at=case.opened_at or as_of,
        channel=case.opened_channel,
        reason=case.note,
        resolved_at=case.closed_at,
        age_days=_days_between(case.opened_at, as_of) if case.is_open else None,
        resolution_hours=_hours(case),
    )


def _inquiry(case: Case, as_of: datetime) -> models.Inquiry:
    return models.Inquiry(
        customer_id=case.customer_id,
        inquiry_id=case.ref,
        status="unanswered" if case.is_open else "answered",
        asked_at=case.opened_at or as_of,
        channel=case.opened_channel,
        answered_at=case.closed_at,
        response_hours=_hours(case),
    )


def _hours(case: Case) -> float | None:
    duration = case.duration
    return None if duration is None else duration.total_seconds() / 3600


def _days_between(start: datetime | None, end: datetime) -> float | None:
    if start is None:
        return None
    return max((end - start).total_seconds(), 0.0) / 86400
