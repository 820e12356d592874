"""The HTTP API (Contracts 4 and 7): FastAPI over the read models' views, for downstream
services, plus the event history, point-in-time state and business-time stages from the
log; touchpoints recorded over HTTP for upstream systems without Kafka; account managers
assigned by admins; and the console for people (``/console``).

Every answer names the projection position it reflects (``position`` in the body and
the ``X-Projection-Position`` header); a request may ask for ``min_position``, waited
for briefly, else 409 (read-your-writes). Errors have one shape and are mapped in
``errors``. ``/healthz``, ``/readyz`` and ``/metrics`` answer without a key, for probes
and scrapers.

The routes live in ``routes``, one router per OpenAPI tag; what they share (the read
side, roles, ``min_position``, the answer with its position) in ``dependencies``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from projections import metrics
from projections.api.dependencies import ReadSide
from projections.api.errors import add_error_handlers
from projections.api.paths import KeepEncodedSlashes
from projections.api.routes import (
    account_managers,
    analytics,
    audit,
    console,
    customers,
    funnel,
    ingest,
    operations,
    service,
)

__all__ = ["ReadSide", "create_app"]


def create_app(read_side: ReadSide) -> FastAPI:
    """The API over ``read_side`` (closed when the app shuts down)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            read_side.close()

    app = FastAPI(
        title="Relationship lifecycle API",
        version="1.1.0",
        description="Read models of the relationship-lifecycle engine (Contract 4), "
        "touchpoints over HTTP and business-time stages (Contract 7). Authenticate with "
        "`Authorization: Bearer <key>`; roles reader, auditor, admin, publisher.",
        lifespan=lifespan,
    )
    app.state.read_side = read_side
    app.add_middleware(KeepEncodedSlashes)
    app.add_middleware(_LatencyMiddleware)
    add_error_handlers(app)
    for routes in (
        customers,
        account_managers,
        analytics,
        audit,
        funnel,
        service,
        ingest,
        operations,
    ):
        app.include_router(routes.router)
    app.include_router(console.router)
    _document_messages(app)
    return app


def _document_messages(app: FastAPI) -> None:
    """Add the schemas of Contract 1's message, which the ingest route reads itself (its
    items are answered one by one, not refused as a whole), to the OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = generate().setdefault("components", {}).setdefault("schemas", {})
            clashing = set(schemas) & set(ingest.MESSAGE_COMPONENTS)
            assert not clashing, f"schema names used twice: {clashing}"
            schemas.update(ingest.MESSAGE_COMPONENTS)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


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
