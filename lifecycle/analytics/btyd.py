"""The "buy till you die" models of customer-base analysis, by maximum likelihood.

**BG/NBD** (Fader, Hardie & Lee, "Counting your customers the easy way", Marketing
Science 2005): while alive a customer buys at Poisson rate λ, λ ~ Gamma(r, alpha) across
customers; after each repeat purchase they leave for good with probability p,
p ~ Beta(a, b). A customer is summarised by ``x`` repeat purchases, the time ``t_x`` of
the last one and their age ``T``, both measured from the first purchase in periods.

**Gamma-Gamma** (Fader, Hardie & Lee, "RFM and CLV", J. Marketing Research 2005; Fader &
Hardie, "The Gamma-Gamma model of monetary value", 2013): each purchase of a customer is
worth z ~ Gamma(p, nu), nu ~ Gamma(q, gamma) across customers, independently of the purchase
process. A customer is summarised by ``x`` repeat purchases and their mean value ``m``.

Every likelihood is written in log space with ``scipy.special`` (``gammaln``,
``betaln``, ``logaddexp``), so that large frequencies and long histories neither
overflow nor lose precision; the fit optimises the logarithms of the parameters (so they
stay positive) with L-BFGS-B and analytic gradients, within bounds that keep a
degenerate sample from running a parameter off to zero or infinity. Standard errors come
from the inverse of the observed information (the Hessian of the log-likelihood at the
optimum, by central differences of the analytic gradient).

Every function takes and returns numpy arrays: a prediction for every customer is one
vectorised call.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

Array = NDArray[np.float64]

LOG_BOUND = math.log(1e8)
"""Every parameter stays within [1e-8, 1e8]: a sample that cannot identify one (no
repeat buyer, say) stops at a bound instead of overflowing."""
_HESSIAN_STEP = 1e-4
_RESTARTS = 5


@dataclass(frozen=True)
class BgNbd:
    """Parameters of the BG/NBD model: purchase rate Gamma(r, alpha), dropout Beta(a, b)."""

    NAMES: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGamma:
    """Parameters of the Gamma-Gamma model of spend per purchase."""

    NAMES: ClassVar[tuple[str, ...]] = ("p", "q", "gamma")

    p: float
    q: float
    gamma: float


P = TypeVar("P", BgNbd, GammaGamma)


@dataclass(frozen=True)
class Fit(Generic[P]):
    """A maximum-likelihood fit and how it went."""

    parameters: P
    log_likelihood: float
    customers: int
    converged: bool
    iterations: int
    message: str
    standard_errors: dict[str, float | None]
    """Per parameter; None when the information matrix is not invertible there."""
    log_covariance: Array | None
    """Covariance of the estimates of the parameters' logarithms (None: not invertible)."""


# BG/NBD -------------------------------------------------------------------------------


def bgnbd_log_likelihood(params: BgNbd, x: Array, t_x: Array, T: Array) -> Array:
    """Each customer's log-likelihood under ``params`` (FHL 2005, equation 6)."""
    theta = np.log([params.r, params.alpha, params.a, params.b])
    return _bgnbd_terms(theta, _Columns(x, t_x, T), gradient=False)[0]


class _Columns:
    """Columns of customers' figures, each kept as its distinct values and an index into
    them: a special function of a column is computed once per distinct value (a few
    hundred among a hundred thousand customers) and gathered."""

    def __init__(self, *columns: Array) -> None:
        self.distinct: list[tuple[Array, NDArray[np.intp]]] = [
            np.unique(np.asarray(column, dtype=float), return_inverse=True) for column in columns
        ]

    def __call__(self, column: int, function: Callable[[Array], Array]) -> Array:
        values, index = self.distinct[column]
        gathered: Array = function(values)[index]
        return gathered


