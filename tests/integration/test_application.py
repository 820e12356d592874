"""The application service on real stores: SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.persistence import Tracking

from lifecycle.domain.errors import RelationshipNotFound
from lifecycle.domain.relationship import Relationship
from lifecycle.domain.vocabulary import Stage
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.persistence.recorders import SelectsShards
from lifecycle.service.application import LifecycleApplication
from lifecycle.settings import Settings
from tests.builders import DAY_ZERO, touchpoint


def test_a_batch_is_recorded_grouped_by_customer(app: LifecycleApplication) -> None:
    outcome = app.record_batch(
        [
            touchpoint("purchase", 0, customer="a"),
            touchpoint("marketing", 0, customer="b"),
            touchpoint("purchase", 1, customer="a"),
        ]
    )
    assert (outcome.recorded, outcome.duplicates) == (3, 0)
    assert outcome.stage_changes == {"first-purchase": 1, "repeat-purchase": 1}
    assert app.relationship("a").stage is Stage.EXPANSION
    assert app.relationship("b").stage is Stage.EXPLORATION


def test_recording_the_same_touchpoints_again_records_nothing(app: LifecycleApplication) -> None:
    batch = [touchpoint("purchase", 0, customer="a"), touchpoint("inquiry", 1, customer="b")]
    app.record_batch(batch)
    position = app.recorder.max_notification_id()
    outcome = app.record_batch(batch)
    assert (outcome.recorded, outcome.duplicates) == (0, 2)
    assert app.recorder.max_notification_id() == position


def test_a_batch_reports_each_touchpoint_in_order_and_where_its_events_went(
    app: LifecycleApplication,
) -> None:
    first = touchpoint("inquiry", 0, customer="a")
    app.record_batch([first])
    outcome = app.record_batch(
        [touchpoint("purchase", 1, customer="a"), first, touchpoint("inquiry", 1, customer="b")]
    )
    assert outcome.statuses == ["recorded", "duplicate", "recorded"]
    assert outcome.position == app.recorder.max_notification_id()


def test_a_batch_of_duplicates_writes_nothing_and_names_no_position(
    app: LifecycleApplication,
) -> None:
    batch = [touchpoint("inquiry", 0, customer="a")]
    app.record_batch(batch)
    outcome = app.record_batch(batch)
    assert (outcome.statuses, outcome.position) == (["duplicate"], None)


def test_a_fresh_process_sees_the_duplicates_too(
    app: LifecycleApplication, settings: Settings
) -> None:
    batch = [touchpoint("purchase", 0, customer="a")]
    app.record_batch(batch)
    other = Components(settings).application()
    try:
        assert other.record_batch(batch).duplicates == 1
    finally:
        other.close()


def test_a_tracked_batch_is_recorded_once(app: LifecycleApplication) -> None:
    tracking = Tracking("kafka:crm.touchpoints:0", 42)
    first = app.record_batch([touchpoint("purchase", customer="a")], tracking=tracking)
    again = app.record_batch([touchpoint("purchase", 1, customer="a")], tracking=tracking)
    assert first.recorded == 1
    assert again.already_tracked is True
    assert app.relationship("a").touchpoint_count == 1
    assert app.recorder.max_tracking_id("kafka:crm.touchpoints:0") == 42


def test_a_batch_of_nothing_still_records_its_position(app: LifecycleApplication) -> None:
    app.record_batch([], tracking=Tracking("kafka:crm.touchpoints:1", 7))
    assert app.recorder.max_tracking_id("kafka:crm.touchpoints:1") == 7


def test_a_concurrent_writer_is_caught_and_the_batch_retried(
    app: LifecycleApplication, settings: Settings
) -> None:
    app.record_batch([touchpoint("purchase", 0, customer="a")])  # now cached in `app`
    other = Components(settings).application()
    try:
        other.record_batch([touchpoint("purchase", 1, customer="a")])
    finally:
        other.close()
    outcome = app.record_batch([touchpoint("renewal", 2, customer="a")])
    assert outcome.recorded == 1
    reloaded = Components(settings).application()
    try:
        relationship = reloaded.relationship("a")
        assert relationship.touchpoint_count == 3
        assert relationship.stage is Stage.COMMITMENT
    finally:
        reloaded.close()


def test_a_long_history_loads_from_a_snapshot(settings: Settings) -> None:
    app = Components(settings.model_copy(update={"snapshot_interval": 10})).application()
    try:
        for day in range(0, 45, 5):
            app.record_batch(
                [touchpoint("marketing", day + i / 10, customer="a") for i in range(5)]
            )
        assert app.snapshots is not None
        snapshots = list(app.snapshots.get(app.relationship("a").id))
        assert [s.originator_version for s in snapshots] == [10, 20, 30, 40]
        assert app.relationship("a").touchpoint_count == 45
    finally:
        app.close()


def test_history_lists_every_event_in_order(app: LifecycleApplication) -> None:
    app.record_batch(
        [touchpoint("purchase", customer="a"), touchpoint("referral", 1, customer="a")]
    )
    history = app.history("a")
    assert [type(e).__name__ for e in history] == [
        "RelationshipStarted",
        "TouchpointRecorded",
        "StageChanged",
        "TouchpointRecorded",
        "StageChanged",
    ]
    assert [e.originator_version for e in history] == [1, 2, 3, 4, 5]


def test_state_as_of_a_version(app: LifecycleApplication) -> None:
    app.record_batch(
        [touchpoint("purchase", customer="a"), touchpoint("referral", 1, customer="a")]
    )
    assert app.relationship("a", version=3).stage is Stage.AWARENESS
    assert app.relationship("a").stage is Stage.EXPANSION


def test_state_as_of_a_recorded_time_is_what_the_engine_knew_then(
    app: LifecycleApplication,
) -> None:
    app.record_batch([touchpoint("purchase", customer="a")])
    between = datetime.now(UTC)
    app.record_batch([touchpoint("referral", 1, customer="a")])
    assert app.relationship_as_of("a", between).stage is Stage.AWARENESS
    assert app.relationship_as_of("a", datetime.now(UTC)).stage is Stage.EXPANSION


def test_state_before_the_relationship_existed_is_not_found(app: LifecycleApplication) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    app.record_batch([touchpoint("purchase", customer="a")])
    with pytest.raises(RelationshipNotFound):
        app.relationship_as_of("a", before)


def test_an_unknown_customer_is_not_found(app: LifecycleApplication) -> None:
    with pytest.raises(RelationshipNotFound):
        app.relationship("nobody")
    with pytest.raises(RelationshipNotFound):
        app.history("nobody")


def test_a_manual_stage_change_is_recorded(app: LifecycleApplication) -> None:
    app.record_batch([touchpoint("purchase", customer="a")])
    app.change_stage("a", Stage.COMMITMENT, actor="ana", reason="key account", at=DAY_ZERO)
    last = app.history("a")[-1]
    assert isinstance(last, Relationship.StageChanged)
    assert (last.rule, last.actor, last.to_stage) == ("manual", "ana", "commitment")


def test_the_sweep_dissolves_only_relationships_inactive_for_the_window(
    app: LifecycleApplication,
) -> None:
    app.record_batch(
        [
            touchpoint("purchase", 0, customer="quiet"),
            touchpoint("purchase", 0, customer="active"),
            touchpoint("marketing", 300, customer="active"),
            touchpoint("cancellation", 0, customer="gone"),
        ]
    )
    outcome = app.sweep(DAY_ZERO + timedelta(days=366))
    assert (outcome.examined, outcome.dissolved) == (3, 1)
    assert app.relationship("quiet").stage is Stage.DISSOLUTION
    assert app.relationship("active").stage is Stage.AWARENESS
    assert app.sweep(DAY_ZERO + timedelta(days=366)).dissolved == 0


def test_relationships_are_listed_in_the_order_they_started(app: LifecycleApplication) -> None:
    app.record_batch([touchpoint("marketing", customer=c) for c in ("x", "y", "z")])
    assert [app.relationship(c).id for c in ("x", "y", "z")] == list(app.relationship_ids(page=2))


def test_a_large_batch_is_recorded_in_one_transaction(app: LifecycleApplication) -> None:
    batch = [touchpoint("purchase", day % 30, customer=f"c-{day % 700}") for day in range(3000)]
    tracking = Tracking("import", 3000)
    outcome = app.record_batch(batch, tracking=tracking)
    assert outcome.recorded == 3000
    assert app.recorder.max_tracking_id("import") == 3000


def test_the_log_reads_as_the_librarys_recorder_reads_it(database_url: str) -> None:
    from eventsourcing.postgres import PostgresApplicationRecorder
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    from lifecycle.service.application import RELATIONSHIP_STARTED_TOPICS

    application = Components(Settings(database_url=database_url)).application()
    try:
        application.record_batch(
            [touchpoint("purchase", n, customer=f"c{n % 3}", amount="5") for n in range(9)]
        )
        recorder = application.recorder
        library = (
            SQLiteApplicationRecorder
            if isinstance(recorder, SQLiteApplicationRecorder)
            else PostgresApplicationRecorder
        ).select_notifications
        for query in (
            {"start": 1, "limit": 100},
            {"start": 3, "limit": 4},
            {"start": 3, "limit": 100, "stop": 7, "inclusive_of_start": False},
            {"start": None, "limit": 100, "topics": RELATIONSHIP_STARTED_TOPICS},
        ):
            assert recorder.select_notifications(**query) == library(recorder, **query)
    finally:
        application.close()


def test_a_shard_of_the_log_holds_the_events_of_its_customers_only(database_url: str) -> None:
    from projections.shards import Shard, shard_of

    application = Components(Settings(database_url=database_url)).application()
    try:
        application.record_batch(
            [touchpoint("purchase", n, customer=f"c{n}", amount="5") for n in range(40)]
        )
        recorder = application.recorder
        assert isinstance(recorder, SelectsShards)
        everything = recorder.select_notifications(1, 1_000)
        for count in (2, 4):
            read = [
                recorder.select_notifications(1, 1_000, shard_digits=Shard(i, count).hex_digits)
                for i in range(count)
            ]
            assert [{shard_of(n.originator_id, count) for n in events} for events in read] == [
                {i} for i in range(count)
            ]
            assert sorted(n.id for events in read for n in events) == [n.id for n in everything]
    finally:
        application.close()
