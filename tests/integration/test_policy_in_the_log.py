"""The policy in the log (Contract 6), through the application on SQLite and PostgreSQL:
the first recording adopts one, every process decides with the adopted version, a
write decided under a superseded version is decided again, and an adoption
re-evaluates every open relationship once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lifecycle.domain.errors import PolicyMismatch
from lifecycle.domain.policy import PolicyText
from lifecycle.domain.relationship import POLICY_ADOPTION_TRIGGER, Relationship
from lifecycle.domain.vocabulary import Stage
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.service.application import STAGE_CHANGED_TOPICS, LifecycleApplication
from lifecycle.settings import Settings
from tests.builders import DAY_ZERO, touchpoint

V2 = PolicyText.parse("version = 2\n[rules.engaged]\ntouchpoints = 1\n", "v2.toml")
V3 = PolicyText.parse("version = 3\n[rules.engaged]\ntouchpoints = 2\n", "v3.toml")
ADOPTED_AT = DAY_ZERO + timedelta(days=30)

Opened = Callable[..., LifecycleApplication]


@pytest.fixture
def open_app(settings: Settings) -> Iterator[Opened]:
    """Another process on the same store: its own application (and policy file)."""
    opened: list[LifecycleApplication] = []

    def open_one(policy_file: Path | None = None) -> LifecycleApplication:
        app = Components(settings.model_copy(update={"policy_file": policy_file})).application()
        opened.append(app)
        return app

    yield open_one
    for app in opened:
        app.close()


def stage_changes(app: LifecycleApplication) -> list[Any]:
    notifications = app.recorder.select_notifications(1, 10_000, topics=STAGE_CHANGED_TOPICS)
    return [app.mapper.to_domain_event(n) for n in notifications]


def inquiries(app: LifecycleApplication, *customers: str, day: float = 0) -> None:
    app.record_batch([touchpoint("inquiry", day, customer=c) for c in customers])


def test_the_first_batch_recorded_adopts_the_built_in_policy(app: LifecycleApplication) -> None:
    assert app.policy_stream() is None
    inquiries(app, "c1")
    stream = app.policy_stream()
    assert stream is not None
    assert [(a.version, a.sha256) for a in stream.adoptions] == [(1, PolicyText.default().sha256)]
    assert stream.adopted.actor == "lifecycle"


def test_reading_adopts_nothing(app: LifecycleApplication, open_app: Opened) -> None:
    inquiries(app, "c1")
    reader = open_app()
    reader.relationship("c1")
    reader.history("c1")
    assert len(reader.policy_adoptions()) == 1


def test_a_store_without_a_policy_adopts_the_policy_file(open_app: Opened, tmp_path: Path) -> None:
    file = tmp_path / "v2.toml"
    file.write_text(V2.text)
    app = open_app(file)
    assert app.follow_policy().version == 2
    inquiries(app, "c1")
    assert app.relationship("c1").stage is Stage.AWARENESS


def test_a_process_with_another_policy_file_than_the_adopted_one_is_refused(
    app: LifecycleApplication, open_app: Opened, tmp_path: Path
) -> None:
    app.follow_policy()
    file = tmp_path / "v2.toml"
    file.write_text(V2.text)
    with pytest.raises(PolicyMismatch, match="version 2, but version 1 is adopted"):
        open_app(file).follow_policy()


def test_a_process_with_the_adopted_text_under_another_name_is_accepted(
    app: LifecycleApplication, open_app: Opened, tmp_path: Path
) -> None:
    app.follow_policy()
    file = tmp_path / "copy.toml"
    file.write_text(PolicyText.default().text)
    assert open_app(file).follow_policy().version == 1


def test_a_batch_decided_under_a_superseded_version_is_decided_again(
    app: LifecycleApplication, open_app: Opened
) -> None:
    inquiries(app, "c1")
    adopter = open_app()
    insert = app.recorder.insert_events

    def adopt_first(*args: Any, **kwargs: Any) -> Any:
        # The batch has been decided under version 1; version 2 is adopted before it is
        # written (by another process).
        if adopter.policy_stream() is not None and len(adopter.policy_adoptions()) == 1:
            adopter.adopt_policy(V2, actor="ana", reason="engage at once", at=ADOPTED_AT)
        return insert(*args, **kwargs)

    app.recorder.insert_events = adopt_first  # type: ignore[method-assign]
    inquiries(app, "c2", day=1)

    [change] = [c for c in stage_changes(app) if c.customer_id == "c2"]
    assert (change.rule, change.policy_version) == ("engaged", 2)
    assert app.policy.version == 2


def test_the_sweep_and_manual_changes_name_the_version_in_force(
    app: LifecycleApplication, open_app: Opened
) -> None:
    inquiries(app, "c1", "c2")
    quick = PolicyText.parse("version = 2\n[rules.inactivity]\ndays = 10\n", "quick.toml")
    open_app().adopt_policy(quick, actor="ana", reason="impatient", at=ADOPTED_AT)

    assert app.sweep(DAY_ZERO + timedelta(days=20)).dissolved == 2
    app.change_stage("c1", Stage.EXPLORATION, actor="ana", reason="back", at=ADOPTED_AT)

    assert [(c.rule, c.policy_version) for c in stage_changes(app)] == [
        ("inactivity", 2),
        ("inactivity", 2),
        ("manual", 2),
    ]


def test_adoption_reevaluates_every_open_relationship_once(app: LifecycleApplication) -> None:
    inquiries(app, *(f"c{n}" for n in range(7)))
    app.record_batch([touchpoint("cancellation", 1, customer="c0")])

    outcome = app.adopt_policy(V2, actor="ana", reason="engage", at=ADOPTED_AT, batch_size=2)

    adoption_changes = [c for c in stage_changes(app) if c.triggered_by == POLICY_ADOPTION_TRIGGER]
    assert (outcome.recorded, outcome.reevaluated, outcome.moved) == (True, 7, 6)
    assert sorted(c.customer_id for c in adoption_changes) == [f"c{n}" for n in range(1, 7)]
    assert {(c.to_stage, c.policy_version, c.effective_at) for c in adoption_changes} == {
        ("awareness", 2, ADOPTED_AT)
    }


def test_adopting_again_changes_nothing(app: LifecycleApplication) -> None:
    inquiries(app, "c1", "c2")
    app.adopt_policy(V2, actor="ana", reason="engage", at=ADOPTED_AT)
    head = app.recorder.max_notification_id()

    again = app.adopt_policy(V2, actor="ben", reason="again", at=ADOPTED_AT + timedelta(1))

    assert (again.recorded, again.reevaluated, again.moved) == (False, 0, 0)
    assert again.resumed_after is not None
    assert app.recorder.max_notification_id() == head


def test_an_adoption_stopped_midway_resumes_after_its_last_batch(
    app: LifecycleApplication, open_app: Opened
) -> None:
    inquiries(app, *(f"c{n}" for n in range(6)))
    calls = 0
    save = app._save_with_tracking

    def fail_on_the_second_batch(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        save(*args, **kwargs)

    app._save_with_tracking = fail_on_the_second_batch  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        app.adopt_policy(V2, actor="ana", reason="engage", at=ADOPTED_AT, batch_size=2)

    resumed = open_app().adopt_policy(V2, actor="ana", reason="engage", at=ADOPTED_AT)

    assert (resumed.recorded, resumed.reevaluated, resumed.moved) == (False, 4, 4)
    moved = [c.customer_id for c in stage_changes(app) if c.triggered_by == POLICY_ADOPTION_TRIGGER]
    assert sorted(moved) == [f"c{n}" for n in range(6)]


def test_a_reevaluation_stops_when_a_newer_version_is_adopted_meanwhile(
    app: LifecycleApplication, open_app: Opened
) -> None:
    inquiries(app, *(f"c{n}" for n in range(6)))
    newer = open_app()
    save = app._save_with_tracking

    def adopt_v3_after_the_first_batch(*args: Any, **kwargs: Any) -> None:
        save(*args, **kwargs)
        if len(newer.policy_adoptions()) == 2:
            newer.adopt_policy(V3, actor="ben", reason="less eager", at=ADOPTED_AT)

    app._save_with_tracking = adopt_v3_after_the_first_batch  # type: ignore[method-assign]
    outcome = app.adopt_policy(V2, actor="ana", reason="engage", at=ADOPTED_AT, batch_size=2)

    assert (outcome.reevaluated, outcome.superseded_by) == (2, 3)
    assert {c.policy_version for c in stage_changes(app)} == {2}


def test_a_relationship_started_after_the_adoption_is_decided_by_its_recorder(
    app: LifecycleApplication, open_app: Opened
) -> None:
    inquiries(app, "c1")
    adopter = open_app()
    adopter.adopt_policy(V2, actor="ana", reason="engage", at=ADOPTED_AT)
    inquiries(app, "c2", day=31)

    changes = {c.customer_id: (c.triggered_by, c.policy_version) for c in stage_changes(app)}
    assert changes["c1"] == (POLICY_ADOPTION_TRIGGER, 2)
    assert changes["c2"][1] == 2
    assert changes["c2"][0] != POLICY_ADOPTION_TRIGGER


def test_stage_changes_of_the_adoption_chain_onto_the_relationship(
    app: LifecycleApplication,
) -> None:
    inquiries(app, "c1")
    app.adopt_policy(V2, actor="ana", reason="engage", at=ADOPTED_AT)
    history = app.history("c1")
    assert isinstance(history[-1], Relationship.StageChanged)
    assert history[-1].previous_hash == history[-2].hash  # type: ignore[attr-defined]
