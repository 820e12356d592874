"""The read side's operations as the engine's composition uses them (run, demo)."""

from __future__ import annotations

import io

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.entrypoints.read_side import read_side_for_demo
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from projections.service import start_projections
from tests.integration.projections.conftest import History


def test_background_runners_follow_new_events_until_stopped(
    history: History, app: LifecycleApplication, settings: Settings
) -> None:
    history("c1", "inquiry", 0)
    running = start_projections(
        Components(settings.model_copy(update={"projection_poll_seconds": 0.05}))
    )
    try:
        caught_up = running.wait_until_caught_up(timeout=30)
        history("c1", "purchase", 1, amount="3")
        followed = running.wait_until_caught_up(timeout=30)
        statuses = running.status()
    finally:
        running.stop()

    assert (caught_up, followed) == (True, True)
    assert {s.position for s in statuses} == {app.recorder.max_notification_id()}


def test_the_demo_projects_then_prints_the_funnel(history: History, settings: Settings) -> None:
    history("c1", "purchase", 0, amount="3")
    history("c2", "inquiry", 0)
    out = io.StringIO()

    read_side_for_demo(settings, serve=False, out=out)

    printed = out.getvalue()
    assert "funnel of 2 relationships" in printed
    assert "exploration -> awareness     50.0% (1 of 2)" in printed
