"""Is a difference between two initialisations beyond the trials' noise? Welch's t-test, two-sided, at 5%.

Why Welch's t: a card row is the mean of a few fine-tuning trials (2 on the built-in data, 5 in the paper),
and the rows' spreads differ (random init varies more than a pretrained start), so the test must not
assume equal variances. Welch's t uses each row's own sample std and, through the Welch-Satterthwaite
degrees of freedom, gets strict when the trials are few: with 2 trials per row a win needs a gap of 4.3
to 12.7 standard errors of the difference (the t quantile 0.975 at 2 to 1 degrees of freedom), with 5
trials per row 2.3 to 2.8.
A rule such as |delta| > 2 pooled std ignores the trial count and the unequal spreads. With a single trial
on either side there is no spread to compare against: the difference is shown, but never counted as a win.

The t distribution is computed here (regularised incomplete beta by its continued fraction, the quantile
by bisection), to add no dependency: scipy is not part of the stack.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05  # two-sided
TEST_NAME = "Welch's t-test, two-sided, 5%"


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),             # even step
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # odd step
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    if x < (a + 1.0) / (a + b + 2.0):  # the continued fraction converges fast here
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom (df > 0, not necessarily an integer)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isinf(t):
        return 0.0
    return incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def t_cdf(t: float, df: float) -> float:
    p = t_two_sided_p(t, df) / 2.0
    return 1.0 - p if t >= 0 else p


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t (0 < q < 1), by bisection on the CDF."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_cdf(mid, df) < q else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


@dataclass(frozen=True)
class Welch:
    delta: float        # mean(a) - mean(b)
    se: float           # standard error of delta: sqrt(s_a^2 / n_a + s_b^2 / n_b)
    df: float           # Welch-Satterthwaite degrees of freedom
    t: float
    p: float            # two-sided
    ci: float           # half-width of the (1 - ALPHA) confidence interval of delta
    significant: bool   # p < ALPHA: the interval delta +- ci excludes 0


def welch(mean_a: float, std_a: float | None, n_a: int, mean_b: float, std_b: float | None, n_b: int,
          alpha: float = ALPHA) -> Welch | None:
    """Welch's t-test of mean_a vs mean_b from sample stds (ddof=1); None when either side has fewer than
    2 trials (no spread to judge a difference by)."""
    if n_a < 2 or n_b < 2 or std_a is None or std_b is None:
        return None
    delta = mean_a - mean_b
    va, vb = std_a ** 2 / n_a, std_b ** 2 / n_b
    se = math.sqrt(va + vb)
    if se == 0.0:  # every trial of both rows identical: any difference is beyond the (zero) noise
        return Welch(delta, 0.0, math.inf, math.copysign(math.inf, delta) if delta else 0.0,
                     0.0 if delta else 1.0, 0.0, delta != 0.0)
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    t = delta / se
    p = t_two_sided_p(t, df)
    return Welch(delta, se, df, t, p, t_quantile(1.0 - alpha / 2.0, df) * se, p < alpha)
