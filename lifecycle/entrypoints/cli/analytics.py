"""``lifecycle analytics``: fit the customer-base models, predict from the latest fit,
and validate them on a holdout (Contract 8).

numpy and scipy are imported by the handlers, never when the parser is built, so the
other commands start without them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from lifecycle.analytics import DEFAULT_HORIZON_DAYS, DEFAULT_MONTHLY_DISCOUNT, DEFAULT_PERIOD_DAYS
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.entrypoints.cli.common import (
    UsageError,
    positive_int,
    settings_from,
)
from lifecycle.entrypoints.cli.spec import CUSTOMER, Command, Group, Option, json_option

if TYPE_CHECKING:
    from lifecycle.analytics.btyd import Fit


def commands() -> Sequence[Group]:
    period = Option(
        "--period-days",
        type=positive_int,
        default=DEFAULT_PERIOD_DAYS,
        metavar="N",
        help=f"days per period of recency and T (default {DEFAULT_PERIOD_DAYS}, as in the papers)",
    )
    return (
        Group(
            "analytics",
            help="fit the BG/NBD and Gamma-Gamma models, predict, validate on a holdout",
            description="Customer-base analysis on the purchase-pattern read model: who is "
            "still a customer (p_alive), how many purchases to expect, and what they are worth.",
            actions=(
                Command(
                    "fit",
                    fit_command,
                    help="fit both models and record the fit in the log",
                    description="Fits BG/NBD over every customer with a purchase on or before "
                    "the observation end, and Gamma-Gamma over those with a repeat purchase; "
                    "records the fit as ModelFitted events (auditable, exported and verified "
                    "like every event) and makes its predictions the ones served. Purchases "
                    "after the observation end count for nothing.",
                    options=(
                        Option(
                            "--observation-end",
                            type=_parse_date,
                            metavar="DATE",
                            help="the last day whose purchases count (YYYY-MM-DD; default "
                            "today, UTC)",
                        ),
                        period,
                        json_option("print the fit as JSON"),
                    ),
                ),
                Command(
                    "predict",
                    predict_command,
                    help="one customer's predictions from the latest fit",
                    description="p_alive (probability the customer is still a customer at the "
                    "fit's observation end), expected purchase days and expected value (clv) "
                    "over the horizon after it, and the expected spend per purchase day. Null "
                    "for a customer without a purchase by the observation end.",
                    options=(
                        CUSTOMER,
                        Option(
                            "--horizon-days",
                            type=positive_int,
                            default=DEFAULT_HORIZON_DAYS,
                            metavar="N",
                            help=f"days after the observation end (default {DEFAULT_HORIZON_DAYS})",
                        ),
                        Option(
                            "--monthly-discount",
                            type=_rate,
                            default=DEFAULT_MONTHLY_DISCOUNT,
                            metavar="RATE",
                            help="discount rate per 30-day month of the clv (default 0.01)",
                        ),
                        json_option("print the predictions as JSON"),
                    ),
                ),
                Command(
                    "validate",
                    validate_command,
                    help="fit on a calibration period, compare with a holdout (records no fit)",
                    description="Fits BG/NBD on purchases up to the calibration end and "
                    "compares each customer's expected repeat purchase days in the holdout "
                    "with the actual ones: totals, mean absolute error per customer, and the "
                    "cumulative weekly tracking that `lifecycle report` draws.",
                    options=(
                        Option(
                            "--calibration-end", type=_parse_date, required=True, metavar="DATE"
                        ),
                        Option("--holdout-end", type=_parse_date, required=True, metavar="DATE"),
                        period,
                        json_option("print the validation as JSON"),
                    ),
                ),
            ),
        ),
    )


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 0 and below 1")
    return value


def fit_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.analytics import BG_NBD, GAMMA_GAMMA, MODEL_TITLES
    from lifecycle.entrypoints.analytics import describe_fit, fit

    components = Components(settings_from(args))
    observation_end = args.observation_end or datetime.now(UTC).date()
    recorded = fit(components, observation_end=observation_end, period_days=args.period_days)
    models = recorded.models
    fits: dict[str, Fit[Any]] = {BG_NBD: models.bg_nbd, GAMMA_GAMMA: models.gamma_gamma}
    if args.json:
        print(
            json.dumps(
                {
                    "position": recorded.fit.position,
                    "data_position": recorded.fit.data_position,
                    "observation_end": observation_end.isoformat(),
                    "period_days": args.period_days,
                    "recorded_at": recorded.fit.recorded_at.isoformat(),
                    "models": {name: _fit_json(fit) for name, fit in fits.items()},
                }
            )
        )
        return 0
    print(
        f"fitted on {models.bg_nbd.customers:,} customers with a purchase on or before "
        f"{observation_end.isoformat()} (periods of {args.period_days} days; purchase "
        f"patterns at log position {recorded.fit.data_position or 0}); recorded at log "
        f"position {recorded.fit.position}"
    )
    for name, fit_of in fits.items():
        print(f"  {MODEL_TITLES[name]:<12} {describe_fit(fit_of)}")
    return 0


def _fit_json(fit: Fit[Any]) -> dict[str, Any]:
    from lifecycle.analytics.btyd import parameters_dict

    return {
        "parameters": parameters_dict(fit.parameters),
        "standard_errors": fit.standard_errors,
        "log_likelihood": fit.log_likelihood,
        "customers": fit.customers,
        "converged": fit.converged,
        "iterations": fit.iterations,
        "message": fit.message,
    }


def predict_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.analytics import NoModelFitted
    from projections.predictions import predictions_of
    from projections.wiring import close_view

    components = Components(settings_from(args))
    with closing(components.application()) as app:
        app.relationship(args.customer)  # an unknown customer is an error, not a null
    view = components.predictions_view()
    try:
        fit, figures = view.customer(args.customer)
    finally:
        close_view(view)
    if fit is None:
        raise NoModelFitted("no model fitted yet: run `lifecycle analytics fit` first")
    predicted = predictions_of(
        fit,
        args.customer,
        figures,
        horizon_days=args.horizon_days,
        monthly_discount=args.monthly_discount,
    )
    if args.json:
        print(json.dumps(predicted, default=str))
        return 0
    print(
        f"{args.customer}: from the fit at log position {fit.position} (observation end "
        f"{fit.observation_end.isoformat()}, periods of {fit.period_days} days)"
    )
    if figures is None:
        print(f"  no purchase on or before {fit.observation_end.isoformat()}: no predictions")
        return 0
    print(
        f"  purchase pattern: frequency {figures.frequency}, recency {figures.recency} days, "
        f"T {figures.age} days, monetary value {figures.monetary_value:.2f}"
    )
    rows = (
        ("p_alive", predicted["p_alive"], ".4f", "probability still a customer"),
        (
            "expected_purchases",
            predicted["expected_purchases"],
            ".3f",
            f"purchase days in the {args.horizon_days} days after the observation end",
        ),
        ("expected_average_value", predicted["expected_average_value"], ".2f", "per purchase day"),
        (
            "clv",
            predicted["clv"],
            ".2f",
            f"over the horizon, discounted {args.monthly_discount:.1%} a month",
        ),
    )
    for name, number, style, meaning in rows:
        shown = "-" if number is None else format(number, style)
        print(f"  {name:<23} {shown:>10}  {meaning}")
    return 0


def validate_command(args: argparse.Namespace) -> int:
    from lifecycle.domain.analytics import BG_NBD, MODEL_TITLES
    from lifecycle.domain.clock import utc_now
    from lifecycle.entrypoints.analytics import describe_fit, run_validation

    if args.holdout_end <= args.calibration_end:
        raise UsageError("--holdout-end must be after --calibration-end")
    components = Components(settings_from(args))
    validation = run_validation(
        components,
        calibration_end=args.calibration_end,
        holdout_end=args.holdout_end,
        period_days=args.period_days,
        run_at=utc_now(),
    )
    if args.json:
        print(json.dumps(validation.as_json()))
        return 0
    days = (args.holdout_end - args.calibration_end).days
    print(
        f"calibrated on {validation.customers:,} customers with a purchase on or before "
        f"{args.calibration_end.isoformat()} (periods of {args.period_days} days)"
    )
    print(f"  {MODEL_TITLES[BG_NBD]:<12} {describe_fit(validation.bg_nbd)}")
    print(
        f"holdout of {days} days to {args.holdout_end.isoformat()}: repeat purchase days "
        f"predicted {validation.predicted_total:,.1f}, actual {validation.actual_total:,}; "
        f"mean absolute error per customer {validation.mean_absolute_error:.3f}"
    )
    print("the cumulative weekly tracking is drawn by `lifecycle report`")
    return 0
