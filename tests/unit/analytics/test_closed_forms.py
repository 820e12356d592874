"""The models' formulas against the papers', computed here independently (the standard
library's ``math``, the hypergeometric series summed term by term) on cases worked by
hand, and against a figure the BG/NBD paper reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lifecycle.analytics.btyd import (
    BgNbd,
    GammaGamma,
    bgnbd_log_likelihood,
    clv,
    expected_average_value,
    expected_purchases,
    expected_purchases_from_start,
    gamma_gamma_log_likelihood,
    p_alive,
)

CDNOW = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426)
"""FHL (2005), Table 1: the BG/NBD fitted to the CDNOW sample, in weeks."""


def one(value: float) -> np.ndarray:
    return np.array([float(value)])


def beta(p: float, q: float) -> float:
    return math.exp(math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q))


def series_2f1(a: float, b: float, c: float, z: float) -> float:
    """Gauss's hypergeometric series, summed until the terms vanish (0 <= z < 1)."""
    total, term, n = 1.0, 1.0, 0
    while abs(term) > 1e-17 * abs(total) or n < 10:
        term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z
        total += term
        n += 1
    return total


def paper_likelihood(p: BgNbd, x: int, t_x: float, T: float) -> float:
    """FHL (2005), equation 6."""
    common = math.exp(math.lgamma(p.r + x) - math.lgamma(p.r)) * p.alpha**p.r
    value = beta(p.a, p.b + x) / beta(p.a, p.b) * common / (p.alpha + T) ** (p.r + x)
    if x > 0:
        value += beta(p.a + 1, p.b + x - 1) / beta(p.a, p.b) * common / (p.alpha + t_x) ** (p.r + x)
    return value


def paper_p_alive(p: BgNbd, x: int, t_x: float, T: float) -> float:
    """FHL (2005), equation 11 (via the note 'Computing P(alive)')."""
    if x == 0:
        return 1.0
    odds = p.a / (p.b + x - 1) * ((p.alpha + T) / (p.alpha + t_x)) ** (p.r + x)
    return 1 / (1 + odds)


def paper_conditional_expectation(p: BgNbd, t: float, x: int, t_x: float, T: float) -> float:
    """FHL (2005), equation 10."""
    z = t / (p.alpha + T + t)
    bracket = 1 - ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x) * series_2f1(
        p.r + x, p.b + x, p.a + p.b + x - 1, z
    )
    return (p.a + p.b + x - 1) / (p.a - 1) * bracket * paper_p_alive(p, x, t_x, T)


def paper_unconditional_expectation(p: BgNbd, t: float) -> float:
    """FHL (2005), equation 9."""
    z = t / (p.alpha + t)
    bracket = 1 - (p.alpha / (p.alpha + t)) ** p.r * series_2f1(p.r, p.b, p.a + p.b - 1, z)
    return (p.a + p.b - 1) / (p.a - 1) * bracket


CUSTOMERS = [(0, 0.0, 38.86), (1, 2.0, 10.0), (2, 30.43, 38.86), (7, 35.0, 38.0), (25, 60.0, 80.0)]


@pytest.mark.parametrize(("x", "t_x", "T"), CUSTOMERS)
def test_the_log_likelihood_is_the_papers_likelihood(x: int, t_x: float, T: float) -> None:
    computed = bgnbd_log_likelihood(CDNOW, one(x), one(t_x), one(T))[0]

    assert computed == pytest.approx(math.log(paper_likelihood(CDNOW, x, t_x, T)), rel=1e-12)


