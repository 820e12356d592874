"""The relationship summary, against histories worked out by hand."""

from __future__ import annotations

from decimal import Decimal

from lifecycle.service.application import LifecycleApplication
from tests.integration.projections.conftest import History, Project, day


def test_counts_touchpoints_by_kind_and_phase_with_purchases_revenue_and_surveys(
    history: History, project: Project
) -> None:
    history("c1", "inquiry", 0)
    history("c1", "purchase", 1, channel="web", amount="10.50")
    history("c1", "purchase", 2, channel="web", amount="4.50")
    history("c1", "purchase", 2, channel="phone", amount="3", currency="USD")
    history("c1", "survey", 3, score=9)
    history("c1", "survey", 4, score=5)

    row, _ = project(["summary"])["summary"].summary("c1")

    assert row.touchpoints == 6
    assert row.kind_counts == {"inquiry": 1, "purchase": 3, "survey": 2}
    assert row.phase_counts == {
        "sales_and_marketing": 1,
        "delivery": 3,
        "service_and_follow_up": 2,
    }
    assert (row.first_touchpoint_at, row.last_touchpoint_at) == (day(0), day(4))
    assert row.purchases == 3
    assert row.revenue == {"EUR": Decimal("15.00"), "USD": Decimal("3")}
    assert (row.survey_count, row.latest_survey_score, row.mean_survey_score) == (2, 5, 7.0)
    assert (row.stage, row.cycle, row.stage_since) == ("expansion", 1, day(2))


def test_late_touchpoints_move_first_touchpoint_but_not_the_latest_survey(
    history: History, project: Project
) -> None:
    history("c1", "survey", 10, score=3)
    history("c1", "survey", 5, score=9)

    row, _ = project(["summary"])["summary"].summary("c1")

    assert (row.first_touchpoint_at, row.last_touchpoint_at) == (day(5), day(10))
    assert row.latest_survey_score == 3
    assert row.started_at == day(10)


def test_reactivation_starts_a_new_cycle_and_the_version_follows_the_relationship(
    history: History, project: Project, app: LifecycleApplication
) -> None:
    history("c2", "purchase", 0, amount="5")
    history("c2", "cancellation", 5, reason="price")
    history("c2", "purchase", 30, amount="7")

    row, position = project(["summary"])["summary"].summary("c2")

    assert (row.stage, row.cycle, row.stage_since) == ("awareness", 2, day(30))
    assert row.version == app.relationship("c2").version
    assert position == app.recorder.max_notification_id()


def test_at_risk_flags_are_judged_at_the_time_asked(history: History, project: Project) -> None:
    history("quiet", "purchase", 0, amount="5")
    history("unhappy", "complaint", 100, complaint_id="k1")
    history("unhappy", "survey", 190, score=4)
    history("gone", "complaint", 0, complaint_id="k2")
    history("gone", "cancellation", 1)
    history("settled", "complaint_resolved", 5, complaint_id="k9")
    history("settled", "complaint", 4, complaint_id="k9")
    history("settled", "community", 195)

    summary = project(["summary"])["summary"]
    flags = {
        c: summary.summary(c)[0].flags(day(200)) for c in ("quiet", "unhappy", "gone", "settled")
    }

    assert flags == {
        "quiet": ["no_touchpoint_90_days"],
        "unhappy": ["low_survey_score", "complaint_open_14_days"],
        "gone": [],
        "settled": [],
    }
    assert summary.summary("settled")[0].open_complaints == {}
    assert summary.summary("unhappy")[0].flags(day(101)) == ["low_survey_score"]


def test_lists_filter_by_stage_and_flags_in_customer_order(
    history: History, project: Project
) -> None:
    history("a-quiet", "purchase", 0, amount="5")
    history("b-unhappy", "survey", 190, score=4)
    history("c-gone", "cancellation", 1)
    history("d-fine", "community", 195)
    summary = project(["summary"])["summary"]

    def ids(**filters: object) -> list[str]:
        rows, _ = summary.page(as_of=day(200), **filters)
        return [row.customer_id for row in rows]

    assert ids() == ["a-quiet", "b-unhappy", "c-gone", "d-fine"]
    assert ids(at_risk=True) == ["a-quiet", "b-unhappy"]
    assert ids(at_risk=False) == ["c-gone", "d-fine"]
    assert ids(flags=["low_survey_score"]) == ["b-unhappy"]
    assert ids(stages=["dissolution"]) == ["c-gone"]
    assert ids(stages=["exploration"], at_risk=True) == ["b-unhappy"]
    assert ids(after="b-unhappy", limit=1) == ["c-gone"]


def test_service_mode_is_the_mode_most_touchpoints_went_through(
    history: History, project: Project
) -> None:
    for n in range(3):
        history("c1", "trial", n, channel="self_service")
    history("c1", "sales_contact", 4, channel="phone")

    row, _ = project(["summary"])["summary"].summary("c1")

    assert row.service_mode == "self_service"
    assert row.service_modes == {
        "personal_assistance": 1,
        "self_service": 3,
        "automated": 0,
        "community": 0,
    }


def test_cohorts_count_customers_active_each_month_after_their_first(
    history: History, project: Project
) -> None:
    history("c1", "inquiry", 0)
    history("c1", "inquiry", 60)
    history("c2", "inquiry", 1)
    history("c3", "inquiry", 35)

    cohorts, _ = project(["summary"])["summary"].cohorts()

    assert [(c.cohort, c.customers, c.active_by_offset) for c in cohorts] == [
        ("2024-01", 2, (2, 0, 1)),
        ("2024-02", 1, (1,)),
    ]
