"""The statistics a drift report compares distributions with: PSI, Jensen-Shannon distance, the G-test.

Plain NumPy, so serving's monitoring tab needs no SciPy; each function's docstring says what it
computes and tests/test_monitoring.py checks them against hand-computed values.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

SMOOTHING = 0.5
"""Pseudo-count added to every bin before the PSI's logarithm: an empty bin (common with a
few dozen validation photos) would otherwise make the index infinite."""


def psi(observed: list[int], expected: list[int], smoothing: float = SMOOTHING) -> float:
    """Population stability index: sum of (p - q) ln(p / q) over bins, both sides smoothed."""
    p, q = shares(observed, smoothing), shares(expected, smoothing)
    return float(np.sum((p - q) * np.log(p / q)))


def js_distance(observed: list[int], expected: list[int]) -> float:
    """Jensen-Shannon distance in base 2: the square root of the divergence, in [0, 1]."""
    p, q = shares(observed, 0.0), shares(expected, 0.0)
    middle = (p + q) / 2
    divergence = (_kl(p, middle) + _kl(q, middle)) / 2
    return float(math.sqrt(max(divergence, 0.0)))


def g_statistic(observed: list[int], expected: list[int]) -> float:
    """Likelihood-ratio (G) statistic of ``observed`` counts against the shares of ``expected``
    (smoothed, so a group training never saw cannot make it infinite)."""
    counts = np.asarray(observed, dtype=np.float64)
    wanted = shares(expected, SMOOTHING) * counts.sum()
    present = counts > 0
    return float(2 * np.sum(counts[present] * np.log(counts[present] / wanted[present])))


def chi2_critical(degrees: int, alpha: float) -> float:
    """The chi-square quantile that chance exceeds with probability ``alpha`` (Wilson-Hilferty:
    within 3% of the exact value from 1 degree of freedom up at 0.001, without SciPy)."""
    z = statistics.NormalDist().inv_cdf(1 - alpha)
    h = 2 / (9 * degrees)
    return degrees * (1 - h + z * math.sqrt(h)) ** 3


def shares(counts: list[int], smoothing: float) -> np.ndarray:
    values = np.asarray(counts, dtype=np.float64) + smoothing
    if values.sum() <= 0:
        raise ValueError("a distribution needs at least one count")
    return values / values.sum()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    present = p > 0
    return float(np.sum(p[present] * np.log2(p[present] / q[present])))
