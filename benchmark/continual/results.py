"""The results matrices of a run and its ``results.json`` content.

Row ``i`` of each matrix is the evaluation after training step ``i``, column ``j`` the test
experience of task ``j``.
"""

from __future__ import annotations

from typing import Any

from benchmark.continual.config import RunConfig
from benchmark.mapping.metrics import EVAL_KEYS

MATRIX_KEYS = {key: f"{key}_matrix" for key in EVAL_KEYS}


def empty_rows() -> dict[str, list[list[float]]]:
    return {key: [] for key in EVAL_KEYS}


def append_row(rows: dict[str, list[list[float]]], row: dict[str, list[float]]) -> None:
    for key in EVAL_KEYS:
        rows[key].append(row[key])


def make_results(cfg: RunConfig, schedule: str, rows: dict[str, list[list[float]]], wall: float) -> dict[str, Any]:
    """The ``results.json`` content: matrices (row = after step i, column = test task) and final values."""
    results: dict[str, Any] = {
        "strategy": cfg.strategy,
        "preset": cfg.preset,
        "seed": cfg.seed,
        "schedule": schedule,
        "tasks": list(cfg.data.tasks),
        "device": cfg.device,
        "wall_time_s": round(wall, 2),
    }
    for key, name in MATRIX_KEYS.items():
        results[name] = rows[key]
    for key in EVAL_KEYS:
        matrix = rows[key]
        # A single-task model is judged on its own task; the others by their last model.
        final = [matrix[j][j] for j in range(len(matrix))] if schedule == "single" else matrix[-1]
        results["final_mse" if key == "mse" else f"final_{key}"] = final
    return results
