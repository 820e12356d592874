"""Serving the read API: the read side built from settings, run by uvicorn, optionally
with the projection runners following the log in the same process."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn
from fastapi import FastAPI

from lifecycle.bootstrap import build_application
from lifecycle.settings import Settings
from projections.api.app import ReadSide, create_app
from projections.bootstrap import close_view, open_views


def build_read_side(settings: Settings) -> ReadSide:
    """The views of every read model and the application, closed together."""
    views = open_views(settings)
    application = build_application(settings)

    def close() -> None:
        for view in views.values():
            close_view(view)
        application.close()

    return ReadSide(settings=settings, views=views, application=application, close=close)


def build_app(settings: Settings) -> FastAPI:
    return create_app(build_read_side(settings))


def serve_api_until(settings: Settings, stop: threading.Event) -> None:
    """Serve the API until ``stop`` is set (a service of ``lifecycle run``)."""
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(settings),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            access_log=False,
        )
    )

    def stop_when_asked() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=stop_when_asked, name="api-stop", daemon=True).start()
    server.run()  # off the main thread, uvicorn leaves signals to the caller


def serve_api(
    settings: Settings, *, with_projections: bool = False, **uvicorn_options: Any
) -> None:
    """Serve the API until interrupted; with ``with_projections``, the runners of every
    read model follow the log in this process meanwhile."""
    from projections.service import start_projections

    running = start_projections(settings) if with_projections else None
    try:
        uvicorn.run(
            build_app(settings),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            access_log=False,
            **uvicorn_options,
        )
    finally:
        if running is not None:
            running.stop()
