"""The read side's operations, for commands and for whoever composes a whole engine
(``lifecycle run``, ``lifecycle demo``):

- ``catch_up``: project everything recorded so far, then return the positions;
- ``start_projections``: runners following the log in a background thread, stoppable;
- ``print_funnel``: the funnel as a person reads it;
- ``read_side_for_demo``: what the demo does after recording: catch up, print the
  funnel, and (unless told not to) serve the API with a reader key it prints.
"""

from __future__ import annotations

import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import structlog
from eventsourcing.postgres import PostgresApplicationRecorder

from lifecycle.application import LifecycleApplication
from lifecycle.bootstrap import build_application
from lifecycle.settings import Settings
from projections.bootstrap import (
    build_runner,
    close_runner,
    close_view,
    open_view,
)
from projections.funnel import Funnel, FunnelFigures, FunnelView
from projections.runner import LaneStatus

log = structlog.get_logger(__name__)


def catch_up(
    settings: Settings,
    names: Sequence[str] | None = None,
    *,
    app: LifecycleApplication | None = None,
    advance: Callable[[int], None] | None = None,
) -> list[LaneStatus]:
    """Project every event recorded so far into the named read models (all by default)."""
    owned = app is None
    application = app or build_application(settings)
    runner = build_runner(settings, application, names)
    try:
        runner.catch_up(advance)
        return runner.status()
    finally:
        close_runner(runner)
        if owned:
            application.close()


class RunningProjections:
    """Runners following the event log in a background thread until ``stop``."""

    def __init__(self, settings: Settings, names: Sequence[str] | None = None) -> None:
        self.app = build_application(settings)
        self.runner = build_runner(settings, self.app, names)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._run, name="projections", args=(settings,), daemon=True)
        ]
        if isinstance(self.app.recorder, PostgresApplicationRecorder):
            self._threads.append(
                threading.Thread(
                    target=_listen, args=(self.app.recorder, self._wake, self._stop), daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def _run(self, settings: Settings) -> None:
        try:
            self.runner.follow(
                self._stop, poll_seconds=settings.projection_poll_seconds, wake=self._wake
            )
        except BaseException as error:
            self.error = error
            log.error("projections_stopped", reason=str(error))
            self._stop.set()

    @property
    def is_running(self) -> bool:
        return not self._stop.is_set()

    def status(self) -> list[LaneStatus]:
        return self.runner.status()

    def wait_until_caught_up(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.is_running:
            if all(lane.lag == 0 for lane in self.status()):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=30)
        close_runner(self.runner)
        self.app.close()


def start_projections(settings: Settings, names: Sequence[str] | None = None) -> RunningProjections:
    """Start runners of the named read models (all by default) following the log."""
    return RunningProjections(settings, names)


def _listen(
    recorder: PostgresApplicationRecorder, wake: threading.Event, stop: threading.Event
) -> None:
    """Wake the runner when PostgreSQL NOTIFYs a new write (the library's channel)."""
    from psycopg.sql import SQL, Identifier

    try:
        with recorder.datastore.get_connection() as connection:
            connection.execute(SQL("LISTEN {0}").format(Identifier(recorder.channel_name)))
            while not stop.is_set():
                for _ in connection.notifies(timeout=0.5, stop_after=1):
                    wake.set()
    except Exception as error:  # polling goes on without the wake-ups
        log.warning("projection_listen_failed", reason=str(error))


def funnel_figures(settings: Settings) -> tuple[FunnelFigures, int | None]:
    view: FunnelView = open_view(settings, Funnel)  # type: ignore[assignment]
    try:
        return view.figures()
    finally:
        close_view(view)


def print_funnel(settings: Settings, out: TextIO | None = None) -> None:
    """Stage counts, conversion between consecutive stages, median days in stage."""
    out = out or sys.stdout
    figures, position = funnel_figures(settings)
    print(
        f"\nfunnel of {figures.relationships} relationships (log position {position or 0}):",
        file=out,
    )
    print(f"  {'stage':<12} {'now':>7} {'entered':>8} {'median days':>12}", file=out)
    for stage in figures.stages:
        median = "-" if stage.median_days is None else f"{stage.median_days:g}"
        print(f"  {stage.stage:<12} {stage.current:>7} {stage.entered:>8} {median:>12}", file=out)
    print("  conversion:", file=out)
    for conversion in figures.conversions:
        rate = "-" if conversion.rate is None else f"{conversion.rate:.1%}"
        print(
            f"    {conversion.from_stage:>11} -> {conversion.to_stage:<12} {rate:>6} "
            f"({conversion.converted} of {conversion.entered})",
            file=out,
        )
    if figures.dissolutions:
        print("  dissolved because:", file=out)
        for dissolution in figures.dissolutions[:8]:
            why = dissolution.rule + (f": {dissolution.reason}" if dissolution.reason else "")
            print(f"    {why:<40} {dissolution.count:>7}", file=out)


def reader_key_for(settings: Settings) -> tuple[Settings, str]:
    """A reader key: the first configured one, or a new one added to the settings."""
    for key, role in settings.api_keys.items():
        if role == "reader":
            return settings, key
    key = secrets.token_urlsafe(24)
    return settings.model_copy(update={"api_keys": {**settings.api_keys, key: "reader"}}), key


def read_side_for_demo(
    settings: Settings, *, serve: bool, out: TextIO | None = None, **serve_options: Any
) -> None:
    """After the demo recorded its population: project it, print the funnel and, when
    ``serve``, keep projecting and serve the read API until interrupted."""
    out = out or sys.stdout
    statuses = catch_up(settings)
    print(
        f"\nprojected {len(statuses)} read models up to position "
        f"{max((s.position for s in statuses), default=0)}",
        file=out,
    )
    print_funnel(settings, out)
    if not serve:
        return
    from projections.api.server import serve_api

    settings, key = reader_key_for(settings)
    print(
        f"\nread API on http://{settings.api_host}:{settings.api_port}/v1/funnel "
        f"(docs at /docs); reader key:\n  {key}\n"
        f"  curl -H 'Authorization: Bearer {key}' "
        f"http://{settings.api_host}:{settings.api_port}/v1/funnel\n"
        "Ctrl-C stops it.",
        file=out,
        flush=True,
    )
    serve_api(settings, with_projections=True, **serve_options)
