"""The console's routes: the shell of every page, its two static files, and each page's
content as an HTML fragment for the key's role (see the package docstring)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from lifecycle.audit.history import describe_event
from lifecycle.audit.timeline import customer_timeline
from lifecycle.domain.errors import LifecycleError
from lifecycle.domain.relationship import Relationship, stage_in_force
from projections.api.dependencies import (
    ADMINS,
    AUDITORS,
    READERS,
    CustomerId,
    ReadSide,
    ReadSideDep,
    Role,
)
from projections.api.summaries import SummaryRenderer
from projections.funnel import FunnelView
from projections.report import cohort_svg, flow_svg, funnel_svg
from projections.summary import SummaryView

router = APIRouter(include_in_schema=False)

SHELL = "/console"
FRAGMENTS = "/console/fragments"
ROLE_HEADER = "X-Console-Role"
NOTHING = "\N{EN DASH}"
"""What a page shows for a value not known."""
SEARCH_LIMIT = 50
BOOK_LIMIT = 200
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}
PAGE_HEADERS = {
    # Everything the console shows comes from here; nothing is framed, nothing inline runs.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
FRAGMENT_HEADERS = {**PAGE_HEADERS, "Cache-Control": "no-store"}
"""Fragments may hold personal data: kept by no cache."""

Viewer = Annotated[str, Depends(Role(READERS))]
Auditor = Annotated[str, Depends(Role(AUDITORS))]
Admin = Annotated[str, Depends(Role(ADMINS))]


# The shell and its static files -----------------------------------------------------


@router.get(SHELL + "/static/{name}")
def static_file(name: str) -> Response:
    media_type = STATIC.get(name)
    if media_type is None:
        return Response(status_code=404)
    return Response(_static(name), media_type=media_type, headers=PAGE_HEADERS)


@functools.cache
def _static(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


# Fragments ------------------------------------------------------------------------------


@router.get(FRAGMENTS)
@router.get(FRAGMENTS + "/")
def home(role: Viewer) -> HTMLResponse:
    return _fragment("home.html", role, q="")


@router.get(FRAGMENTS + "/customers")
def search(
    role: Viewer,
    read_side: ReadSideDep,
    q: Annotated[str, Query(max_length=128, pattern=r"^[^\x00]*$")] = "",
) -> HTMLResponse:
    summaries: SummaryView = read_side.views["summary"]  # type: ignore[assignment]
    rows, position = summaries.starting_with(q, SEARCH_LIMIT + 1, columns=SummaryRenderer.COLUMNS)
    renderer = SummaryRenderer(summaries, datetime.now(UTC))
    return _fragment(
        "customers.html",
        role,
        q=q,
        found=[renderer.item(row) for row in rows[:SEARCH_LIMIT]],
        more=len(rows) > SEARCH_LIMIT,
        position=position or 0,
    )


@router.get(FRAGMENTS + "/customers/{customer_id:segment}")
async def customer(
    customer_id: CustomerId,
    role: Viewer,
    read_side: ReadSideDep,
    at: Annotated[date | None, Query(description="the stage at the end of this day (UTC)")] = None,
) -> HTMLResponse:
    page = await run_in_threadpool(_customer_page, read_side, customer_id, role, at)
    return _fragment("customer.html", role, **page)


def _customer_page(
    read_side: ReadSide, customer_id: str, role: str, at: date | None
) -> dict[str, Any]:
    application = read_side.application
    stage_history = application.stage_history(customer_id)  # RelationshipNotFound: 404
    summaries: SummaryView = read_side.views["summary"]  # type: ignore[assignment]
    row, position = summaries.record(customer_id, SummaryRenderer.COLUMNS)
    in_force = None
    if at is not None:
        in_force = stage_in_force(stage_history, datetime.combine(at, time.max, tzinfo=UTC))
    timeline = None
    if role in AUDITORS and read_side.ledger is not None:
        timeline = customer_timeline(
            application, read_side.ledger, read_side.audit_key, customer_id, reveal=True
        )
    return {
        "customer_id": customer_id,
        "summary": SummaryRenderer(summaries, datetime.now(UTC)).item(row) if row else None,
        "position": position or 0,
        "changes": [e for e in stage_history if isinstance(e, Relationship.StageChanged)],
        "at": at,
        "in_force": in_force,
        "timeline": timeline,
    }


@router.get(FRAGMENTS + "/managers")
def book(
    role: Viewer,
    read_side: ReadSideDep,
    manager: Annotated[str, Query(max_length=128, pattern=r"^[^\x00]*$")] = "",
    after: Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00]*$")] = None,
) -> HTMLResponse:
    entries: list[dict[str, Any]] = []
    more = False
    position = 0
    if manager:
        summaries: SummaryView = read_side.views["summary"]  # type: ignore[assignment]
        rows, at = summaries.book_records(
            manager, after=after, limit=BOOK_LIMIT + 1, columns=SummaryRenderer.BOOK_COLUMNS
        )
        renderer = SummaryRenderer(summaries, datetime.now(UTC))
        entries = [renderer.book_entry(row) for row in rows[:BOOK_LIMIT]]
        more, position = len(rows) > BOOK_LIMIT, at or 0
    return _fragment(
        "book.html", role, manager=manager, entries=entries, more=more, position=position
    )


@router.get(FRAGMENTS + "/funnel")
def funnel(role: Viewer, read_side: ReadSideDep) -> HTMLResponse:
    funnel_view: FunnelView = read_side.views["funnel"]  # type: ignore[assignment]
    summaries: SummaryView = read_side.views["summary"]  # type: ignore[assignment]
    figures, position = funnel_view.figures()
    cohorts, _ = summaries.cohorts()
    return _fragment(
        "funnel.html",
        role,
        figures=figures,
        position=position or 0,
        # The report's charts, whose every text the report escapes.
        charts={
            "funnel": Markup(funnel_svg(figures)),
            "flow": Markup(flow_svg(figures)),
            "cohorts": Markup(cohort_svg(cohorts)),
        },
    )


@router.get(FRAGMENTS + "/dead-letters")
async def dead_letters(role: Auditor, read_side: ReadSideDep) -> HTMLResponse:
    return await run_in_threadpool(_dead_letters_page, read_side, role, None)


@router.post(FRAGMENTS + "/dead-letters/redrive")
async def redrive(
    role: Admin,
    read_side: ReadSideDep,
    offset: Annotated[int, Query(ge=0, le=2**62)],
    again: bool = False,
) -> HTMLResponse:
    """Re-drive the dead letter at ``offset`` (``again``: even if re-driven before), as
    ``lifecycle dead-letters redrive --offset`` does; then the list, saying what was done."""

    def redrive_and_list() -> HTMLResponse:
        desk = read_side.dead_letters
        if desk is None:
            return _dead_letters_page(read_side, role, None)
        try:
            report = desk.redrive(offsets=[offset], again=again).as_dict()
        except LifecycleError as refusal:
            return _dead_letters_page(read_side, role, str(refusal), status=409)
        if report["redriven"]:
            notice = f"Re-drove the dead letter at offset {offset} to the touchpoint topic."
        else:
            notice = f"Nothing re-driven: the message at offset {offset} was re-driven before."
        return _dead_letters_page(read_side, role, notice)

    return await run_in_threadpool(redrive_and_list)


def _dead_letters_page(
    read_side: ReadSide, role: str, notice: str | None, status: int = 200
) -> HTMLResponse:
    desk = read_side.dead_letters
    letters: list[dict[str, Any]] = []
    problem = None
    if desk is None:
        problem = "This server reads no dead-letter topic."
    else:
        try:
            letters = desk.listed()
        except LifecycleError as unreadable:  # the broker away, the topic missing
            problem, status = str(unreadable), 503
    response = _fragment(
        "dead_letters.html",
        role,
        topic=desk.topic if desk is not None else None,
        letters=letters,
        problem=problem,
        notice=notice,
        may_redrive=role in ADMINS,
    )
    response.status_code = status
    return response


# The shell: last, so that every console path above is matched first -----------------


@router.get(SHELL)
@router.get(SHELL + "/{page:path}")
def shell() -> HTMLResponse:
    """The same page for every console path: the script in it fetches the content."""
    return HTMLResponse(_render("shell.html"), headers=PAGE_HEADERS)


# Rendering ----------------------------------------------------------------------------


def _fragment(name: str, role: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        _render(name, role=role, may_audit=role in AUDITORS, **context),
        headers={**FRAGMENT_HEADERS, ROLE_HEADER: role},
    )


def _render(name: str, **context: Any) -> str:
    return _templates().get_template(name).render(**context)


@functools.cache
def _templates() -> Environment:
    environment = Environment(
        loader=PackageLoader(__package__ or "", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["segment"] = _segment
    environment.filters["when"] = _when
    environment.filters["short_day"] = _short_day
    environment.filters["personal"] = _personal
    environment.globals["describe_event"] = describe_event
    return environment


def _segment(value: str) -> str:
    """A value as one path segment of a link: every reserved character percent-encoded
    ('/' too), as the routes' ``segment`` convertor reads it back."""
    return quote(value, safe="")


def _when(value: datetime | None) -> str:
    if value is None:
        return NOTHING
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short_day(value: datetime | date | None) -> str:
    if value is None:
        return NOTHING
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date()
    return value.strftime("%-d %B %Y")


def _personal(view: Mapping[str, Any] | None) -> str:
    if view is None:
        return ""
    if view.get("erased"):
        return '{"erased": true}'
    if view.get("encrypted"):
        return "encrypted"
    return ", ".join(f"{key}: {value}" for key, value in sorted(view.items()))