def test_the_log_likelihood_stays_finite_where_the_papers_form_overflows() -> None:
    heavy = BgNbd(r=2.0, alpha=0.5, a=0.8, b=2.4)
    x, t_x, T = 2_000, 990.0, 1_000.0
    with pytest.raises(OverflowError):
        paper_likelihood(heavy, x, t_x, T)
    # The same formula by hand in logs: the larger term factored out of the sum.
    log_common = math.lgamma(heavy.r + x) - math.lgamma(heavy.r) + heavy.r * math.log(heavy.alpha)
    log_beta = math.lgamma(heavy.a) + math.lgamma(heavy.b) - math.lgamma(heavy.a + heavy.b)
    alive = (
        (math.lgamma(heavy.a) + math.lgamma(heavy.b + x) - math.lgamma(heavy.a + heavy.b + x))
        - log_beta
        - (heavy.r + x) * math.log(heavy.alpha + T)
    )
    left = (
        (
            math.lgamma(heavy.a + 1)
            + math.lgamma(heavy.b + x - 1)
            - math.lgamma(heavy.a + heavy.b + x)
        )
        - log_beta
        - (heavy.r + x) * math.log(heavy.alpha + t_x)
    )
    top = max(alive, left)
    by_hand = log_common + top + math.log(math.exp(alive - top) + math.exp(left - top))

    computed = bgnbd_log_likelihood(heavy, one(x), one(t_x), one(T))[0]

    assert computed == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize("T", [0.0, 1.0, 38.86, 500.0])
def test_a_customer_without_a_repeat_purchase_is_alive(T: float) -> None:
    assert p_alive(CDNOW, one(0), one(0), one(T))[0] == 1.0


def test_a_frequent_buyer_silent_for_long_is_most_likely_gone() -> None:
    # Twenty repeat purchases in the first ten weeks, then nothing for ninety.
    computed = p_alive(CDNOW, one(20), one(10), one(100))[0]

    assert computed == pytest.approx(paper_p_alive(CDNOW, 20, 10, 100), rel=1e-12)
    assert computed < 1e-15


def test_the_same_buyer_seen_lately_is_most_likely_alive() -> None:
    assert p_alive(CDNOW, one(20), one(99), one(100))[0] > 0.95


@pytest.mark.parametrize(("x", "t_x", "T"), CUSTOMERS)
def test_p_alive_is_the_papers(x: int, t_x: float, T: float) -> None:
    computed = p_alive(CDNOW, one(x), one(t_x), one(T))[0]

    assert computed == pytest.approx(paper_p_alive(CDNOW, x, t_x, T), rel=1e-12)


@pytest.mark.parametrize(("x", "t_x", "T"), CUSTOMERS)
@pytest.mark.parametrize("t", [1.0, 13.0, 39.0, 104.0])
def test_the_conditional_expectation_is_the_papers(t: float, x: int, t_x: float, T: float) -> None:
    computed = expected_purchases(CDNOW, t, one(x), one(t_x), one(T))[0]

    assert computed == pytest.approx(paper_conditional_expectation(CDNOW, t, x, t_x, T), rel=1e-9)


def test_the_conditional_expectation_the_paper_reports() -> None:
    # FHL (2005), section 5: a customer with x = 2, t_x = 30.43, T = 38.86 is expected to
    # make 1.226 purchases in the next 39 weeks.
    computed = expected_purchases(CDNOW, 39.0, one(2), one(30.43), one(38.86))[0]

    assert computed == pytest.approx(1.226, abs=5e-4)


@pytest.mark.parametrize("t", [0.5, 12.0, 39.0, 78.0])
def test_the_expectation_from_a_first_purchase_is_the_papers(t: float) -> None:
    computed = expected_purchases_from_start(CDNOW, one(t))[0]

    assert computed == pytest.approx(paper_unconditional_expectation(CDNOW, t), rel=1e-9)


def test_many_purchases_and_a_long_horizon_are_summed_exactly_past_scipys_range() -> None:
    # Here the hypergeometric function overflows a float: the series is summed in logs.
    heavy = BgNbd(r=2.0, alpha=3.0, a=0.8, b=2.4)
    x, t_x, T, t = 1_500, 99.0, 100.0, 400.0
    z = t / (heavy.alpha + T + t)
    log_terms, log_term, n = [0.0], 0.0, 0
    upper, lower, c = heavy.r + x, heavy.b + x, heavy.a + heavy.b + x - 1
    while n < 100_000:
        log_term += math.log(z * (upper + n) * (lower + n) / ((c + n) * (n + 1)))
        log_terms.append(log_term)
        n += 1
        if log_term < max(log_terms) - 60:
            break
    top = max(log_terms)
    log_sum = top + math.log(math.fsum(math.exp(v - top) for v in log_terms))
    h = math.exp(upper * math.log1p(-z) + log_sum)
    by_hand = c / (heavy.a - 1) * (1 - h) * paper_p_alive(heavy, x, t_x, T)

    computed = expected_purchases(heavy, t, one(x), one(t_x), one(T))[0]

    assert computed == pytest.approx(by_hand, rel=1e-9)


