"""The at-risk flags as ``projections.at_risk`` defines them, judged on a summary's
values without any store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from projections.at_risk import FLAGS, JUDGED_ON, FlagsAt

AS_OF = datetime(2025, 1, 1, tzinfo=UTC)


def flags(stage: str = "commitment", **values: Any) -> list[str]:
    row = [stage if name == "stage" else values.get(name) for name in JUDGED_ON]
    return FlagsAt(AS_OF).reader(JUDGED_ON)(row)


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
    )

    assert raised == list(FLAGS)
