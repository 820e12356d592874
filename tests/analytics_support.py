"""Populations drawn from the generative processes of the BG/NBD and Gamma-Gamma models
(with known parameters), for the analytics tests: as the models' summaries (unit tests)
or as purchase touchpoints an upstream shop would send (integration and end-to-end)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np

from lifecycle.analytics.btyd import Array, BgNbd, GammaGamma
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.domain.vocabulary import Channel, Kind

START = datetime(2023, 1, 2, 12, 0, tzinfo=UTC)


def bgnbd_summaries(
    rng: np.random.Generator, params: BgNbd, T: Array
) -> tuple[Array, Array, Array]:
    """``(x, t_x, T)`` of customers observed for ``T`` periods after their first purchase.

    While alive a customer buys at rate λ ~ Gamma(r, alpha); after each repeat purchase
    they leave with probability p ~ Beta(a, b), so they leave after their K-th repeat
    purchase, K ~ Geometric(p). Given N ~ Poisson(λT) purchases in (0, T] had they stayed,
    x = min(K, N) and the x-th of N uniform arrival times is T · Beta(x, N - x + 1).
    """
    n = len(T)
    rate = rng.gamma(params.r, 1 / params.alpha, n)
    dropout = rng.beta(params.a, params.b, n)
    lifetime_purchases = rng.geometric(dropout)
    had_they_stayed = rng.poisson(rate * T)
    x = np.minimum(lifetime_purchases, had_they_stayed)
    t_x = np.where(
        x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(had_they_stayed - x + 1, 1)), 0.0
    )
    return x.astype(float), t_x, T


def gamma_gamma_means(rng: np.random.Generator, params: GammaGamma, x: Array) -> Array:
    """Each customer's mean spend over ``x`` purchases: spend ~ Gamma(p, nu) per purchase,
    nu ~ Gamma(q, gamma); the mean of x such purchases is Gamma(p x, nu x)."""
    nu = rng.gamma(params.q, 1 / params.gamma, len(x))
    means: Array = rng.gamma(params.p * x, 1 / (nu * x))
    return means


def purchase_timelines(
    rng: np.random.Generator,
    customers: int,
    params: BgNbd,
    *,
    cohort_weeks: float = 12,
    weeks: float = 78,
) -> dict[str, list[float]]:
    """Each customer's purchase times, in weeks after ``START``: a first purchase in the
    first ``cohort_weeks``, then the BG/NBD process until they leave or ``weeks`` end."""
    timelines: dict[str, list[float]] = {}
    for number in range(customers):
        at = float(rng.uniform(0, cohort_weeks))
        rate = float(rng.gamma(params.r, 1 / params.alpha))
        dropout = float(rng.beta(params.a, params.b))
        times = [at]
        while True:
            at += float(rng.exponential(1 / rate))
            if at > weeks:
                break
            times.append(at)
            if rng.random() < dropout:
                break
        timelines[f"cust-{number:05d}"] = times
    return timelines


def purchase_touchpoints(
    timelines: dict[str, list[float]], rng: np.random.Generator
) -> list[Touchpoint]:
    """The timelines as purchase touchpoints (amounts drawn around 40 EUR)."""
    return [
        Touchpoint(
            event_id=f"{customer}-{index}",
            customer_id=customer,
            kind=Kind.PURCHASE,
            channel=Channel.WEB,
            occurred_at=START + timedelta(weeks=at),
            producer="shop",
            attributes={"amount": f"{rng.gamma(4.0, 10.0):.2f}", "currency": "EUR"},
        )
        for customer, times in timelines.items()
        for index, at in enumerate(times)
    ]


def as_messages(touchpoints: list[Touchpoint]) -> Iterator[str]:
    """The touchpoints as Contract 1 JSON lines."""
    for t in touchpoints:
        yield json.dumps(
            {
                "event_id": t.event_id,
                "customer_id": t.customer_id,
                "kind": t.kind.value,
                "channel": t.channel.value,
                "occurred_at": t.occurred_at.isoformat(),
                "source": t.producer,
                "attributes": t.attributes,
            }
        )


def weeks_after_start(weeks: float) -> datetime:
    return START + timedelta(weeks=weeks)
