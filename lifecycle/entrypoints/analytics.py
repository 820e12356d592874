"""The analytics operations as commands (and the demo) run them (Contract 8): each reads
the purchase-pattern read model, brought up to date first, hands its rows to the
analytics service, and keeps what comes back where it belongs: a fit in the log (through
the application) and its predictions in the predictions view; a validation in that view
only (it records no fit).

numpy and scipy are imported here, so only by the commands that use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from lifecycle.analytics.btyd import parameters_dict
from lifecycle.analytics.service import (
    ModelsFitted,
    PurchaseHistory,
    Validation,
    fit_models,
    predict,
    validate,
)
from lifecycle.domain.analytics import BG_NBD, GAMMA_GAMMA
from lifecycle.entrypoints.bootstrap import Components
from projections.predictions import CustomerFigures, FitInForce
from projections.purchases import Purchases, PurchasesView
from projections.service import catch_up
from projections.wiring import close_view


@dataclass(frozen=True)
class FitRecorded:
    models: ModelsFitted
    fit: FitInForce


def purchase_histories(components: Components) -> tuple[list[PurchaseHistory], int | None]:
    """Every customer's purchase days from the purchase-pattern read model, caught up
    with the log first, and the log position they reflect."""
    catch_up(components, [Purchases.name])
    view: PurchasesView = components.open_view(Purchases)  # type: ignore[assignment]
    try:
        return view.histories()
    finally:
        close_view(view)


def fit(components: Components, *, observation_end: date, period_days: int) -> FitRecorded:
    """Fit both models, record the fit in the log, and make its predictions the ones
    the read side serves."""
    histories, data_position = purchase_histories(components)
    models = fit_models(
        histories,
        observation_end=observation_end,
        period_days=period_days,
        data_position=data_position,
    )
    app = components.application()
    try:
        position, recorded_at = app.record_model_fits(models.model_fits())
    finally:
        app.close()
    fit_in_force = FitInForce(
        position=position,
        data_position=data_position,
        observation_end=observation_end,
        period_days=period_days,
        recorded_at=recorded_at,
        parameters={
            BG_NBD: parameters_dict(models.bg_nbd.parameters),
            GAMMA_GAMMA: parameters_dict(models.gamma_gamma.parameters),
        },
    )
    customers = models.customers
    predicted = predict(
        models.bg_nbd.parameters,
        models.gamma_gamma.parameters,
        customers.frequency,
        customers.recency,
        customers.age,
        customers.monetary_value,
        period_days=period_days,
    )
    view = components.predictions_view()
    try:
        view.replace(
            fit_in_force,
            (
                CustomerFigures(
                    customer_id=customer_id,
                    frequency=int(customers.frequency[i]),
                    recency=int(customers.recency[i]),
                    age=int(customers.age[i]),
                    monetary_value=float(customers.monetary_value[i]),
                    p_alive=float(predicted.p_alive[i]),
                    expected_average_value=float(predicted.expected_average_value[i]),
                )
                for i, customer_id in enumerate(customers.ids)
            ),
        )
    finally:
        close_view(view)
    return FitRecorded(models, fit_in_force)


def run_validation(
    components: Components,
    *,
    calibration_end: date,
    holdout_end: date,
    period_days: int,
    run_at: datetime,
) -> Validation:
    """Fit on the calibration period, compare with the holdout, and keep the result for
    the report (no fit is recorded)."""
    histories, _ = purchase_histories(components)
    validation = validate(
        histories,
        calibration_end=calibration_end,
        holdout_end=holdout_end,
        period_days=period_days,
    )
    view = components.predictions_view()
    try:
        view.save_validation(validation.as_json(), run_at)
    finally:
        close_view(view)
    return validation
