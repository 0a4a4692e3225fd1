"""Images for the reconstruction grid (Fig. 5): the same test scene in every task, mapped by every strategy.

The test split's scene states are shared by all tasks, so one test index gives the same scene
rendered in each task's domain, with one canonical target. The data comes from the cache the
runs were trained on (regenerated from the spec in ``config.json`` when missing: rendering
needs no download); the models from each strategy's first seed (a single-task run maps the
task-``j`` row with its task-``j`` model).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.data.cache import get_or_generate
from benchmark.data.spec import DataSpec
from benchmark.mapping.vae import load_vae
from reports.collect import RunResult
from reports.tables import strategy_key

log = logging.getLogger("ciim.reports")


@dataclass
class Samples:
    """What :func:`reports.figures.reconstruction_grid` draws."""

    rows: list[str]
    inputs: np.ndarray
    target: np.ndarray
    recons: dict[str, np.ndarray]


def _model_file(run: RunResult, task: int) -> Path:
    per_task = run.path / f"model_task{task}.pt"
    return per_task if run.schedule == "single" and per_task.is_file() else run.path / "model.pt"


def reconstruction_samples(runs: list[RunResult], data_root: Path, index: int = 0) -> Samples | None:
    """Test sample ``index`` of every task and its reconstruction by each strategy; None (logged) if impossible."""
    firsts: dict[str, RunResult] = {}
    for run in sorted(runs, key=lambda r: (strategy_key(r.strategy), r.seed)):
        firsts.setdefault(run.strategy, run)
    if not firsts:
        return None
    try:
        config = json.loads((next(iter(firsts.values())).path / "config.json").read_text())
        spec = DataSpec.from_dict(config["data"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("reports: no reconstruction grid (no usable config.json with a data spec: %s)", exc)
        return None
    data, _ = get_or_generate(spec, data_root, progress=False)
    index = min(index, data.test_targets.shape[0] - 1)
    inputs = data.test_inputs[:, index]
    recons = {}
    for name, run in firsts.items():
        try:
            files = [_model_file(run, j) for j in range(len(spec.tasks))]
            models = {path: load_vae(path) for path in set(files)}  # one file serves every row but for single
            recons[name] = np.concatenate([models[path].map_images(inputs[j : j + 1]) for j, path in enumerate(files)])
        except (OSError, ValueError) as exc:
            log.warning("reports: %s left out of the reconstruction grid (%s)", name, exc)
    rows = [f"Task {j}: {name}" for j, name in enumerate(spec.tasks)]
    return Samples(rows, inputs, data.test_targets[index], recons)