def _bgnbd_terms(theta: Array, columns: _Columns, *, gradient: bool) -> tuple[Array, list[Array]]:
    """Per-customer log-likelihood and, with ``gradient``, its derivatives by the
    logarithms of r, alpha, a, b.

    L = B(a, b+x)/B(a, b) Γ(r+x) alpha^r / (Γ(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) Γ(r+x) alpha^r / (Γ(r) (alpha+t_x)^(r+x))
    """
    r, alpha, a, b = np.exp(theta)
    x = columns(0, lambda v: v)
    rx = r + x
    repeat = x > 0
    log_alpha_t = columns(1, lambda v: np.log(alpha + v))
    log_alpha_T = columns(2, lambda v: np.log(alpha + v))
    beta_ab = betaln(a, b)
    common = columns(0, lambda v: gammaln(r + v) - gammaln(r) + r * np.log(alpha))
    alive = columns(0, lambda v: betaln(a, b + v) - beta_ab) - rx * log_alpha_T
    # B(a+1, b+x-1) is read only where x > 0 (b - 1 may be anything).
    left_beta = columns(0, lambda v: betaln(a + 1, np.where(v > 0, b + v - 1, 1.0)) - beta_ab)
    left = np.where(repeat, left_beta - rx * log_alpha_t, -np.inf)
    either = np.logaddexp(alive, left)
    if not gradient:
        return common + either, []
    w_alive = np.exp(alive - either)
    w_left = 1.0 - w_alive
    psi_ab = digamma(a + b)
    psi_abx = columns(0, lambda v: digamma(a + b + v))
    d_r = (
        columns(0, lambda v: digamma(r + v) - digamma(r) + np.log(alpha))
        - w_alive * log_alpha_T
        - w_left * log_alpha_t
    )
    d_alpha = r / alpha - rx * (
        w_alive * columns(2, lambda v: 1 / (alpha + v))
        + w_left * columns(1, lambda v: 1 / (alpha + v))
    )
    d_a = (
        psi_ab - digamma(a) + w_alive * (digamma(a) - psi_abx) + w_left * (digamma(a + 1) - psi_abx)
    )
    d_b = (
        psi_ab
        - digamma(b)
        + w_alive * columns(0, lambda v: digamma(b + v))
        + w_left * columns(0, lambda v: digamma(np.where(v > 0, b + v - 1, 1.0)))
        - psi_abx
    )
    return common + either, [r * d_r, alpha * d_alpha, a * d_a, b * d_b]


def fit_bgnbd(x: Array, t_x: Array, T: Array) -> Fit[BgNbd]:
    """The maximum-likelihood BG/NBD parameters for customers ``(x, t_x, T)``."""
    (x, t_x, T), weights = _distinct(x, t_x, T)
    columns = _Columns(x, t_x, T)
    mean_age = _total(weights, T) / _total(weights, np.ones_like(T)) or 1.0
    start = np.log([1.0, mean_age, 1.0, 1.0])

    def terms(theta: Array, gradient: bool) -> tuple[Array, list[Array]]:
        return _bgnbd_terms(theta, columns, gradient=gradient)

    fit = _maximise(BgNbd, terms, weights, start)
    r, alpha, a, b = (fit.parameters.r, fit.parameters.alpha, fit.parameters.a, fit.parameters.b)
    # One dropout probability for everyone is the limit a, b -> infinity at a/(a+b) fixed;
    # if the data cannot reject it (likelihood ratio against the fit, 5 %), the spread of
    # a and b along that ray is not identified, whatever the optimiser reported.
    scale = max(_POINT_MASS / (a + b), 1.0)
    one_p = np.log([r, alpha, a * scale, b * scale])
    ratio = 2 * (fit.log_likelihood - _total(weights, terms(one_p, False)[0]))
    if ratio < _CHI2_1_95:
        message = (
            f"{fit.message}; the data cannot tell the customers' dropout probabilities "
            f"apart from one for everyone, p = a/(a+b) = {a / (a + b):.4g} (a and b "
            "themselves are not identified)"
        )
        return dataclasses.replace(fit, converged=False, message=message)
    return fit


_POINT_MASS = 1e7
"""a + b at which the Beta of dropout probabilities is, to the data, one point."""
_CHI2_1_95 = 3.841
"""The 95 % quantile of χ² with one degree of freedom."""


