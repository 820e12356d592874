"""The analytics service (Contract 8): the models' inputs from customers' purchase days,
the fit of both models, predictions for every customer, and the calibration/holdout
validation.

It reads no store itself: the caller hands it each customer's purchase days (the
purchase-pattern read model's rows) and records the fit with the application
(``LifecycleApplication.record_model_fits``). Purchases are summarised by the one
definition the read model serves (``lifecycle.domain.purchases.purchase_pattern``), as
of the observation end, so purchases after it change nothing; recency and age are then
expressed in periods of ``period_days`` days.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from lifecycle.analytics import DEFAULT_HORIZON_DAYS, DEFAULT_MONTHLY_DISCOUNT, DEFAULT_PERIOD_DAYS
from lifecycle.analytics.btyd import (
    Array,
    BgNbd,
    Fit,
    GammaGamma,
    clv,
    expected_average_value,
    expected_purchases,
    expected_purchases_from_start,
    fit_bgnbd,
    fit_gamma_gamma,
    p_alive,
    parameters_dict,
)
from lifecycle.domain.analytics import BG_NBD, GAMMA_GAMMA, ModelFit
from lifecycle.domain.errors import LifecycleError
from lifecycle.domain.purchases import PurchaseDays, purchase_pattern

PurchaseHistory = tuple[str, PurchaseDays]
"""A customer's id and purchase days, as the purchase-pattern read model keeps them."""

MONTH_DAYS = 30
WEEK_DAYS = 7


class NotEnoughPurchases(LifecycleError):
    """The data cannot identify the models (no customer, or no repeat buyer)."""

    code = "not_enough_purchases"


class InvalidHoldout(LifecycleError):
    code = "invalid_holdout"


NDArrayBool = np.ndarray[tuple[int], np.dtype[np.bool_]]


@dataclass(frozen=True)
class Customers:
    """The models' inputs: customers with a purchase by the observation end, in the
    order given, with their purchase pattern in days (Contract 4)."""

    ids: list[str]
    frequency: Array
    recency: Array
    age: Array
    """T: days from the first purchase day to the observation end."""
    monetary_value: Array

    def __len__(self) -> int:
        return len(self.ids)

    def periods(self, period_days: int) -> tuple[Array, Array, Array]:
        """``(x, t_x, T)``: frequency, and recency and age in periods."""
        return self.frequency, self.recency / period_days, self.age / period_days

    def repeat_buyers(self) -> NDArrayBool:
        """Who the Gamma-Gamma model is fitted on: a repeat purchase, of positive value."""
        mask: NDArrayBool = (self.frequency > 0) & (self.monetary_value > 0)
        return mask


def summarise(histories: Iterable[PurchaseHistory], observation_end: date) -> Customers:
    """Each customer's purchase pattern as of ``observation_end`` (customers without a
    purchase by then are left out)."""
    ids: list[str] = []
    rows: list[tuple[int, int, int, float]] = []
    for customer_id, days in histories:
        pattern = purchase_pattern(days, observation_end)
        if pattern.frequency is None or pattern.recency is None or pattern.T is None:
            continue
        ids.append(customer_id)
        rows.append(
            (pattern.frequency, pattern.recency, pattern.T, float(pattern.monetary_value or 0))
        )
    table = np.array(rows, dtype=float).reshape(-1, 4)
    return Customers(ids, table[:, 0], table[:, 1], table[:, 2], table[:, 3])


@dataclass(frozen=True)
class ModelsFitted:
    """Both models fitted on the same customers, and what they were fitted on."""

    observation_end: date
    period_days: int
    data_position: int | None
    bg_nbd: Fit[BgNbd]
    gamma_gamma: Fit[GammaGamma]
    customers: Customers

    def model_fits(self) -> list[ModelFit]:
        """The fits as the analytics models' stream records them."""
        return [
            ModelFit(
                model=model,
                parameters=parameters_dict(fit.parameters),
                standard_errors=fit.standard_errors,
                log_likelihood=fit.log_likelihood,
                customers=fit.customers,
                converged=fit.converged,
                iterations=fit.iterations,
                message=fit.message,
                observation_end=self.observation_end,
                period_days=self.period_days,
                data_position=self.data_position,
            )
            for model, fit in ((BG_NBD, self.bg_nbd), (GAMMA_GAMMA, self.gamma_gamma))
        ]


def fit_models(
    histories: Iterable[PurchaseHistory],
    *,
    observation_end: date,
    period_days: int = DEFAULT_PERIOD_DAYS,
    data_position: int | None = None,
) -> ModelsFitted:
    """BG/NBD over every customer with a purchase by ``observation_end``; Gamma-Gamma
    over those with a repeat purchase of positive value."""
    customers = summarise(histories, observation_end)
    buyers = customers.repeat_buyers()
    if not buyers.any():
        raise NotEnoughPurchases(
            f"{len(customers)} customers bought on or before {observation_end.isoformat()}, "
            "none of them on a second day: the models need repeat purchases to fit"
        )
    bg_nbd = fit_bgnbd(*customers.periods(period_days))
    gamma_gamma = fit_gamma_gamma(customers.frequency[buyers], customers.monetary_value[buyers])
    return ModelsFitted(observation_end, period_days, data_position, bg_nbd, gamma_gamma, customers)


@dataclass(frozen=True)
class Predictions:
    """Per customer (arrays in the customers' order) over a horizon after the
    observation end."""

    p_alive: Array
    expected_purchases: Array
    """Expected purchase days in the horizon."""
    expected_average_value: Array
    """Expected spend per purchase day (NaN when the Gamma-Gamma mean does not exist)."""
    clv: Array
    """Expected spend in the horizon, discounted monthly."""


