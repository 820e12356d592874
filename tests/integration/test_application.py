"""The application service on real stores: SQLite and PostgreSQL alike."""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import IntegrityError, Tracking
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lifecycle.domain.errors import RelationshipNotFound
from lifecycle.domain.relationship import Relationship, relationship_id
from lifecycle.domain.vocabulary import Stage
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.persistence.postgres import BatchPostgresProcessRecorder
from lifecycle.persistence.recorders import BulkSQLiteProcessRecorder, SelectsShards
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


def test_a_touchpoint_recorded_many_snapshots_ago_is_still_a_duplicate(
    settings: Settings,
) -> None:
    long_history = settings.model_copy(update={"snapshot_interval": 5})
    first = touchpoint("inquiry", 0, customer="a")
    writer = Components(long_history).application()
    try:
        writer.record_batch([first])
        writer.record_batch([touchpoint("marketing", day, customer="a") for day in range(1, 40)])
    finally:
        writer.close()
    fresh = Components(long_history).application()  # nothing cached: loaded from a snapshot
    try:
        outcome = fresh.record_batch([first, touchpoint("inquiry", 41, customer="a")])
        assert outcome.statuses == ["duplicate", "recorded"]
        assert fresh.relationship("a").touchpoint_count == 41
    finally:
        fresh.close()


def test_the_same_event_id_of_two_customers_is_two_touchpoints(app: LifecycleApplication) -> None:
    outcome = app.record_batch(
        [
            touchpoint("inquiry", customer="a", event_id="shared"),
            touchpoint("inquiry", customer="b", event_id="shared"),
        ]
    )
    assert outcome.statuses == ["recorded", "recorded"]


def test_a_touchpoint_twice_in_one_batch_is_recorded_once(app: LifecycleApplication) -> None:
    twice = touchpoint("purchase", customer="a")
    outcome = app.record_batch([twice, touchpoint("inquiry", 1, customer="a"), twice])
    assert outcome.statuses == ["recorded", "recorded", "duplicate"]
    assert app.relationship("a").touchpoint_count == 2


def test_the_store_refuses_a_touchpoint_key_recorded_before(app: LifecycleApplication) -> None:
    # The final guard against two writers deciding at once: the transaction fails, and
    # record_batch retries it like a version conflict.
    app.record_batch([touchpoint("inquiry", customer="a", event_id="evt-once")])
    with pytest.raises(IntegrityError):
        app.recorder.insert_events([], touchpoint_keys=[(relationship_id("a"), "evt-once")])


def test_a_store_without_touchpoint_keys_gets_them_from_its_log(
    app: LifecycleApplication, settings: Settings
) -> None:
    old = [touchpoint("purchase", 0, customer="a"), touchpoint("inquiry", 1, customer="b")]
    app.record_batch(old)
    recorder = app.recorder
    assert isinstance(recorder, BulkSQLiteProcessRecorder | BatchPostgresProcessRecorder)
    with recorder.datastore.transaction(commit=True) as cursor:  # as a store written before
        cursor.execute(f"DROP TABLE {recorder.touchpoints_table_name}")
    upgraded = Components(settings).application()
    try:
        outcome = upgraded.record_batch([*old, touchpoint("inquiry", 2, customer="a")])
        assert outcome.statuses == ["duplicate", "duplicate", "recorded"]
    finally:
        upgraded.close()


def test_snapshots_stay_the_same_size_however_long_the_history(settings: Settings) -> None:
    app = Components(settings.model_copy(update={"snapshot_interval": 10})).application()
    try:
        for customer, touchpoints in (("short", 20), ("long", 600)):
            app.record_batch(
                [touchpoint("inquiry", n / 100, customer=customer) for n in range(touchpoints)]
            )
        assert app.snapshots is not None
        sizes = {
            customer: len(
                app.snapshots.recorder.select_events(relationship_id(customer), desc=True, limit=1)[
                    0
                ].state
            )
            for customer in ("short", "long")
        }
        assert sizes["long"] - sizes["short"] < 16  # the counts' extra digits
    finally:
        app.close()


def test_a_snapshot_that_holds_every_event_id_still_loads(settings: Settings) -> None:
    app = Components(settings.model_copy(update={"snapshot_interval": 1000})).application()
    first = touchpoint("purchase", 0, customer="a")
    try:
        app.record_batch([first, touchpoint("inquiry", 1, customer="a")])
        relationship = app.relationship("a")
        # Version 1 of the snapshot state, as releases before held it: every event id,
        # no class version.
        state = {
            key: value
            for key, value in vars(relationship).items()
            if key not in ("_id", "_version", "_pending_events")
        }
        state["touchpoint_ids"] = {first.event_id, "evt-other"}
        assert app.snapshots is not None
        app.snapshots.put(
            [
                Snapshot(
                    originator_id=relationship.id,
                    originator_version=relationship.version,
                    timestamp=Snapshot.create_timestamp(),
                    topic="lifecycle.relationship:Relationship",
                    state=state,
                )
            ]
        )
    finally:
        app.close()
    fresh = Components(settings).application()
    try:
        loaded = fresh.relationship("a")
        assert not hasattr(loaded, "touchpoint_ids")
        assert (loaded.version, loaded.stage, loaded.touchpoint_count) == (
            relationship.version,
            relationship.stage,
            2,
        )
        outcome = fresh.record_batch([first, touchpoint("purchase", 3, customer="a")])
        assert outcome.statuses == ["duplicate", "recorded"]
    finally:
        fresh.close()


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    deliveries=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 12)), min_size=1, max_size=40
    ),
    batch_size=st.integers(1, 8),
)
def test_each_event_id_of_a_customer_is_recorded_once_whatever_the_batches_and_writers(
    deliveries: list[tuple[str, int]], batch_size: int
) -> None:
    # A small pool of ids makes second deliveries likely: in one batch, in a later one,
    # through the other of two writers, after a snapshot.
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(database_url=f"sqlite:///{directory}/lifecycle.db", snapshot_interval=3)
        writers = [Components(settings).application() for _ in range(2)]
        try:
            for number, start in enumerate(range(0, len(deliveries), batch_size)):
                writers[number % 2].record_batch(
                    [
                        touchpoint("inquiry", n, customer=customer, event_id=f"e-{n}")
                        for customer, n in deliveries[start : start + batch_size]
                    ]
                )
            recorded = Counter(
                (event.customer_id, event.event_id)
                for customer in {customer for customer, _ in deliveries}
                for event in writers[0].history(customer)
                if isinstance(event, Relationship.TouchpointRecorded)
            )
            assert recorded == Counter({(c, f"e-{n}") for c, n in deliveries})
        finally:
            for writer in writers:
                writer.close()


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


def test_the_log_reads_as_the_librarys_recorder_reads_it(app: LifecycleApplication) -> None:
    from eventsourcing.postgres import PostgresApplicationRecorder
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    from lifecycle.service.application import RELATIONSHIP_STARTED_TOPICS

    app.record_batch(
        [touchpoint("purchase", n, customer=f"c{n % 3}", amount="5") for n in range(9)]
    )
    recorder = app.recorder
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


def test_a_shard_of_the_log_holds_the_events_of_its_customers_only(
    app: LifecycleApplication,
) -> None:
    from projections.shards import Shard, shard_of

    app.record_batch([touchpoint("purchase", n, customer=f"c{n}", amount="5") for n in range(40)])
    recorder = app.recorder
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
