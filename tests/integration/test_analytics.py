"""Contract 8 on a real store (SQLite and PostgreSQL): fits read the purchase-pattern
read model, are recorded in the log as ``ModelFitted`` events that chain, seal, verify
and export like every other event, and their predictions are what the read side serves;
purchases after the observation end change nothing; a validation records no fit."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from lifecycle.analytics import DEFAULT_HORIZON_DAYS, DEFAULT_MONTHLY_DISCOUNT
from lifecycle.analytics.btyd import BgNbd
from lifecycle.audit.export import EVENTS_FILE, export_events, verify_export
from lifecycle.audit.verify import TamperingDetected
from lifecycle.domain.analytics import ANALYTICS_STREAM, BG_NBD, GAMMA_GAMMA
from lifecycle.domain.clock import utc_now
from lifecycle.domain.purchases import purchase_pattern
from lifecycle.domain.streams import stream_id
from lifecycle.entrypoints.analytics import FitRecorded, fit, purchase_histories, run_validation
from lifecycle.entrypoints.bootstrap import Components
from projections.predictions import CustomerFigures, PredictionsView, forecast
from projections.wiring import close_view
from tests.analytics_support import (
    START,
    purchase_timelines,
    purchase_touchpoints,
    weeks_after_start,
)
from tests.integration.audit_support import AuditedStore, audited_store

TRUTH = BgNbd(r=0.8, alpha=4.0, a=0.6, b=2.5)
OBSERVATION_END = weeks_after_start(52).date()


@pytest.fixture
def store(database_url: str) -> Iterator[AuditedStore]:
    """Three hundred customers buying by the BG/NBD process for a year and a half."""
    rng = np.random.default_rng(8)
    with audited_store(database_url) as audited:
        timelines = purchase_timelines(rng, 300, TRUTH, weeks=78)
        audited.app.record_batch(purchase_touchpoints(timelines, rng))
        yield audited


@pytest.fixture
def components(store: AuditedStore) -> Components:
    return Components(store.settings)


@pytest.fixture
def fitted(components: Components) -> FitRecorded:
    return fit(components, observation_end=OBSERVATION_END, period_days=7)


def figures(components: Components) -> list[CustomerFigures]:
    view = components.predictions_view()
    try:
        return sorted(view.every_customer(), key=lambda c: c.customer_id)
    finally:
        close_view(view)


def test_a_fit_is_recorded_as_one_model_fitted_per_model(
    store: AuditedStore, fitted: FitRecorded
) -> None:
    models = store.app.analytics_models()

    assert models is not None
    assert set(models.latest) == {BG_NBD, GAMMA_GAMMA}
    recorded = models.latest[BG_NBD]
    assert dict(recorded.parameters) == fitted.fit.parameters[BG_NBD]
    assert recorded.observation_end == OBSERVATION_END
    assert recorded.period_days == 7
    assert recorded.customers == fitted.models.bg_nbd.customers
    assert recorded.converged
    assert fitted.fit.position == store.app.recorder.max_notification_id()


def test_the_fit_names_the_log_position_of_the_purchase_patterns_it_read(
    store: AuditedStore, components: Components
) -> None:
    head = store.app.recorder.max_notification_id()

    recorded = fit(components, observation_end=OBSERVATION_END, period_days=7)

    models = store.app.analytics_models()
    assert models is not None
    assert recorded.fit.data_position == head
    assert {m.data_position for m in models.latest.values()} == {head}


def test_purchases_after_the_observation_end_change_nothing(
    store: AuditedStore, components: Components, fitted: FitRecorded
) -> None:
    before = figures(components)
    later = weeks_after_start(53)
    rng = np.random.default_rng(9)
    store.app.record_batch(
        purchase_touchpoints({"cust-00001": [53.0, 60.0], "newcomer": [53.0, 54.0]}, rng)
    )
    assert later.date() > OBSERVATION_END

    again = fit(components, observation_end=OBSERVATION_END, period_days=7)

    assert again.fit.position > fitted.fit.position
    assert again.fit.parameters == fitted.fit.parameters
    assert again.models.bg_nbd.log_likelihood == fitted.models.bg_nbd.log_likelihood
    assert again.models.bg_nbd.customers == fitted.models.bg_nbd.customers
    assert figures(components) == before


def test_the_predictions_served_are_those_of_the_latest_fit(
    components: Components, fitted: FitRecorded
) -> None:
    later = fit(components, observation_end=OBSERVATION_END + timedelta(days=91), period_days=7)

    view = components.predictions_view()
    try:
        in_force = view.fit_in_force()
        assert in_force is not None
        assert in_force == later.fit
        assert not view.replace(fitted.fit, [])  # an earlier fit never replaces a later one
        assert view.fit_in_force() == later.fit
    finally:
        close_view(view)


def test_each_customer_is_predicted_from_their_pattern_at_the_observation_end(
    components: Components, fitted: FitRecorded
) -> None:
    histories = dict(purchase_histories(components)[0])
    predicted = {c.customer_id: c for c in figures(components)}

    bought = {c for c, days in histories.items() if min(days) <= OBSERVATION_END.toordinal()}
    assert set(predicted) == bought
    for customer_id in sorted(bought)[:50]:
        pattern = purchase_pattern(histories[customer_id], OBSERVATION_END)
        figure = predicted[customer_id]
        assert (figure.frequency, figure.recency, figure.age) == (
            pattern.frequency,
            pattern.recency,
            pattern.T,
        )
        assert 0 < figure.p_alive <= 1
        assert (figure.p_alive == 1) == (figure.frequency == 0)


def test_the_fit_verifies_and_exports_with_every_other_event(
    store: AuditedStore, fitted: FitRecorded, tmp_path: Path
) -> None:
    store.seal()
    report = store.verify()
    assert report.sealed_events == report.events

    out = tmp_path / "export"
    export_events(store.app, store.ledger, store.key, out)
    lines = [json.loads(line) for line in (out / EVENTS_FILE).read_text().splitlines()]
    fits = [line for line in lines if line["relationship_id"] == str(stream_id(ANALYTICS_STREAM))]

    assert [(f["type"], f["customer_id"]) for f in fits] == [
        ("AnalyticsModelsStarted", None),
        ("ModelFitted", None),
        ("ModelFitted", None),
    ]
    assert fits[1]["data"]["parameters"] == fitted.fit.parameters[BG_NBD]
    assert fits[1]["data"]["observation_end"] == OBSERVATION_END.isoformat()
    assert fits[1]["occurred_at"] == fits[1]["recorded_at"]  # a fit has no business time
    assert verify_export(out, store.key).events == len(lines)


def test_an_exported_fit_with_an_edited_parameter_fails_verification(
    store: AuditedStore, fitted: FitRecorded, tmp_path: Path
) -> None:
    store.seal()
    out = tmp_path / "export"
    export_events(store.app, store.ledger, store.key, out)
    lines = [json.loads(line) for line in (out / EVENTS_FILE).read_text().splitlines()]
    edited = next(line for line in lines if line["type"] == "ModelFitted")
    edited["data"]["parameters"]["r"] *= 1.01
    (out / EVENTS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))

    with pytest.raises(TamperingDetected):
        verify_export(out, store.key)


def test_a_validation_is_kept_for_the_report_and_records_no_fit(
    store: AuditedStore, components: Components
) -> None:
    head = store.app.recorder.max_notification_id()

    validation = run_validation(
        components,
        calibration_end=OBSERVATION_END,
        holdout_end=weeks_after_start(78).date(),
        period_days=7,
        run_at=utc_now(),
    )

    assert store.app.recorder.max_notification_id() == head
    assert store.app.analytics_models() is None
    view: PredictionsView = components.predictions_view()
    try:
        assert view.latest_validation() == validation.as_json()
        assert view.fit_in_force() is None
    finally:
        close_view(view)


def test_a_validation_compares_the_holdout_with_what_was_recorded_there(
    components: Components,
) -> None:
    holdout_end = weeks_after_start(78).date()
    histories, _ = purchase_histories(components)

    validation = run_validation(
        components,
        calibration_end=OBSERVATION_END,
        holdout_end=holdout_end,
        period_days=7,
        run_at=utc_now(),
    )

    calibration, end = OBSERVATION_END.toordinal(), holdout_end.toordinal()
    actual = sum(
        1
        for _, days in histories
        if min(days) <= calibration
        for day in days
        if calibration < day <= end
    )
    assert validation.actual_total == actual
    # The BG/NBD the population was drawn from: the holdout total within a quarter.
    assert validation.predicted_total == pytest.approx(actual, rel=0.25)
    weeks = validation.tracking
    assert weeks[0].week_end == date.fromordinal(min(min(d) for _, d in histories) + 7)
    assert weeks[-1].week_end == holdout_end
    assert [w.actual for w in weeks] == sorted(w.actual for w in weeks)
    assert weeks[-1].actual == sum(
        sum(1 for day in days if min(days) < day <= end)
        for _, days in histories
        if min(days) <= calibration
    )
    assert START.date() <= weeks[0].week_end


def test_a_replaced_fit_leaves_no_figures_of_the_previous_one(
    components: Components, fitted: FitRecorded
) -> None:
    later = dataclasses.replace(fitted.fit, position=fitted.fit.position + 1)
    view = components.predictions_view()
    try:
        assert view.replace(later, [])
        assert view.every_customer() == []
    finally:
        close_view(view)


def test_the_predictions_kept_with_the_fit_are_those_computed_on_request(
    components: Components, fitted: FitRecorded
) -> None:
    kept = figures(components)[:40]

    computed = forecast(
        fitted.fit,
        kept,
        horizon_days=DEFAULT_HORIZON_DAYS,
        monthly_discount=DEFAULT_MONTHLY_DISCOUNT,
    )

    for figure, predicted in zip(kept, computed, strict=True):
        assert predicted.p_alive == pytest.approx(figure.p_alive, rel=1e-12)
        assert predicted.expected_purchases == pytest.approx(figure.expected_purchases, rel=1e-12)
        assert predicted.clv == pytest.approx(figure.clv, rel=1e-12)
        assert predicted.expected_average_value == pytest.approx(
            figure.expected_average_value, rel=1e-12
        )
