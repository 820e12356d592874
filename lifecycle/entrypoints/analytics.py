"""The analytics operations as commands (and the demo) run them (Contract 8): each reads
the purchase-pattern read model, brought up to date first, hands its rows to the
analytics service, and keeps what comes back where it belongs: a fit in the log (through
the application) and its predictions in the predictions view; a validation in that view
only (it records no fit).

numpy and scipy are imported here, so only by the commands that use them.
"""

from __future__ import annotations

import sys
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TextIO

from lifecycle.analytics.btyd import Fit, parameters_dict
from lifecycle.analytics.service import (
    ModelsFitted,
    PurchaseHistory,
    Validation,
    fit_models,
    predict,
    validate,
)
from lifecycle.domain.analytics import (
    BG_NBD,
    GAMMA_GAMMA,
    MODEL_TITLES,
)
from lifecycle.domain.errors import LifecycleError
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
    with closing(components.application()) as app:
        position, recorded_at = app.record_model_fits(models.model_fits())
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
                    expected_purchases=float(predicted.expected_purchases[i]),
                    clv=float(predicted.clv[i]),
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


def describe_fit(fit: Fit[Any]) -> str:
    """One line: the parameters (± standard error), the log-likelihood, convergence."""
    parts = []
    for name, value in parameters_dict(fit.parameters).items():
        error = fit.standard_errors.get(name)
        parts.append(f"{name} {value:.4g}" + (f" (± {error:.2g})" if error is not None else ""))
    state = (
        f"converged in {fit.iterations} iterations"
        if fit.converged
        else f"NOT converged ({fit.message})"
    )
    return (
        f"{'  '.join(parts)}   log-likelihood {fit.log_likelihood:,.2f} "
        f"over {fit.customers:,} customers, {state}"
    )


def print_fit_and_lapsed(
    components: Components, observation_end: date, out: TextIO | None = None, lapsed: int = 5
) -> None:
    """What the demo shows of the analytics: a fit, and the customers most likely lapsed."""
    out = out or sys.stdout
    try:
        recorded = fit(components, observation_end=observation_end, period_days=7)
    except LifecycleError as error:
        print(f"\nanalytics: no fit ({error})", file=out)
        return
    models = recorded.models
    print(
        f"\nanalytics: models fitted on purchases up to {observation_end.isoformat()} "
        f"(weeks; recorded at log position {recorded.fit.position}):",
        file=out,
    )
    for name, fit_of in ((BG_NBD, models.bg_nbd), (GAMMA_GAMMA, models.gamma_gamma)):
        print(f"  {MODEL_TITLES[name]:<12} {describe_fit(fit_of)}", file=out)
    view = components.predictions_view()
    try:
        likely_lapsed = view.most_likely_lapsed(lapsed)
    finally:
        close_view(view)
    print(f"  the {len(likely_lapsed)} customers most likely lapsed:", file=out)
    print(
        f"    {'customer':<14} {'p_alive':>8} {'purchase days':>14} {'days silent':>12} "
        f"{'clv 90 days':>12}",
        file=out,
    )
    for figures in likely_lapsed:
        worth = "-" if figures.clv is None else f"{figures.clv:,.2f}"
        print(
            f"    {figures.customer_id:<14} {figures.p_alive:>8.4f} "
            f"{figures.frequency + 1:>14} {figures.age - figures.recency:>12} {worth:>12}",
            file=out,
        )
