"""The analytics models' stream: every fit of the customer-base models, in the log.

One stream that is not a relationship (``stream_id("analytics-models")``), chained,
sealed, verified and exported like every other (its export lines carry no customer).
Each fit of Contract 8 records one ``ModelFitted`` per model, together: the parameters,
the data they were fitted on (observation end, period, the log position of the purchase
pattern read) and how the fit went, so that every fit is auditable and reproducible.

A fit has no business time of its own: it happens when the engine records it. Its
observation end is a property of the data (the last day whose purchases count), not a
time at which something happened to a customer, so ``ModelFitted`` is not in
``BUSINESS_TIME_FIELDS`` and its ``occurred_at`` is when it was recorded.

Parameters are plain floats and the observation end an ISO date string: a fit's hash
covers what the store keeps, and JSON keeps these exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from lifecycle.domain.errors import LifecycleError
from lifecycle.domain.streams import ChainedAggregate, stream_id

ANALYTICS_STREAM = "analytics-models"
BG_NBD = "bg_nbd"
GAMMA_GAMMA = "gamma_gamma"
MODEL_PARAMETERS: dict[str, tuple[str, ...]] = {
    BG_NBD: ("r", "alpha", "a", "b"),
    GAMMA_GAMMA: ("p", "q", "gamma"),
}
"""Each model and the names of its parameters, in the papers' order."""
MODEL_TITLES = {BG_NBD: "BG/NBD", GAMMA_GAMMA: "Gamma-Gamma"}


class InvalidModelFit(LifecycleError):
    code = "invalid_model_fit"


class NoModelFitted(LifecycleError):
    """Predictions were asked for before any fit."""

    code = "no_model_fitted"


@dataclass(frozen=True)
class ModelFit:
    """One model's fit, as the stream records it."""

    model: str
    parameters: Mapping[str, float]
    standard_errors: Mapping[str, float | None]
    log_likelihood: float
    customers: int
    converged: bool
    iterations: int
    message: str
    observation_end: date
    period_days: int
    data_position: int | None
    """The log position the purchase patterns were read at (None: an empty log)."""

    def check(self) -> None:
        names = MODEL_PARAMETERS.get(self.model)
        if names is None:
            raise InvalidModelFit(f"unknown model {self.model!r}")
        if tuple(self.parameters) != names:
            raise InvalidModelFit(f"{self.model} has the parameters {', '.join(names)}")
        if not all(math.isfinite(v) and v > 0 for v in self.parameters.values()):
            raise InvalidModelFit(f"{self.model}: parameters must be finite and positive")
        if set(self.standard_errors) != set(names) or not all(
            e is None or math.isfinite(e) for e in self.standard_errors.values()
        ):
            raise InvalidModelFit(f"{self.model}: a finite standard error (or none) per parameter")
        if not math.isfinite(self.log_likelihood):
            raise InvalidModelFit(f"{self.model}: the log-likelihood must be finite")
        if self.customers < 1 or self.period_days < 1:
            raise InvalidModelFit(f"{self.model}: fitted on no customer, or a period under a day")


class AnalyticsModels(ChainedAggregate):
    """The stream of model fits; ``latest`` holds the newest fit of each model."""

    class Event(ChainedAggregate.Event):
        """Base of every event of the analytics models' stream."""

    class AnalyticsModelsStarted(Event, Aggregate.Created):
        pass

    class ModelFitted(Event):
        model: str
        parameters: dict[str, float]
        standard_errors: dict[str, float | None]
        log_likelihood: float
        customers: int
        converged: bool
        iterations: int
        message: str
        observation_end: str
        period_days: int
        data_position: int | None

    @staticmethod
    def create_id() -> UUID:
        return stream_id(ANALYTICS_STREAM)

    @event(AnalyticsModelsStarted)
    def __init__(self) -> None:
        self.latest: dict[str, ModelFit] = {}

    def record_fit(self, fit: ModelFit) -> None:
        fit.check()
        self._fitted(
            model=fit.model,
            parameters={name: float(value) for name, value in fit.parameters.items()},
            standard_errors={
                name: None if error is None else float(error)
                for name, error in fit.standard_errors.items()
            },
            log_likelihood=float(fit.log_likelihood),
            customers=fit.customers,
            converged=fit.converged,
            iterations=fit.iterations,
            message=fit.message,
            observation_end=fit.observation_end.isoformat(),
            period_days=fit.period_days,
            data_position=fit.data_position,
        )

    @event(ModelFitted)
    def _fitted(
        self,
        model: str,
        parameters: dict[str, float],
        standard_errors: dict[str, float | None],
        log_likelihood: float,
        customers: int,
        converged: bool,
        iterations: int,
        message: str,
        observation_end: str,
        period_days: int,
        data_position: int | None,
    ) -> None:
        self.latest[model] = ModelFit(
            model=model,
            parameters=parameters,
            standard_errors=standard_errors,
            log_likelihood=log_likelihood,
            customers=customers,
            converged=converged,
            iterations=iterations,
            message=message,
            observation_end=date.fromisoformat(observation_end),
            period_days=period_days,
            data_position=data_position,
        )


ANALYTICS_EVENTS: tuple[type[Any], ...] = (
    AnalyticsModels.AnalyticsModelsStarted,
    AnalyticsModels.ModelFitted,
)
