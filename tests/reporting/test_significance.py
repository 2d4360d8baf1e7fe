"""The card's significance test: Student's t distribution (computed without scipy) against an independent
numerical integration of its density and against the published two-sided 5% critical values; Welch's test
against a direct computation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mocobench.reporting.significance import t_cdf, t_quantile, t_two_sided_p, welch


def t_density(x: np.ndarray, df: float) -> np.ndarray:
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    return c * (1 + x * x / df) ** (-(df + 1) / 2)


def integrated_cdf(t: float, df: float) -> float:
    """P(T <= t) = 1/2 + integral of the density over [0, t] (trapezoids on a fine grid)."""
    x = np.linspace(0.0, abs(t), 200_001)
    y = t_density(x, df)
    half = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))
    return 0.5 + math.copysign(half, t)


@pytest.mark.parametrize("df", [1.0, 2.0, 2.7, 4.0, 10.0, 40.0])
@pytest.mark.parametrize("t", [-3.1, -0.4, 0.0, 0.9, 2.0, 6.5])
def test_t_cdf_matches_the_integrated_density(t, df):
    assert t_cdf(t, df) == pytest.approx(integrated_cdf(t, df), abs=1e-7)
    assert t_two_sided_p(t, df) == pytest.approx(2 * (1 - integrated_cdf(abs(t), df)), abs=1e-7)


# two-sided 5% critical values t_{0.975, df} as printed in every t table
@pytest.mark.parametrize("df,critical", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (10, 2.228),
                                         (30, 2.042)])
def test_t_quantile_matches_the_tables(df, critical):
    q = t_quantile(0.975, df)
    assert q == pytest.approx(critical, abs=5e-4)
    assert t_cdf(q, df) == pytest.approx(0.975, abs=1e-10) and t_quantile(0.025, df) == pytest.approx(-q)


def test_welch_against_a_direct_computation():
    a, b = np.array([63.1, 63.5, 62.9]), np.array([60.0, 60.4, 59.8, 60.3])
    res = welch(a.mean(), a.std(ddof=1), len(a), b.mean(), b.std(ddof=1), len(b))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    assert res.t == pytest.approx(t) and res.df == pytest.approx(df) and res.se == pytest.approx(math.sqrt(va + vb))
    assert res.p == pytest.approx(2 * (1 - integrated_cdf(abs(t), df)), abs=1e-7)
    assert res.significant and res.ci < abs(res.delta)  # the 95% interval excludes 0 exactly when p < 5%
    close = welch(20.6, 0.65, 3, 20.2, 0.76, 3)
    assert not close.significant and close.ci > abs(close.delta)


def test_welch_needs_two_trials_a_side():
    assert welch(1.0, None, 1, 0.0, 0.1, 3) is None
    assert welch(1.0, 0.1, 3, 0.0, 0.1, 1) is None
