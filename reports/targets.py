"""Reproduction targets, in the style of Avalanche's continual-learning-baselines: for a preset
and strategy, a metric's expected value (the mean over a sweep's seeds) and a two-sided
tolerance; a new sweep reproduces a target when its own mean over the same seeds falls inside.

Metrics are ``<key>/<task>`` of every run's ``results.json`` finals, ``key`` in
:data:`KEYS`, ``task`` a test task's domain or ``mean`` (over the tasks). A target's tolerance
is the larger of the half-width of a 99% t interval of the seeds' mean and
:data:`RELATIVE_FLOOR` of the value: the first covers the seeds' own spread, the second the
differences between machines (the same agent config gave 100% on one machine and 96% on
another; a VAE's last digits move too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from reports.collect import RunResult

KEYS = ("mse", "target_error_m")
"""The finals a target may name: the MSE (the paper's measure) and the median target error (metres)."""
RELATIVE_FLOOR = 0.05
CONFIDENCE = 0.99
COLUMNS = ["preset", "strategy", "metric", "expected", "tolerance", "seeds"]


class TargetError(ValueError):
    """A targets file that cannot be used; one line."""


def metric_values(runs: list[RunResult]) -> pd.DataFrame:
    """One row per run and metric: preset, strategy, seed, metric, value."""
    rows = []
    for run in runs:
        for key in KEYS:
            final = run.final(key)
            name = "final_mse" if key == "mse" else f"final_{key}"
            for task, value in zip(run.tasks, final, strict=True):
                rows.append((run.preset, run.strategy, run.seed, f"{name}/{task}", float(value)))
            rows.append((run.preset, run.strategy, run.seed, f"{name}/mean", float(np.mean(final))))
    return pd.DataFrame(rows, columns=["preset", "strategy", "seed", "metric", "value"])


def make_targets(runs: list[RunResult], seeds: str) -> pd.DataFrame:
    """Targets from ``runs`` (at least two seeds of each strategy): expected mean and tolerance."""
    values = metric_values(runs)
    out = []
    for (preset, strategy, metric), group in values.groupby(["preset", "strategy", "metric"], sort=True):
        x = group["value"].to_numpy(float)
        if x.size < 2:
            raise TargetError(f"{strategy} on {preset} has {x.size} seed; targets need at least two")
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, x.size - 1) * stats.sem(x))
        tolerance = max(half, RELATIVE_FLOOR * abs(float(x.mean())))
        out.append((preset, strategy, metric, float(x.mean()), tolerance, seeds))
    return pd.DataFrame(out, columns=COLUMNS)


def read_targets(path: Path, preset: str) -> pd.DataFrame:
    """The rows of ``path`` for ``preset``; ``TargetError`` in one line otherwise."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read the targets {path}: {exc}") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise TargetError(f"{path} lacks the column(s) {', '.join(missing)}")
    rows = table[table["preset"] == preset]
    if rows.empty:
        presets = ", ".join(map(str, table["preset"].unique()))
        raise TargetError(f"{path} has no target for preset {preset!r} (it has: {presets})")
    return rows.reset_index(drop=True)


@dataclass(frozen=True)
class Check:
    table: pd.DataFrame
    """preset, strategy, metric, expected, tolerance, reproduced, seeds found, ok."""

    @property
    def passed(self) -> bool:
        return bool(self.table["ok"].all())


def check(targets: pd.DataFrame, runs: list[RunResult], seeds: list[int]) -> Check:
    """Each target against the mean over ``seeds`` of the matching runs (a missing run fails its target)."""
    values = metric_values([r for r in runs if r.seed in seeds])
    rows = []
    for target in targets.itertuples(index=False):
        found = values[(values["preset"] == target.preset) & (values["strategy"] == target.strategy)
                       & (values["metric"] == target.metric)]  # fmt: skip
        reproduced = float(found["value"].mean()) if not found.empty else math.nan
        complete = found["seed"].nunique() == len(seeds)
        ok = complete and abs(reproduced - target.expected) <= target.tolerance
        rows.append({"benchmark": target.preset, "strategy": target.strategy, "metric": target.metric,
                     "expected": target.expected, "tolerance": target.tolerance, "reproduced": reproduced,
                     "seeds": int(found["seed"].nunique()), "ok": bool(ok)})  # fmt: skip
    return Check(pd.DataFrame(rows))


def format_check(result: Check) -> str:
    """``benchmark | strategy | metric | expected | reproduced | ok`` as a Markdown table."""
    lines = ["| benchmark | strategy | metric | expected | reproduced | seeds | ok |", "|---|---|---|---|---|---|---|"]
    for r in result.table.itertuples(index=False):
        shown = "missing" if math.isnan(r.reproduced) else f"{r.reproduced:.5f}"
        lines.append(f"| {r.benchmark} | {r.strategy} | {r.metric} | {r.expected:.5f} ± {r.tolerance:.5f} | {shown} "
                     f"| {r.seeds} | {'ok' if r.ok else 'FAIL'} |")  # fmt: skip
    return "\n".join(lines)
