"""Exactly-once projection: resuming, batching, a second runner, and rebuilds that
equal the live read models and swap in while the old ones serve."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from lifecycle.domain.vocabulary import Stage
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import RELATIONSHIP_TOPICS, LifecycleApplication
from lifecycle.settings import Settings
from projections import follow_ups, pairs, readmodel
from projections.names import READ_MODEL_NAMES
from projections.rebuild import RebuildFailed, rebuild
from projections.service import catch_up
from projections.shards import Shard
from projections.summary import Summary
from projections.views import NEXT, RebuildInProgress
from projections.wiring import build_runner, close_runner, close_view
from tests.integration.projections.conftest import History, Project, day, read_model_dumps


def _eventful(history: History, app: LifecycleApplication, customers: int = 6) -> None:
    for n in range(customers):
        c = f"c{n}"
        history(c, "inquiry", n, event_id=f"{c}-q")
        history(c, "response", n + 0.5, in_reply_to=f"{c}-q")
        history(c, "purchase", n + 1, amount="12.5", category=["books", "toys"][n % 2])
        history(c, "complaint", n + 2, complaint_id="k")
        history(c, "purchase", n + 20, amount="3", category="garden")
        history(c, "survey", n + 3, score=n)
        history(c, "complaint_resolved", n + 1.5, complaint_id="k")  # late
        history(c, "cancellation", n + 30, reason="moved")
        history(c, "trial", n + 60)  # reactivation
        history(c, "follow_up", n + 61)
    app.change_stage("c0", Stage.COMMITMENT, actor="ana", reason="key account", at=day(90))
    app.sweep(day(500))


def _eventful_and_projected(
    history: History, app: LifecycleApplication, settings: Settings
) -> dict[str, Any]:
    """The eventful history, with every read model caught up with it: their dumps."""
    _eventful(history, app)
    catch_up(Components(settings), app=app)
    return read_model_dumps(settings)


def test_projection_resumes_from_its_position_without_counting_twice(
    history: History, project: Project, app: LifecycleApplication
) -> None:
    history("c1", "inquiry", 0)
    project(["summary"])
    history("c1", "inquiry", 1)
    history("c1", "inquiry", 2)

    row, position = project(["summary"])["summary"].summary("c1")

    assert row.touchpoints == 3
    assert position == app.recorder.max_notification_id()


def test_rows_do_not_depend_on_how_the_log_is_cut_into_batches(
    history: History, app: LifecycleApplication, settings: Settings
) -> None:
    whole = _eventful_and_projected(history, app, settings)
    tiny = settings.model_copy(update={"projection_page_size": 1, "projection_batch_size": 1})

    rebuild(Components(tiny), app=app)

    assert read_model_dumps(settings) == whole


def test_rebuilt_read_models_equal_the_live_ones(
    history: History, app: LifecycleApplication, settings: Settings
) -> None:
    live = _eventful_and_projected(history, app, settings)

    outcome = rebuild(Components(settings), app=app)

    assert read_model_dumps(settings) == live
    assert set(outcome.positions.values()) == {app.recorder.max_notification_id()}


def test_the_old_tables_serve_while_a_rebuild_runs(
    history: History, project: Project, app: LifecycleApplication, settings: Settings
) -> None:
    history("c1", "inquiry", 0)
    summary = project(["summary"])["summary"]
    served_before = summary.summary("c1")
    history("c1", "inquiry", 1)
    seen_during: list[Any] = []

    rebuild(
        Components(settings),
        ["summary"],
        app=app,
        advance=lambda _: seen_during.append(summary.summary("c1")),
    )

    assert [(row.touchpoints, pos) for row, pos in seen_during] == [
        (served_before[0].touchpoints, served_before[1])
    ]
    assert summary.summary("c1")[0].touchpoints == 2


def test_a_runner_whose_tables_were_swapped_resumes_from_the_rebuilt_position(
    history: History, app: LifecycleApplication, settings: Settings
) -> None:
    history("c1", "inquiry", 0)
    runner = build_runner(Components(settings), app, ["summary"])
    try:
        runner.catch_up()
        history("c1", "inquiry", 1)
        rebuild(Components(settings), ["summary"], app=app)
        history("c1", "inquiry", 2)
        runner.catch_up()
        row, position = runner.lanes[0].model.view.summary("c1")
    finally:
        close_runner(runner)

    assert row.touchpoints == 3
    assert position == app.recorder.max_notification_id()


def test_two_runners_of_one_read_model_never_count_an_event_twice(
    history: History, app: LifecycleApplication, settings: Settings
) -> None:
    _eventful(history, app, customers=3)
    first = build_runner(Components(settings), app, READ_MODEL_NAMES)
    second = build_runner(Components(settings), app, READ_MODEL_NAMES)
    try:
        first.catch_up()
        second.catch_up()
        history("c1", "inquiry", 99)
        second.catch_up()
        first.catch_up()
        both = read_model_dumps(settings)
    finally:
        close_runner(first)
        close_runner(second)

    rebuild(Components(settings), app=app)
    assert read_model_dumps(settings) == both


def test_lag_is_what_the_log_holds_beyond_a_read_models_position(
    history: History, app: LifecycleApplication, settings: Settings
) -> None:
    history("c1", "inquiry", 0)
    catch_up(Components(settings), ["funnel"], app=app)
    history("c1", "inquiry", 1)
    runner = build_runner(Components(settings), app, ["funnel"])
    try:
        before = runner.status()[0]
        runner.catch_up()
        after = runner.status()[0]
    finally:
        close_runner(runner)

    assert (before.lag, after.lag) == (1, 0)


def test_a_rebuild_shared_between_worker_processes_equals_the_live_read_models(
    history: History, app: LifecycleApplication, settings: Settings
) -> None:
    live = _eventful_and_projected(history, app, settings)

    outcome = rebuild(Components(settings), workers=3)

    assert read_model_dumps(settings) == live
    assert [shard.shard for shard in outcome.shards] == [Shard(0, 3), Shard(1, 3), Shard(2, 3)]
    assert all(shard.events for shard in outcome.shards)
    relationship_events = app.recorder.select_notifications(1, 10_000, topics=RELATIONSHIP_TOPICS)
    assert sum(shard.events for shard in outcome.shards) == len(relationship_events)


def test_each_shard_of_a_rebuild_is_tracked_under_the_name_earlier_releases_gave_it(
    settings: Settings,
) -> None:
    components = Components(settings)
    views = [
        components.open_view(Summary),
        components.open_view(Summary, NEXT),
        components.open_view(Summary, NEXT, Shard(2, 4)),
    ]
    names = [view.tracking_name for view in views]
    for view in views:
        close_view(view)

    assert names == ["Lifecycle", "Lifecycle@next", "Lifecycle@next:2/4"]


def test_a_rebuild_stops_where_the_log_was_when_it_began(
    history: History, app: LifecycleApplication, settings: Settings
) -> None:
    history("c1", "inquiry", 0)
    began_at = app.recorder.max_notification_id()
    recorded: list[str] = []

    def record_meanwhile(_: int) -> None:
        if not recorded:
            recorded.append(history("c2", "inquiry", 1))

    outcome = rebuild(
        Components(settings), ["summary"], app=app, workers=1, advance=record_meanwhile
    )
    rows_after_rebuild = read_model_dumps(settings)["summary"]["relationships"]
    catch_up(Components(settings), ["summary"], app=app)

    assert outcome.positions == {"summary": began_at}
    assert [row[0] for row in rows_after_rebuild] == ["c1"]
    assert len(read_model_dumps(settings)["summary"]["relationships"]) == 2


def test_a_worker_killed_mid_rebuild_fails_it_and_nothing_is_swapped_in(
    history: History, app: LifecycleApplication, settings: Settings
) -> None:
    live = _eventful_and_projected(history, app, settings)
    history("c1", "inquiry", 99)  # only a rebuild that got swapped in would show it
    one_event_a_page = settings.model_copy(update={"projection_page_size": 1})

    def kill_a_worker(_: int) -> None:
        for worker in multiprocessing.active_children():
            os.kill(worker.pid or 0, signal.SIGKILL)

    with pytest.raises(RebuildFailed, match="exited with code -9"):
        rebuild(Components(one_event_a_page), workers=2, advance=kill_a_worker)

    assert read_model_dumps(settings) == live


def test_what_a_read_model_holds_is_bounded_without_changing_its_rows(
    history: History, app: LifecycleApplication, settings: Settings, monkeypatch: Any
) -> None:
    live = _eventful_and_projected(history, app, settings)
    monkeypatch.setattr(follow_ups, "TASKS_HELD", 1)
    monkeypatch.setattr(pairs, "CASES_HELD", 1)
    monkeypatch.setattr(readmodel, "DEFAULT_CACHE_ROWS", 2)
    one_event_a_page = settings.model_copy(update={"projection_page_size": 1})

    rebuild(Components(one_event_a_page), app=app, workers=1)

    assert read_model_dumps(settings) == live


def test_a_read_model_that_holds_enough_commits_alone(
    history: History, app: LifecycleApplication, settings: Settings, monkeypatch: Any
) -> None:
    history("c1", "complaint", 0, complaint_id="k1")
    first_complaint = app.recorder.max_notification_id()
    history("c1", "complaint", 1, complaint_id="k2")
    monkeypatch.setattr(pairs, "CASES_HELD", 1)
    runner = build_runner(Components(settings), app, ["summary", "complaints"])
    runner.page_size, runner.batch_size, runner.commit_seconds = 1, None, None
    try:
        runner.step()  # the relationship starts
        runner.step()  # the first complaint
        committed = {lane.name: lane.committed for lane in runner.lanes}
    finally:
        close_runner(runner)

    assert committed == {"summary": None, "complaints": first_complaint}


def test_a_second_rebuild_of_a_read_model_is_refused_while_the_first_runs(
    history: History, app: LifecycleApplication, settings: Settings
) -> None:
    _eventful(history, app, customers=2)
    refusals: list[str] = []

    def rebuild_again(_: int) -> None:
        if not refusals:
            with pytest.raises(RebuildInProgress) as refused:
                rebuild(Components(settings), ["summary"], app=app, workers=1)
            refusals.append(str(refused.value))

    outcome = rebuild(
        Components(settings), ["summary", "funnel"], app=app, workers=1, advance=rebuild_again
    )

    assert refusals == ["summary is being rebuilt by another process"]
    assert outcome.positions["summary"] == app.recorder.max_notification_id()


def test_a_runner_whose_table_is_gone_stops_instead_of_retrying(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url)
    application = Components(settings).application()
    runner = build_runner(Components(settings), application, ["summary"])
    try:
        History(application)("c1", "inquiry", 0)
        with sqlite3.connect(
            sqlite_url.removeprefix("sqlite:///").replace("lifecycle.db", "lifecycle.summary.db")
        ) as database:
            database.execute("DROP TABLE summary_relationships")

        with pytest.raises(OperationalError, match="no such table"):
            runner.catch_up()
    finally:
        close_runner(runner)
        application.close()