def test_a_dropout_the_same_for_everyone_still_gives_finite_expectations() -> None:
    # a and b in the millions: the Beta is a point mass at p = a / (a + b) = 0.2, and the
    # expectation is that of a fixed p: (1/p)(1 - ((alpha+T)/(alpha+T+p t))^(r+x)).
    fixed = BgNbd(r=0.4, alpha=6.0, a=2e6, b=8e6)
    x, t_x, T, t = 3, 20.0, 60.0, 13.0
    p = 0.2
    alive = paper_p_alive(fixed, x, t_x, T)
    limit = (1 / p) * (1 - ((6.0 + T) / (6.0 + T + p * t)) ** (0.4 + x)) * alive

    computed = expected_purchases(fixed, t, one(x), one(t_x), one(T))[0]

    assert computed == pytest.approx(limit, rel=1e-5)


def test_the_expected_average_value_weighs_the_population_mean_against_the_customers() -> None:
    gg = GammaGamma(p=6.25, q=3.74, gamma=15.44)
    x, m = 3.0, 40.0
    by_hand = 6.25 * (15.44 + 3 * 40.0) / (6.25 * 3 + 3.74 - 1)
    population_mean = 6.25 * 15.44 / (3.74 - 1)

    computed = expected_average_value(gg, np.array([x, 0.0]), np.array([m, 0.0]))

    assert computed[0] == pytest.approx(by_hand, rel=1e-12)
    assert computed[1] == pytest.approx(population_mean, rel=1e-12)
    assert population_mean < computed[0] < m  # between the two, as a weighted mean


def test_without_a_finite_population_mean_there_is_no_expected_average_value() -> None:
    assert math.isnan(expected_average_value(GammaGamma(2.0, 0.9, 10.0), one(2), one(30))[0])


def test_the_gamma_gamma_log_likelihood_is_the_density_of_the_mean_spend() -> None:
    gg = GammaGamma(p=6.25, q=3.74, gamma=15.44)
    x, m = 4, 35.5
    density = (
        math.exp(math.lgamma(6.25 * x + 3.74) - math.lgamma(6.25 * x) - math.lgamma(3.74))
        * 15.44**3.74
        * x ** (6.25 * x)
        * m ** (6.25 * x - 1)
        / (15.44 + x * m) ** (6.25 * x + 3.74)
    )

    assert gamma_gamma_log_likelihood(gg, one(x), one(m))[0] == pytest.approx(
        math.log(density), rel=1e-12
    )


def test_clv_sums_each_months_expected_purchases_discounted() -> None:
    # A horizon of 100 days in weeks: months end at 30, 60, 90 days and the last, partial
    # one at 100.
    x, t_x, T, value, rate = 4, 30.0, 40.0, 25.0, 0.01
    ends = [30 / 7, 60 / 7, 90 / 7, 100 / 7]
    cumulative = [0.0] + [paper_conditional_expectation(CDNOW, e, x, t_x, T) for e in ends]
    by_hand = sum(
        (cumulative[k] - cumulative[k - 1]) * value / (1 + rate) ** k for k in range(1, 5)
    )

    computed = clv(
        CDNOW,
        one(value),
        one(x),
        one(t_x),
        one(T),
        horizon=100 / 7,
        month=30 / 7,
        monthly_discount=rate,
    )[0]

    assert computed == pytest.approx(by_hand, rel=1e-9)


def test_clv_without_discount_is_expected_purchases_times_value() -> None:
    x, t_x, T = one(4), one(30.0), one(40.0)
    computed = clv(CDNOW, one(25.0), x, t_x, T, horizon=90 / 7, month=30 / 7, monthly_discount=0)

    assert computed[0] == pytest.approx(
        25.0 * expected_purchases(CDNOW, 90 / 7, x, t_x, T)[0], rel=1e-12
    )