def predict(
    bg_nbd: BgNbd,
    gamma_gamma: GammaGamma,
    frequency: Array,
    recency: Array,
    age: Array,
    monetary_value: Array,
    *,
    period_days: int,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    monthly_discount: float = DEFAULT_MONTHLY_DISCOUNT,
) -> Predictions:
    """Predictions for customers with the given patterns (days, as in ``Customers``),
    conditional on their purchases up to the observation end."""
    x, t_x, T = frequency, recency / period_days, age / period_days
    value = expected_average_value(gamma_gamma, x, monetary_value)
    return Predictions(
        p_alive=p_alive(bg_nbd, x, t_x, T),
        expected_purchases=expected_purchases(bg_nbd, horizon_days / period_days, x, t_x, T),
        expected_average_value=value,
        clv=clv(
            bg_nbd,
            value,
            x,
            t_x,
            T,
            horizon=horizon_days / period_days,
            month=MONTH_DAYS / period_days,
            monthly_discount=monthly_discount,
        ),
    )


# Validation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackingWeek:
    """Cumulative repeat purchase days up to ``week_end``: actual and expected."""

    week_end: date
    actual: int
    predicted: float


@dataclass(frozen=True)
class Validation:
    """A fit on the calibration period checked against the holdout after it."""

    calibration_end: date
    holdout_end: date
    period_days: int
    bg_nbd: Fit[BgNbd]
    customers: int
    predicted_total: float
    """Expected repeat purchase days in the holdout, summed over customers."""
    actual_total: int
    mean_absolute_error: float
    """Per customer, |expected - actual| repeat purchase days in the holdout, averaged."""
    tracking: list[TrackingWeek]
    """Weekly from the first purchase of the calibration's customers to the holdout's
    end: actual repeat purchase days against the model's E[X(t)] from each customer's
    first purchase (the papers' tracking chart)."""

    def as_json(self) -> dict[str, Any]:
        """What ``lifecycle analytics validate --json`` prints and the report draws."""
        return {
            "calibration_end": self.calibration_end.isoformat(),
            "holdout_end": self.holdout_end.isoformat(),
            "period_days": self.period_days,
            "customers": self.customers,
            "bg_nbd": {
                **parameters_dict(self.bg_nbd.parameters),
                "log_likelihood": self.bg_nbd.log_likelihood,
                "converged": self.bg_nbd.converged,
            },
            "predicted_total": self.predicted_total,
            "actual_total": self.actual_total,
            "mean_absolute_error": self.mean_absolute_error,
            "tracking": [
                {"week_end": w.week_end.isoformat(), "actual": w.actual, "predicted": w.predicted}
                for w in self.tracking
            ],
        }


def validate(
    histories: Sequence[PurchaseHistory],
    *,
    calibration_end: date,
    holdout_end: date,
    period_days: int = DEFAULT_PERIOD_DAYS,
) -> Validation:
    """Fit BG/NBD on purchases up to ``calibration_end`` and compare each customer's
    expected repeat purchase days in (calibration_end, holdout_end] with the actual."""
    if holdout_end <= calibration_end:
        raise InvalidHoldout("the holdout must end after the calibration period")
    customers = summarise(histories, calibration_end)
    if not (customers.frequency > 0).any():
        raise NotEnoughPurchases(
            f"no customer bought on a second day on or before {calibration_end.isoformat()}: "
            "nothing to calibrate on"
        )
    fit = fit_bgnbd(*customers.periods(period_days))
    x, t_x, T = customers.periods(period_days)
    holdout = (holdout_end - calibration_end).days / period_days
    expected = expected_purchases(fit.parameters, holdout, x, t_x, T)
    calibrated = set(customers.ids)
    calibration_day, holdout_day = calibration_end.toordinal(), holdout_end.toordinal()
    first_days: list[int] = []
    repeat_days: list[int] = []
    actual = np.zeros(len(customers))
    index = {customer_id: i for i, customer_id in enumerate(customers.ids)}
    for customer_id, days in histories:
        if customer_id not in calibrated:
            continue
        seen = sorted(day for day in days if day <= holdout_day)
        first_days.append(seen[0])
        repeat_days.extend(seen[1:])
        actual[index[customer_id]] = sum(1 for day in seen if day > calibration_day)
    return Validation(
        calibration_end=calibration_end,
        holdout_end=holdout_end,
        period_days=period_days,
        bg_nbd=fit,
        customers=len(customers),
        predicted_total=float(np.sum(expected)),
        actual_total=int(np.sum(actual)),
        mean_absolute_error=float(np.mean(np.abs(expected - actual))),
        tracking=_tracking(fit.parameters, first_days, repeat_days, holdout_day, period_days),
    )


def _tracking(
    params: BgNbd, first_days: list[int], repeat_days: list[int], last_day: int, period_days: int
) -> list[TrackingWeek]:
    start = min(first_days)
    weeks = math.ceil((last_day - start) / WEEK_DAYS) or 1
    ends = np.minimum(start + WEEK_DAYS * np.arange(1, weeks + 1), last_day)
    counts = np.searchsorted(np.sort(np.array(repeat_days, dtype=float)), ends, side="right")
    # Customers who first bought on the same day share one expectation per week.
    firsts, sizes = np.unique(np.array(first_days, dtype=float), return_counts=True)
    elapsed = np.maximum(ends[np.newaxis, :] - firsts[:, np.newaxis], 0) / period_days
    expected = np.sum(sizes[:, np.newaxis] * expected_purchases_from_start(params, elapsed), 0)
    return [
        TrackingWeek(
            week_end=date.fromordinal(int(end)), actual=int(count), predicted=float(predicted)
        )
        for end, count, predicted in zip(ends, counts, expected, strict=True)
    ]