def p_alive(params: BgNbd, x: Array, t_x: Array, T: Array) -> Array:
    """P(alive at T | x, t_x, T) (FHL 2005, equation 11); 1 for a customer without a
    repeat purchase, who by the model cannot have left yet."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    log_odds_left = (
        np.log(a)
        - np.log(np.where(repeat, b + x - 1, 1.0))
        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    return np.where(repeat, expit(-log_odds_left), 1.0)


def expected_purchases(params: BgNbd, t: float | Array, x: Array, t_x: Array, T: Array) -> Array:
    """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, equation 10):

        (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)] P(alive)

    with z = t/(alpha+T+t)."""
    expected: Array = _expected_while_alive(params, t, x, T) * p_alive(params, x, t_x, T)
    return expected


def _expected_while_alive(params: BgNbd, t: float | Array, x: Array, T: Array) -> Array:
    """The expectation of ``expected_purchases`` for a customer known to be alive at T:
    (a+b+x-1)/(a-1) (1 - h), h = ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z).

    The hypergeometric series of h has positive terms (for x > 0 at least), so scipy's
    ``hyp2f1`` is accurate wherever it is finite; where the terms grow past what a float
    holds (hundreds of purchases, or a and b in the millions, as when the data make the
    dropout probability the same for everyone) it overflows, and h is summed term by term
    in log space instead. a = 1 and a + b + x = 1 are removable singularities: a parameter
    within 1e-7 of one is moved off it.
    """
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a if abs(params.a - 1) > _SINGULAR else 1 + _SINGULAR
    big_a = a + b + x - 1
    c = np.where(np.abs(big_a) > _SINGULAR, big_a, _SINGULAR)
    z = np.broadcast_to(t / (alpha + T + t), np.broadcast_shapes(np.shape(t), np.shape(x)))
    upper, lower = r + x, b + x
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is caught below
        h = np.exp(upper * np.log1p(-z)) * hyp2f1(upper, lower, c, z)
    overflowed = ~np.isfinite(h)
    if overflowed.any():
        h = np.array(h, dtype=float)
        h[overflowed] = _h_in_log_space(
            *(np.broadcast_to(v, h.shape)[overflowed] for v in (upper, lower, c, z))
        )
    expected: Array = c / (a - 1) * (1 - h)
    return expected


_SINGULAR = 1e-7
_SERIES_TERMS = 1_000_000


def _h_in_log_space(upper: Array, lower: Array, c: Array, z: Array) -> Array:
    """(1-z)^upper 2F1(upper, lower; c; z) by its series, summed in log space (all
    arguments positive, z < 1: every term is positive, nothing cancels)."""
    log_term = np.zeros_like(z)
    log_sum = np.zeros_like(z)
    active = np.arange(len(z))
    for n in range(_SERIES_TERMS):
        if not len(active):
            break
        ratio = z[active] * (upper[active] + n) * (lower[active] + n)
        ratio /= (c[active] + n) * (n + 1)
        log_term[active] += np.log(ratio)
        log_sum[active] = np.logaddexp(log_sum[active], log_term[active])
        # Past the largest term, and the next ones add nothing a float can hold.
        done = (ratio < 1) & (log_term[active] < log_sum[active] - 40)
        active = active[~done]
    result: Array = np.exp(upper * np.log1p(-z) + log_sum)
    return result


def expected_purchases_from_start(params: BgNbd, t: Array) -> Array:
    """E[repeat purchases in (0, t]] of a customer who made a first purchase at 0
    (FHL 2005, equation 9): what the papers' tracking chart sums over customers."""
    zeros = np.zeros_like(t, dtype=float)
    return expected_purchases(params, t, zeros, zeros, zeros)


# Gamma-Gamma ----------------------------------------------------------------------------


def gamma_gamma_log_likelihood(params: GammaGamma, x: Array, m: Array) -> Array:
    """Each customer's log-likelihood of their mean spend ``m`` over ``x`` purchases."""
    theta = np.log([params.p, params.q, params.gamma])
    return _gamma_gamma_terms(theta, _Columns(x, m), gradient=False)[0]


def _gamma_gamma_terms(
    theta: Array, columns: _Columns, *, gradient: bool
) -> tuple[Array, list[Array]]:
    """The density of the mean of x purchases, with nu integrated out:

    f(m | x) = Γ(px+q) / (Γ(px) Γ(q)) gamma^q x^(px) m^(px-1) / (gamma + x m)^(px+q)
    """
    p, q, gamma = np.exp(theta)
    x = columns(0, lambda v: v)
    m = columns(1, lambda v: v)
    px = p * x
    log_m = columns(1, np.log)
    log_total = np.log(gamma + m * x)
    log_mx = log_m + columns(0, np.log)
    value = (
        columns(0, lambda v: gammaln(p * v + q) - gammaln(p * v))
        - gammaln(q)
        + q * np.log(gamma)
        + px * log_mx
        - log_m
        - (px + q) * log_total
    )
    if not gradient:
        return value, []
    psi = columns(0, lambda v: digamma(p * v + q))
    d_p = x * (psi - columns(0, lambda v: digamma(p * v)) + log_mx - log_total)
    d_q = psi - digamma(q) + np.log(gamma) - log_total
    d_gamma = q / gamma - (px + q) / (gamma + m * x)
    return value, [p * d_p, q * d_q, gamma * d_gamma]


def fit_gamma_gamma(x: Array, m: Array) -> Fit[GammaGamma]:
    """The maximum-likelihood Gamma-Gamma parameters for repeat buyers (x > 0) with mean
    repeat spend ``m`` > 0."""
    (x, m), weights = _distinct(x, m)
    columns = _Columns(x, m)
    start = np.log([1.0, 1.0, _total(weights, m) / _total(weights, np.ones_like(m)) or 1.0])

    def terms(theta: Array, gradient: bool) -> tuple[Array, list[Array]]:
        return _gamma_gamma_terms(theta, columns, gradient=gradient)

    return _maximise(GammaGamma, terms, weights, start)


def expected_average_value(params: GammaGamma, x: Array, m: Array) -> Array:
    """E[spend per purchase | x, m] = p (gamma + x m) / (p x + q - 1) (FHL 2005b, equation 5):
    a weighted mean of the population's mean p gamma / (q - 1) and the customer's own; for a
    customer without a repeat purchase, the population's. NaN where q <= 1: the
    population's mean spend does not exist then."""
    p, q, gamma = params.p, params.q, params.gamma
    if q <= 1:
        return np.full(np.shape(x), np.nan)
    value: Array = p * (gamma + x * m) / (p * x + q - 1)
    return value


