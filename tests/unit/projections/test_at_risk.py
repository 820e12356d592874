"""The at-risk flags as ``projections.at_risk`` defines them, judged on a summary's
values without any store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lifecycle.settings import Settings
from projections.at_risk import FLAGS, JUDGED_ON, FlagsAt, limits_of

AS_OF = datetime(2025, 1, 1, tzinfo=UTC)


def flags(
    stage: str = "commitment", limits: dict[str, Any] | None = None, **values: Any
) -> list[str]:
    row = [stage if name == "stage" else values.get(name) for name in JUDGED_ON]
    return FlagsAt(AS_OF, limits=limits).reader(JUDGED_ON)(row)


def test_a_summary_with_nothing_known_raises_no_flag() -> None:
    assert flags() == []


def test_a_latest_score_of_six_is_low_and_seven_is_not() -> None:
    assert flags(latest_survey_score=6) == ["low_survey_score"]
    assert flags(latest_survey_score=7) == []


def test_a_touchpoint_exactly_90_days_ago_is_not_yet_inactivity() -> None:
    assert flags(last_touchpoint_at=AS_OF - timedelta(days=90)) == []
    assert flags(last_touchpoint_at=AS_OF - timedelta(days=90, seconds=1)) == [
        "no_touchpoint_90_days"
    ]


def test_a_dissolved_relationship_carries_no_flags() -> None:
    assert flags("dissolution", latest_survey_score=0) == []


def test_flags_are_listed_in_the_order_of_their_definitions() -> None:
    raised = flags(
        oldest_open_complaint_at=AS_OF - timedelta(days=15),
        latest_survey_score=1,
        last_touchpoint_at=AS_OF - timedelta(days=100),
        p_alive=0.01,
    )

    assert raised == list(FLAGS)


def test_a_p_alive_below_the_bound_is_likely_lapsed() -> None:
    assert flags(p_alive=0.29) == ["likely_lapsed"]
    assert flags(p_alive=0.3) == []


def test_without_a_fitted_model_nobody_is_likely_lapsed() -> None:
    assert flags(p_alive=None) == []


def test_the_p_alive_bound_is_the_setting() -> None:
    limits = limits_of(Settings(p_alive_at_risk=0.5))

    assert flags(limits=limits, p_alive=0.45) == ["likely_lapsed"]
    assert flags(limits=limits, p_alive=0.5) == []
