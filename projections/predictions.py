"""The analytics models' predictions as the read side serves them (Contract 8).

Not projected from the log event by event: ``lifecycle analytics fit`` writes it, once
per fit, from the very purchase patterns the fit read, in one transaction with the log
position of the fit's ``ModelFitted`` events (the view's tracked position). So every
answer comes from one fit, and a fit's predictions are reproducible: they are
conditional on each customer's purchases up to the fit's observation end, whatever was
recorded later.

Per customer it keeps the pattern the models saw (frequency, recency and age in days,
monetary value) and the predictions, computed for every customer at once when the fit is
made: ``p_alive`` (a column, so that lists filter and sort on it), the expected average
value, and the expected purchases and CLV over the default horizon and discount (90 days,
1 % a month), so that the usual question is one row read. Another horizon or discount is
computed when asked, from the same row, by the same function. A customer without a
purchase by the observation end has no row: null predictions. The view also keeps the
latest validation (``lifecycle analytics validate``), for the report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from eventsourcing.persistence import Tracking

from lifecycle.analytics import DEFAULT_HORIZON_DAYS, DEFAULT_MONTHLY_DISCOUNT
from lifecycle.domain.analytics import BG_NBD, GAMMA_GAMMA
from lifecycle.persistence import library
from projections.views import UPSTREAM, SqlView, Table, backend_views

LATEST = "latest"
DEFAULTS = (DEFAULT_HORIZON_DAYS, DEFAULT_MONTHLY_DISCOUNT)
CUSTOMERS = "customers"
"""The table of per-customer figures (``p_alive`` among them)."""


@dataclass(frozen=True)
class FitInForce:
    """The fit the predictions come from."""

    position: int
    """The log position of its ``ModelFitted`` events."""
    data_position: int | None
    observation_end: date
    period_days: int
    recorded_at: datetime
    parameters: dict[str, dict[str, float]]
    """Model -> parameter -> value."""


@dataclass(frozen=True)
class CustomerFigures:
    """What a fit knows of one customer."""

    customer_id: str
    frequency: int
    recency: int
    age: int
    monetary_value: float
    p_alive: float
    expected_average_value: float | None
    expected_purchases: float
    """Over the default horizon (``DEFAULT_HORIZON_DAYS``)."""
    clv: float | None
    """Over the default horizon, at the default discount (``DEFAULT_MONTHLY_DISCOUNT``)."""


@dataclass(frozen=True)
class Forecast:
    """One customer's predictions over a horizon after the fit's observation end."""

    customer_id: str
    p_alive: float
    expected_purchases: float
    expected_average_value: float | None
    clv: float | None
    figures: CustomerFigures


def forecast(
    fit: FitInForce,
    customers: Sequence[CustomerFigures],
    *,
    horizon_days: int,
    monthly_discount: float,
) -> list[Forecast]:
    """The fit's predictions for ``customers``, computed together (vectorised)."""
    import numpy as np

    from lifecycle.analytics.btyd import BgNbd, GammaGamma
    from lifecycle.analytics.service import predict

    def column(name: str) -> Any:
        return np.array([getattr(c, name) for c in customers], dtype=float)

    predicted = predict(
        BgNbd(**fit.parameters[BG_NBD]),
        GammaGamma(**fit.parameters[GAMMA_GAMMA]),
        column("frequency"),
        column("recency"),
        column("age"),
        column("monetary_value"),
        period_days=fit.period_days,
        horizon_days=horizon_days,
        monthly_discount=monthly_discount,
    )
    return [
        Forecast(
            customer_id=c.customer_id,
            p_alive=float(alive),
            expected_purchases=float(purchases),
            expected_average_value=_finite(value),
            clv=_finite(worth),
            figures=c,
        )
        for c, alive, purchases, value, worth in zip(
            customers,
            predicted.p_alive,
            predicted.expected_purchases,
            predicted.expected_average_value,
            predicted.clv,
            strict=True,
        )
    ]


def predictions_of(
    fit: FitInForce,
    customer_id: str,
    figures: CustomerFigures | None,
    *,
    horizon_days: int,
    monthly_discount: float,
) -> dict[str, Any]:
    """One customer's predictions as the read API answers them (``PredictionsResponse``)
    and ``lifecycle analytics predict --json`` prints them: null without figures; at the
    default horizon and discount, as the fit computed them."""
    predicted: Forecast | CustomerFigures | None = figures
    if figures is not None and (horizon_days, monthly_discount) != DEFAULTS:
        predicted = forecast(
            fit, [figures], horizon_days=horizon_days, monthly_discount=monthly_discount
        )[0]
    return {
        "position": fit.position,
        "customer_id": customer_id,
        "observation_end": fit.observation_end,
        "period_days": fit.period_days,
        "horizon_days": horizon_days,
        "monthly_discount": monthly_discount,
        "p_alive": predicted.p_alive if predicted else None,
        "expected_purchases": predicted.expected_purchases if predicted else None,
        "expected_average_value": predicted.expected_average_value if predicted else None,
        "clv": predicted.clv if predicted else None,
        "frequency": figures.frequency if figures else None,
        "recency": figures.recency if figures else None,
        "T": figures.age if figures else None,
        "monetary_value": figures.monetary_value if figures else None,
    }


def _finite(value: float | None) -> float | None:
    """None for what the model leaves undefined (NaN: a mean spend that does not exist)."""
    return float(value) if value is not None and math.isfinite(value) else None


