"""The read side's operations, for commands and for whoever composes a whole engine
(``lifecycle run``, ``lifecycle demo``):

- ``catch_up``: project everything recorded so far, then return the positions;
- ``start_projections``: runners following the log in a background thread, stoppable;
- ``funnel_figures``: the funnel read model's figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import structlog
from eventsourcing.postgres import PostgresApplicationRecorder

from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.funnel import Funnel, FunnelFigures, FunnelView
from projections.runner import LaneStatus
from projections.wiring import (
    Wiring,
    build_runner,
    close_runner,
    close_view,
)

log = structlog.get_logger(__name__)


def catch_up(
    wiring: Wiring,
    names: Sequence[str] | None = None,
    *,
    app: LifecycleApplication | None = None,
    advance: Callable[[int], None] | None = None,
) -> list[LaneStatus]:
    """Project every event recorded so far into the named read models (all by default)."""
    owned = app is None
    application = app or wiring.application()
    runner = build_runner(wiring, application, names)
    try:
        runner.catch_up(advance)
        return runner.status()
    finally:
        close_runner(runner)
        if owned:
            application.close()


class RunningProjections:
    """Runners following the event log in a background thread until ``stop``."""

    def __init__(self, wiring: Wiring, names: Sequence[str] | None = None) -> None:
        self.app = wiring.application()
        self.runner = build_runner(wiring, self.app, names)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.error: BaseException | None = None
        self._threads = [
            threading.Thread(
                target=self._run, name="projections", args=(wiring.settings,), daemon=True
            )
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


def start_projections(wiring: Wiring, names: Sequence[str] | None = None) -> RunningProjections:
    """Start runners of the named read models (all by default) following the log."""
    return RunningProjections(wiring, names)


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


def funnel_figures(wiring: Wiring) -> tuple[FunnelFigures, int | None]:
    view: FunnelView = wiring.open_view(Funnel)  # type: ignore[assignment]
    try:
        return view.figures()
    finally:
        close_view(view)
