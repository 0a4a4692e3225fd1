"""Statistics over seeds, all from scipy: a t interval of a mean, Wilson's interval of pooled
successes, and the paired tests that judge the paper's claims.

Seeds of one sweep share the data set and, per seed, the Task-0 model of every continual
strategy, so two strategies are compared seed by seed: a paired t-test on the per-seed
differences (``scipy.stats.ttest_rel``), and "matches" is a paired equivalence test (two
one-sided t-tests, TOST, within a relative margin). A Wilcoxon signed-rank test would assume
less, but with five seeds its smallest two-sided p-value is 0.0625, so it could never find
a difference significant at 95%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from benchmark.rl.evaluate import wilson_interval as wilson  # noqa: F401  (pooled success, re-exported)

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Confidence interval of the mean of ``values`` (Student's t); NaNs with fewer than two values."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if x.size < 2:
        return math.nan, math.nan
    sem = stats.sem(x)
    if sem == 0:
        return float(x.mean()), float(x.mean())
    low, high = stats.t.interval(confidence, x.size - 1, loc=x.mean(), scale=sem)
    return float(low), float(high)


LOWER, HIGHER, UNCLEAR = "lower", "higher", "inconclusive"


@dataclass(frozen=True)
class Paired:
    """``a`` against ``b`` over the seeds both have."""

    seeds: int
    mean_a: float
    mean_b: float
    p_value: float
    """Two-sided paired t-test of a - b (NaN with fewer than two seeds)."""
    outcome: str
    """``lower`` / ``higher`` (a than b, significant at 95%), else ``inconclusive``."""

    def describe(self, a: str, b: str, digits: int = 5) -> str:
        p = "n/a" if math.isnan(self.p_value) else f"{self.p_value:.3f}"
        values = f"{a} {self.mean_a:.{digits}f} vs {b} {self.mean_b:.{digits}f}"
        return f"{values} (paired t-test p = {p}, {self.seeds} seed{'s' if self.seeds != 1 else ''})"


def _pairs(a: dict[int, float], b: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    seeds = sorted(set(a) & set(b))
    return np.array([a[s] for s in seeds], dtype=float), np.array([b[s] for s in seeds], dtype=float)


def paired(a: dict[int, float], b: dict[int, float]) -> Paired:
    """Is ``a`` (seed -> value) significantly lower or higher than ``b``, seed by seed?"""
    x, y = _pairs(a, b)
    if x.size == 0:
        return Paired(0, math.nan, math.nan, math.nan, UNCLEAR)
    d = x - y
    if x.size < 2:
        p = math.nan
    elif np.allclose(d, d[0]):  # no spread: t is 0 (equal) or infinite (a constant shift)
        p = 1.0 if d[0] == 0 else 0.0
    else:
        p = float(stats.ttest_rel(x, y).pvalue)
    outcome = UNCLEAR if math.isnan(p) or p >= ALPHA else (LOWER if d.mean() < 0 else HIGHER)
    return Paired(int(x.size), float(x.mean()), float(y.mean()), p, outcome)


def equivalent(a: dict[int, float], b: dict[int, float], margin: float) -> bool:
    """TOST: is the mean paired difference significantly within ``margin`` x the mean of ``b``?"""
    x, y = _pairs(a, b)
    if x.size < 2:
        return False
    d, bound = x - y, margin * abs(float(y.mean()))
    if np.allclose(d, d[0]):
        return abs(float(d[0])) < bound
    above = stats.ttest_1samp(d, -bound, alternative="greater").pvalue
    below = stats.ttest_1samp(d, bound, alternative="less").pvalue
    return bool(max(above, below) < ALPHA)
