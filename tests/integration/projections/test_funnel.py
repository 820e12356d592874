"""Stage transitions and the funnel, against a history worked out by hand."""

from __future__ import annotations

import pytest

from lifecycle.domain.vocabulary import Stage
from lifecycle.service.application import LifecycleApplication
from projections.funnel import FunnelView
from tests.integration.projections.conftest import History, Project, day


def _five_relationships(history: History, app: LifecycleApplication) -> None:
    history("a", "purchase", 0, amount="1")  # -> awareness
    history("a", "purchase", 10, amount="1")  # -> expansion
    history("a", "renewal", 100)  # -> commitment
    history("b", "purchase", 0, amount="1")  # -> awareness
    history("b", "cancellation", 20, reason="price")  # -> dissolution
    history("b", "trial", 50)  # reactivation -> exploration, cycle 2
    history("c", "inquiry", 0)
    history("d", "purchase", 0, amount="1")
    app.change_stage("d", Stage.DISSOLUTION, actor="ana", reason="fraud", at=day(5))
    history("e", "purchase", 0, amount="1")
    app.sweep(day(400))  # c and e: no touchpoint for 400 days


@pytest.fixture
def funnel(history: History, project: Project, app: LifecycleApplication) -> FunnelView:
    """The funnel projected from the five relationships."""
    _five_relationships(history, app)
    view: FunnelView = project(["funnel"])["funnel"]
    return view


def test_counts_stages_entries_and_conversion_between_consecutive_stages(
    funnel: FunnelView,
) -> None:
    figures, _ = funnel.figures()

    stages = {s.stage: (s.current, s.entered) for s in figures.stages}
    assert stages == {
        "exploration": (1, 6),
        "awareness": (0, 4),
        "expansion": (0, 1),
        "commitment": (1, 1),
        "dissolution": (3, 4),
    }
    assert [(c.from_stage, c.to_stage, c.converted, c.entered) for c in figures.conversions] == [
        ("exploration", "awareness", 4, 6),
        ("awareness", "expansion", 1, 4),
        ("expansion", "commitment", 1, 1),
    ]
    assert figures.relationships == 5


def test_records_every_transition_with_its_rule_including_reactivation(funnel: FunnelView) -> None:
    figures, _ = funnel.figures()

    assert sorted((t.from_stage, t.to_stage, t.rule, t.count) for t in figures.transitions) == [
        ("awareness", "dissolution", "cancelled", 1),
        ("awareness", "dissolution", "inactivity", 1),
        ("awareness", "dissolution", "manual", 1),
        ("awareness", "expansion", "repeat-purchase", 1),
        ("dissolution", "exploration", "reactivation", 1),
        ("expansion", "commitment", "renewal", 1),
        ("exploration", "awareness", "first-purchase", 4),
        ("exploration", "dissolution", "inactivity", 1),
        ("started", "exploration", "started", 5),
    ]


def test_median_days_in_stage_are_over_completed_stays(funnel: FunnelView) -> None:
    figures, _ = funnel.figures()

    medians = {s.stage: (s.median_days, s.completed_stays) for s in figures.stages}
    assert medians == {
        "exploration": (0, 5),  # 0, 0, 0, 0, 400
        "awareness": (15, 4),  # 5, 10, 20, 400
        "expansion": (90, 1),
        "commitment": (None, 0),
        "dissolution": (30, 1),
    }


def test_dissolution_reasons_name_the_rule_and_the_reason_given(funnel: FunnelView) -> None:
    figures, _ = funnel.figures()

    assert sorted((d.rule, d.reason, d.count) for d in figures.dissolutions) == [
        ("cancelled", "price", 1),
        ("inactivity", "", 2),
        ("manual", "fraud", 1),
    ]


def test_a_change_taking_effect_before_the_last_one_counts_a_stay_of_zero_days(
    history: History, project: Project
) -> None:
    history("f", "purchase", 10, amount="1")
    history("f", "purchase", 5, amount="1")  # late: repeat purchase effective on day 5

    figures, _ = project(["funnel"])["funnel"].figures()

    awareness = next(s for s in figures.stages if s.stage == "awareness")
    assert (awareness.median_days, awareness.completed_stays) == (0, 1)


def test_relationships_in_each_stage_are_counted_as_they_move(funnel: FunnelView) -> None:
    counted = funnel.fetch("SELECT stage, count FROM {stages}")
    grouped = funnel.fetch("SELECT stage, COUNT(*) AS n FROM {relationships} GROUP BY stage")
    assert sorted((r["stage"], r["count"]) for r in counted) == sorted(
        (r["stage"], r["n"]) for r in grouped
    )


def test_a_store_projected_before_stages_were_counted_is_counted_when_opened(
    funnel: FunnelView, project: Project
) -> None:
    before, position = funnel.figures()
    with funnel.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute(f"DROP TABLE {funnel.table('stages')}")

    after = project(["funnel"])["funnel"].figures()

    assert after == (before, position)


def test_the_figures_are_read_once_per_position(
    funnel: FunnelView, history: History, project: Project
) -> None:
    first, _ = funnel.figures()

    again, _ = funnel.figures()
    history("g", "inquiry", 401)
    project(["funnel"])
    moved, _ = funnel.figures()

    assert again is first
    assert (first.relationships, moved.relationships) == (5, 6)
