"""Parameter recovery: populations drawn from each model's generative process with known
parameters give those parameters back, within the sampling error the fit reports.

The error is the fit's own: the inverse of the observed information (the Hessian of the
log-likelihood at the optimum) for the logarithms of the parameters, which the fit
optimises. Under the model, the squared Mahalanobis distance of the estimate from the
truth in that metric is χ² with as many degrees of freedom as parameters; the tests
allow its 99.9 % quantile, with fixed seeds. That the reported errors are honest (not
inflated until anything passes) is checked against the spread of repeated fits, and that
they are small enough to mean something by bounding them.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from lifecycle.analytics.btyd import (
    Array,
    BgNbd,
    Fit,
    GammaGamma,
    fit_bgnbd,
    fit_gamma_gamma,
    parameters_dict,
)
from tests.analytics_support import bgnbd_summaries, gamma_gamma_means

CUSTOMERS = 20_000
QUANTILE = 0.999

BGNBD_SETTINGS = [
    # The estimates of FHL (2005) on the CDNOW sample, in weeks.
    pytest.param(BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426), 11, id="cdnow"),
    pytest.param(BgNbd(r=1.5, alpha=10.0, a=2.0, b=5.0), 12, id="steady-loyal"),
    pytest.param(BgNbd(r=0.5, alpha=2.0, a=0.4, b=1.5), 13, id="eager-fickle"),
]
GAMMA_GAMMA_SETTINGS = [
    # The estimates of Fader & Hardie (2013) on the CDNOW sample.
    pytest.param(GammaGamma(p=6.25, q=3.74, gamma=15.44), 21, id="cdnow"),
    pytest.param(GammaGamma(p=2.0, q=5.0, gamma=50.0), 22, id="spread-spend"),
    pytest.param(GammaGamma(p=1.2, q=2.5, gamma=8.0), 23, id="heavy-tail"),
]


def log_error(fit: Fit[BgNbd] | Fit[GammaGamma], truth: BgNbd | GammaGamma) -> Array:
    estimate = list(parameters_dict(fit.parameters).values())
    error: Array = np.log(estimate) - np.log(list(parameters_dict(truth).values()))
    return error


def distance(fit: Fit[BgNbd] | Fit[GammaGamma], truth: BgNbd | GammaGamma) -> float:
    """Squared Mahalanobis distance of the estimate from ``truth``, in the fit's metric."""
    assert fit.log_covariance is not None
    error = log_error(fit, truth)
    return float(error @ np.linalg.solve(fit.log_covariance, error))


def bgnbd_population(truth: BgNbd, seed: int, customers: int) -> tuple[Array, Array, Array]:
    rng = np.random.default_rng(seed)
    # First purchases spread over a year, observed for a year and a half at least.
    return bgnbd_summaries(rng, truth, rng.uniform(26, 78, customers))


def gamma_gamma_population(truth: GammaGamma, seed: int, customers: int) -> tuple[Array, Array]:
    rng = np.random.default_rng(seed)
    x = 1.0 + rng.poisson(3.0, customers)
    return x, gamma_gamma_means(rng, truth, x)


@pytest.mark.parametrize(("truth", "seed"), BGNBD_SETTINGS)
def test_bgnbd_recovers_the_parameters_of_a_simulated_population(truth: BgNbd, seed: int) -> None:
    fit = fit_bgnbd(*bgnbd_population(truth, seed, CUSTOMERS))

    assert fit.converged, fit.message
    assert fit.customers == CUSTOMERS
    assert distance(fit, truth) < chi2.ppf(QUANTILE, df=4)
    assert fit.log_covariance is not None
    assert np.all(np.sqrt(np.diag(fit.log_covariance)) < 0.1)  # each known within ~10 %


@pytest.mark.parametrize(("truth", "seed"), GAMMA_GAMMA_SETTINGS)
def test_gamma_gamma_recovers_the_parameters_of_a_simulated_population(
    truth: GammaGamma, seed: int
) -> None:
    fit = fit_gamma_gamma(*gamma_gamma_population(truth, seed, CUSTOMERS))

    assert fit.converged, fit.message
    assert distance(fit, truth) < chi2.ppf(QUANTILE, df=3)
    assert fit.log_covariance is not None
    assert np.all(np.sqrt(np.diag(fit.log_covariance)) < 0.1)


def test_the_recovery_check_rejects_parameters_other_than_the_true_ones() -> None:
    fit = fit_bgnbd(*bgnbd_population(BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426), 11, 20_000))
    nearby = BgNbd(r=0.243 * 1.15, alpha=4.414, a=0.793, b=2.426)  # r off by 15 %

    assert distance(fit, nearby) > chi2.ppf(QUANTILE, df=4)


def test_bgnbd_standard_errors_match_the_spread_of_repeated_fits() -> None:
    truth = BgNbd(r=0.5, alpha=2.0, a=0.4, b=1.5)
    fits = [fit_bgnbd(*bgnbd_population(truth, 100 + k, 4_000)) for k in range(12)]

    # Under the model the distances are independent χ²(4): their sum is χ²(48).
    total = sum(distance(fit, truth) for fit in fits)
    assert chi2.ppf((1 - QUANTILE) / 2, df=48) < total < chi2.ppf((1 + QUANTILE) / 2, df=48)


def test_gamma_gamma_standard_errors_match_the_spread_of_repeated_fits() -> None:
    truth = GammaGamma(p=2.0, q=5.0, gamma=50.0)
    fits = [fit_gamma_gamma(*gamma_gamma_population(truth, 200 + k, 4_000)) for k in range(12)]

    total = sum(distance(fit, truth) for fit in fits)
    assert chi2.ppf((1 - QUANTILE) / 2, df=36) < total < chi2.ppf((1 + QUANTILE) / 2, df=36)


def test_a_sample_without_repeat_buyers_cannot_identify_the_dropout_and_says_so() -> None:
    rng = np.random.default_rng(5)
    T = rng.uniform(10, 50, 500)

    fit = fit_bgnbd(np.zeros(500), np.zeros(500), T)

    assert not fit.converged
    assert "cannot identify" in fit.message


def test_one_dropout_probability_for_everyone_is_recognised_and_estimated() -> None:
    # a and b so large that every customer leaves with probability 0.25 after a purchase.
    truth = BgNbd(r=0.5, alpha=3.0, a=2.5e7, b=7.5e7)
    x, t_x, T = bgnbd_population(truth, 31, CUSTOMERS)

    fit = fit_bgnbd(x, t_x, T)

    assert not fit.converged
    assert "one for everyone" in fit.message
    a, b = fit.parameters.a, fit.parameters.b
    assert a / (a + b) == pytest.approx(0.25, abs=0.02)
    assert fit.parameters.r == pytest.approx(0.5, rel=0.1)
