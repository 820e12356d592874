"""The analytics models' stream: what a fit must hold to be recorded, and what the
stream remembers of it."""

from __future__ import annotations

import dataclasses
import math
from datetime import date

import pytest

from lifecycle.domain.analytics import (
    ANALYTICS_STREAM,
    BG_NBD,
    AnalyticsModels,
    InvalidModelFit,
    ModelFit,
)
from lifecycle.domain.streams import stream_id

FIT = ModelFit(
    model=BG_NBD,
    parameters={"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    standard_errors={"r": 0.01, "alpha": 0.2, "a": 0.05, "b": None},
    log_likelihood=-9582.4,
    customers=2357,
    converged=True,
    iterations=17,
    message="converged",
    observation_end=date(2024, 6, 30),
    period_days=7,
    data_position=1234,
)


def test_the_stream_has_its_fixed_id() -> None:
    assert AnalyticsModels().id == stream_id(ANALYTICS_STREAM)


def test_a_recorded_fit_is_the_latest_of_its_model() -> None:
    models = AnalyticsModels()
    models.record_fit(FIT)
    later = dataclasses.replace(FIT, observation_end=date(2024, 12, 31), data_position=2000)
    models.record_fit(later)

    assert models.latest == {BG_NBD: later}
    events = models.collect_events()
    assert [type(e).__name__ for e in events] == [
        "AnalyticsModelsStarted",
        "ModelFitted",
        "ModelFitted",
    ]
    assert events[1].observation_end == "2024-06-30"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "change",
    [
        {"model": "pareto_nbd"},
        {"parameters": {"r": 0.243, "alpha": 4.414, "a": 0.793}},
        {"parameters": {"r": -0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}},
        {"parameters": {"r": math.inf, "alpha": 4.414, "a": 0.793, "b": 2.426}},
        {"standard_errors": {"r": math.nan, "alpha": 0.2, "a": 0.05, "b": None}},
        {"log_likelihood": math.nan},
        {"customers": 0},
        {"period_days": 0},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_fit_that_is_not_a_fit_is_refused(change: dict[str, object]) -> None:
    models = AnalyticsModels()
    with pytest.raises(InvalidModelFit):
        models.record_fit(dataclasses.replace(FIT, **change))  # type: ignore[arg-type]
    assert models.latest == {}
