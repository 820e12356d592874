"""Serving the read API: the read side built from settings, run by uvicorn in this
process or in several worker processes, optionally with the projection runners
following the log meanwhile.

One worker (``LIFECYCLE_API_WORKERS=1``): the app and the runners share this process,
as ``lifecycle run`` does (``serve_api_until``).

Several workers (``lifecycle serve --workers N``; by default one per CPU, at most 4):
the app is stateless, so uvicorn binds the socket here and spawns N workers, each
building its own read side from the settings this process hands over in the
environment; SQLite in WAL mode and PostgreSQL both serve concurrent readers. The
runners then follow the log in a process of their own, so they never compete with a
worker for its interpreter. Prometheus metrics go through prometheus_client's
multiprocess mode: every process writes its values to files in one directory
(``PROMETHEUS_MULTIPROC_DIR``; a fresh temporary one, removed at exit, unless it is
set), and ``/metrics`` of whichever worker answers aggregates them all.

Ctrl-C or SIGTERM stops the workers gracefully (requests in flight are answered, each
read side is closed), then the runners, which commit what they have folded.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.logs import configure_logging
from lifecycle.settings import Settings
from projections.api.app import create_app

MAX_DEFAULT_WORKERS = 4
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
WORKER_HEALTHCHECK_SECONDS = 30
"""How long a worker may leave uvicorn's ping unanswered before it is replaced (uvicorn's
default, 5 s, is shorter than a fresh interpreter may take to import the app on a busy
host, which would then replace workers as they start)."""
_WORKER_SETTINGS = "LIFECYCLE_INTERNAL_WORKER_SETTINGS"
_STOP_TIMEOUT_SECONDS = 60


def build_app(settings: Settings) -> FastAPI:
    return create_app(Components(settings).read_side())


def worker_count(settings: Settings) -> int:
    """``api_workers``, else one per CPU, at most 4. The API is CPU-bound Python: one
    interpreter serves from one core at a time. The cap because each worker holds a read
    side of its own (memory; 27 connections on PostgreSQL): more is a deliberate choice."""
    return settings.api_workers or min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)


def worker_app() -> FastAPI:
    """The app of one worker process (an import string for uvicorn, ``factory=True``):
    built from the settings its parent handed over in the environment."""
    settings = _settings_from_json(os.environ[_WORKER_SETTINGS])
    configure_logging(settings.log_format, settings.log_level)
    return build_app(settings)


def serve_api_until(settings: Settings, stop: threading.Event) -> None:
    """Serve the API in this process until ``stop`` is set (a service of ``lifecycle
    run``)."""
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
    """Serve the API until interrupted, with ``worker_count(settings)`` workers; with
    ``with_projections``, the runners of every read model follow the log meanwhile."""
    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_level": "warning",
        "access_log": False,
        **uvicorn_options,
    }
    workers = worker_count(settings)
    if workers == 1:
        _serve_in_this_process(settings, with_projections, options)
        return
    settings = _with_current_log_level(settings)
    # Every table exists before the processes start: the library's create_table records
    # a schema migration, which processes creating the same tables at once race on.
    Components(settings).read_side().close()
    with _shared_metrics_directory():
        os.environ[_WORKER_SETTINGS] = _settings_to_json(settings)
        projecting = _start_projection_process(settings) if with_projections else None
        try:
            uvicorn.run(
                f"{__name__}:{worker_app.__name__}",
                factory=True,
                workers=workers,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
                **options,
            )
        finally:
            os.environ.pop(_WORKER_SETTINGS, None)
            if projecting is not None:
                _stop_process(projecting)


def _serve_in_this_process(
    settings: Settings, with_projections: bool, options: dict[str, Any]
) -> None:
    from projections.service import start_projections

    running = start_projections(Components(settings)) if with_projections else None
    try:
        uvicorn.run(build_app(settings), **options)
    finally:
        if running is not None:
            running.stop()


# Several processes ---------------------------------------------------------------------


@contextlib.contextmanager
def _shared_metrics_directory() -> Iterator[None]:
    """Prometheus multiprocess mode for the processes started inside: the directory
    given in PROMETHEUS_MULTIPROC_DIR, else a fresh temporary one removed afterwards
    (stale files of an earlier run would otherwise be counted again)."""
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        yield
        return
    directory = tempfile.mkdtemp(prefix="lifecycle-metrics-")
    os.environ[MULTIPROCESS_DIRECTORY] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROCESS_DIRECTORY, None)
        shutil.rmtree(directory, ignore_errors=True)


def _start_projection_process(settings: Settings) -> multiprocessing.process.BaseProcess:
    # spawn, as uvicorn does for its workers: a fresh interpreter that imports
    # prometheus_client with the multiprocess directory already set.
    process = multiprocessing.get_context("spawn").Process(
        target=_follow_log, args=(_settings_to_json(settings),), name="lifecycle-projections"
    )
    process.start()
    return process


def _follow_log(settings_json: str) -> None:
    """The projection process: runners follow the log until SIGTERM or SIGINT."""
    from projections.service import start_projections

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    settings = _settings_from_json(settings_json)
    configure_logging(settings.log_format, settings.log_level)
    running = start_projections(Components(settings))
    try:
        while not stop.wait(1.0) and running.is_running:
            pass
    finally:
        running.stop()


def _stop_process(process: multiprocessing.process.BaseProcess) -> None:
    if process.is_alive():
        assert process.pid is not None
        os.kill(process.pid, signal.SIGTERM)
    process.join(_STOP_TIMEOUT_SECONDS)
    if process.is_alive():
        process.kill()
        process.join()


def _with_current_log_level(settings: Settings) -> Settings:
    """``settings`` with the level this process logs at, for the processes it starts (a
    command may have set another than the settings say, as the demo does)."""
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    if level not in ("debug", "info", "warning", "error"):
        return settings
    return settings.model_copy(update={"log_level": level})


def _settings_to_json(settings: Settings) -> str:
    values: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        values[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return orjson.dumps(values, default=str).decode()


def _settings_from_json(text: str) -> Settings:
    return Settings(**orjson.loads(text))
