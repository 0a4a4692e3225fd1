"""Continual-learning metrics from the matrix ``R[i][j]`` of test errors (MSE: lower is better).

Definitions follow Lopez-Paz & Ranzato (2017, GEM) and Chaudhry et al. (2018, RWalk), written
for an *error* rather than an accuracy, so every sign is flipped and stated in
:data:`DEFINITIONS`. ``T`` is the number of tasks, ``R`` has ``T`` rows (after each experience)
and ``T`` columns (test tasks).
"""

from __future__ import annotations

import numpy as np

DEFINITIONS: dict[str, str] = {
    "avg_final_mse": "Average final MSE: mean over test tasks j of R[T-1][j], the final model's error.",
    "forgetting": (
        "Forgetting of task j < T-1: R[T-1][j] - min over i in [j, T-2] of R[i][j], how much the final error "
        "exceeds the best error the task had after it was learned (0 = none; higher = more forgetting)."
    ),
    "bwt": (
        "Backward transfer: mean over j < T-1 of R[j][j] - R[T-1][j], the change of task j's error from just "
        "after learning it to the end (negative = later tasks made it worse)."
    ),
    "zero_shot": (
        "Forward transfer (zero-shot error): mean over j > 0 of R[j-1][j], the error on task j before training "
        "on it (lower = earlier tasks already prepared the model for it)."
    ),
}
"""One line per metric, printed in the report."""


def _check(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 1:
        raise ValueError(f"R must be a square matrix (after-experience x test-task), got shape {r.shape}")
    return r


def avg_final_mse(r: np.ndarray) -> float:
    """Mean of the last row of ``R``."""
    return float(_check(r)[-1].mean())


def forgetting(r: np.ndarray) -> np.ndarray:
    """Per-task forgetting, one value per task ``j < T-1`` (see :data:`DEFINITIONS`)."""
    r = _check(r)
    t = r.shape[0]
    return np.array([r[t - 1, j] - r[j : t - 1, j].min() for j in range(t - 1)])


def backward_transfer(r: np.ndarray) -> float:
    """BWT for an error: mean of ``R[j][j] - R[T-1][j]`` over ``j < T-1``; NaN with one task."""
    r = _check(r)
    t = r.shape[0]
    if t < 2:
        return float("nan")
    return float(np.mean([r[j, j] - r[t - 1, j] for j in range(t - 1)]))


def zero_shot_error(r: np.ndarray) -> float:
    """Forward transfer as the mean error on each task before it is trained on; NaN with one task."""
    r = _check(r)
    t = r.shape[0]
    if t < 2:
        return float("nan")
    return float(np.mean([r[j - 1, j] for j in range(1, t)]))


def cl_metrics(r: np.ndarray) -> dict[str, float | list[float]]:
    """All metrics of :data:`DEFINITIONS` for one run's ``R``."""
    return {
        "avg_final_mse": avg_final_mse(r),
        "forgetting": forgetting(r).tolist(),
        "bwt": backward_transfer(r),
        "zero_shot": zero_shot_error(r),
    }