class PredictionsView(SqlView):
    projection_name = "predictions"
    tables = (
        Table(
            CUSTOMERS,
            (
                ("customer_id", "TEXT NOT NULL"),
                ("frequency", "BIGINT NOT NULL"),
                ("recency", "BIGINT NOT NULL"),
                ("age", "BIGINT NOT NULL"),
                ("monetary_value", "{float} NOT NULL"),
                ("p_alive", "{float} NOT NULL"),
                ("expected_average_value", "{float}"),
                ("expected_purchases", "{float} NOT NULL"),
                ("clv", "{float}"),
            ),
            ("customer_id",),
            indexes=(("p_alive", "p_alive, customer_id"),),
        ),
        Table(
            "fit",
            (
                ("id", "TEXT NOT NULL"),
                ("position", "BIGINT NOT NULL"),
                ("data_position", "BIGINT"),
                ("observation_end", "TEXT NOT NULL"),
                ("period_days", "BIGINT NOT NULL"),
                ("recorded_at", "{time} NOT NULL"),
                ("parameters", "TEXT NOT NULL"),
            ),
            ("id",),
        ),
        Table(
            "validation",
            (("id", "TEXT NOT NULL"), ("run_at", "{time} NOT NULL"), ("body", "TEXT NOT NULL")),
            ("id",),
        ),
    )

    def replace(self, fit: FitInForce, customers: Iterable[CustomerFigures]) -> bool:
        """Make ``fit`` and its figures the ones in force, unless a later fit already is
        (two fits racing: the later in the log wins). Whether it was written."""
        with self._write_transaction() as cursor:
            recorded = self._tracking_position(cursor, self.tracking_name)
            if recorded is not None and recorded >= fit.position:
                return False
            cursor.execute(self.sql("DELETE FROM {customers}"))
            self.upsert(
                cursor,
                CUSTOMERS,
                (
                    (
                        c.customer_id,
                        c.frequency,
                        c.recency,
                        c.age,
                        c.monetary_value,
                        c.p_alive,
                        _finite(c.expected_average_value),
                        c.expected_purchases,
                        _finite(c.clv),
                    )
                    for c in customers
                ),
            )
            self.upsert(
                cursor,
                "fit",
                [
                    (
                        LATEST,
                        fit.position,
                        fit.data_position,
                        fit.observation_end.isoformat(),
                        fit.period_days,
                        self.dialect.time(fit.recorded_at),
                        orjson.dumps(fit.parameters).decode(),
                    )
                ],
            )
            library.insert_tracking(self, cursor, Tracking(UPSTREAM, fit.position))
        return True

    def fit_in_force(self) -> FitInForce | None:
        """The latest fit written, or None before the first."""
        rows = self.fetch("SELECT * FROM {fit} WHERE id = ?", (LATEST,))
        return self._fit(rows[0]) if rows else None

    def customer(self, customer_id: str) -> tuple[FitInForce | None, CustomerFigures | None]:
        """The fit in force and what it knows of the customer, read in one snapshot."""
        with self._read_transaction() as cursor:
            cursor.execute(self.sql("SELECT * FROM {fit} WHERE id = ?"), (LATEST,))
            fit = cursor.fetchone()
            if fit is None:
                return None, None
            cursor.execute(
                self.sql("SELECT * FROM {customers} WHERE customer_id = ?"), (customer_id,)
            )
            row = cursor.fetchone()
            return self._fit(fit), (_figures(row) if row is not None else None)

    def most_likely_lapsed(self, limit: int) -> list[CustomerFigures]:
        """The customers least likely to be alive (ties by customer_id)."""
        rows = self.fetch(
            "SELECT * FROM {customers} ORDER BY p_alive, customer_id LIMIT ?", (limit,)
        )
        return [_figures(row) for row in rows]

    def every_customer(self) -> list[CustomerFigures]:
        return [_figures(row) for row in self.fetch("SELECT * FROM {customers}")]

    def save_validation(self, body: Mapping[str, Any], run_at: datetime) -> None:
        """Keep ``body`` as the latest validation (a validation records no fit)."""
        with self._write_transaction() as cursor:
            self.upsert(
                cursor,
                "validation",
                [(LATEST, self.dialect.time(run_at), orjson.dumps(body).decode())],
            )

    def latest_validation(self) -> dict[str, Any] | None:
        rows = self.fetch("SELECT body FROM {validation} WHERE id = ?", (LATEST,))
        return orjson.loads(rows[0]["body"]) if rows else None

    def _fit(self, row: Any) -> FitInForce:
        recorded_at = self.dialect.from_time(row["recorded_at"])
        assert recorded_at is not None
        return FitInForce(
            position=row["position"],
            data_position=row["data_position"],
            observation_end=date.fromisoformat(row["observation_end"]),
            period_days=row["period_days"],
            recorded_at=recorded_at,
            parameters=orjson.loads(row["parameters"]),
        )


def _figures(row: Any) -> CustomerFigures:
    return CustomerFigures(
        customer_id=row["customer_id"],
        frequency=row["frequency"],
        recency=row["recency"],
        age=row["age"],
        monetary_value=row["monetary_value"],
        p_alive=row["p_alive"],
        expected_average_value=row["expected_average_value"],
        expected_purchases=row["expected_purchases"],
        clv=row["clv"],
    )


class Predictions:
    """Where the predictions live: a view like the read models' (``name`` names its
    tables and, on SQLite, its file ``lifecycle.predictions.db``), which no runner
    follows the log into (it is not among ``projections.wiring.READ_MODELS``)."""

    name = "predictions"
    TABLE = CUSTOMERS
    view_classes = backend_views(PredictionsView)