# Customer lifetime value ----------------------------------------------------------------


def clv(
    params: BgNbd,
    value: Array,
    x: Array,
    t_x: Array,
    T: Array,
    *,
    horizon: float,
    month: float,
    monthly_discount: float,
) -> Array:
    """Σ over each month k of the horizon of E[purchases in month k] * ``value`` /
    (1 + monthly_discount)^k; the last month may be partial. ``horizon`` and ``month``
    in periods."""
    total = np.zeros(np.shape(x))
    before = np.zeros(np.shape(x))
    months = math.ceil(horizon / month - 1e-9)
    for k in range(1, months + 1):
        upto = _expected_while_alive(params, min(k * month, horizon), x, T)
        total += (upto - before) / (1 + monthly_discount) ** k
        before = upto
    result: Array = total * p_alive(params, x, t_x, T) * value
    return result


# Maximum likelihood ---------------------------------------------------------------------

Terms = Callable[[Array, bool], tuple[Array, list[Array]]]


def _distinct(*columns: Array) -> tuple[list[Array], Array]:
    """The distinct rows of ``columns`` and how many customers share each: customers
    with the same summary contribute the same likelihood, computed once."""
    stacked = np.column_stack([np.asarray(c, dtype=float) for c in columns])
    rows, counts = np.unique(stacked, axis=0, return_counts=True)
    return [rows[:, i] for i in range(rows.shape[1])], counts.astype(float)


def _maximise(kind: type[P], terms: Terms, weights: Array, start: Array) -> Fit[P]:
    customers = float(weights.sum())

    def objective(theta: Array) -> tuple[float, Array]:
        # The mean negative log-likelihood: tolerances then mean the same at any size.
        value, gradient = terms(theta, True)
        mean = -_total(weights, value) / customers
        if not math.isfinite(mean):
            return math.inf, np.zeros_like(theta)
        return mean, -np.array([_total(weights, g) for g in gradient]) / customers

    iterations = 0
    for _ in range(_RESTARTS):
        result = minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * len(start),
            options={"maxiter": 2_000, "ftol": 1e-14, "gtol": 1e-9},
        )
        iterations += int(result.nit)
        if result.success:
            break
        # A line search that failed in a long flat valley: its curvature memory was
        # misleading; start afresh from where it stopped.
        start = np.asarray(result.x, dtype=float)
    theta = np.asarray(result.x, dtype=float)
    at_bound = bool(np.any(np.abs(theta) >= LOG_BOUND - 1e-6))
    covariance = _log_covariance(terms, weights, theta)
    values = np.exp(theta)
    errors: dict[str, float | None] = dict.fromkeys(kind.NAMES)
    if covariance is not None:
        variances = np.diag(covariance)
        errors = {
            name: float(value * math.sqrt(variance))
            for name, value, variance in zip(kind.NAMES, values, variances, strict=True)
        }
    message = str(result.message).strip().rstrip(":")
    if at_bound:
        message += "; a parameter reached its bound (the data cannot identify it)"
    elif covariance is None:
        message += "; the information matrix is singular (the data cannot identify them all)"
    return Fit(
        parameters=kind(*(float(v) for v in values)),
        log_likelihood=_total(weights, terms(theta, False)[0]),
        customers=round(customers),
        converged=bool(result.success) and not at_bound and covariance is not None,
        iterations=iterations,
        message=message,
        standard_errors=errors,
        log_covariance=covariance,
    )


def _log_covariance(terms: Terms, weights: Array, theta: Array) -> Array | None:
    """The inverse of the observed information in log-parameters, or None."""
    size = len(theta)

    def gradient(at: Array) -> Array:
        return np.array([_total(weights, g) for g in terms(at, True)[1]])

    hessian = np.empty((size, size))
    for i in range(size):
        step = np.zeros(size)
        step[i] = _HESSIAN_STEP
        hessian[i] = (gradient(theta + step) - gradient(theta - step)) / (2 * _HESSIAN_STEP)
    information = -(hessian + hessian.T) / 2
    try:
        np.linalg.cholesky(information)  # positive definite: a proper maximum
        covariance: Array = np.linalg.inv(information).astype(np.float64)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(covariance)):
        return None
    return covariance


def _total(weights: Array, values: Array) -> float:
    # Not ``weights @ values``: BLAS threads cost more than they save on vectors, and
    # far more on a busy machine.
    return float(np.sum(weights * values))


def parameters_dict(params: BgNbd | GammaGamma) -> dict[str, float]:
    return {name: float(getattr(params, name)) for name in params.NAMES}
