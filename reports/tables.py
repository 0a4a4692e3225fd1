"""The report's tables as pandas DataFrames: final MSE per task (Fig. 4), CL metrics, closed-loop success.

Every table has a ``preset`` column and is only ever aggregated within one preset, so runs of
different sizes never share a mean. Over seeds, cells hold the mean, the standard deviation
(``ddof=1``; 0 with one seed) and a 95% t interval of the mean (:func:`reports.stats.t_interval`;
none with one seed), and ``seeds`` says how many runs each row averages.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from reports.collect import RLMatrix, RunResult
from reports.metrics import backward_transfer, forgetting, zero_shot_error
from reports.stats import t_interval, wilson
from strategies import available_strategies


def strategy_key(name: str) -> tuple[int, str]:
    """Sort key: registered strategies first, in the registry's order (by family), others alphabetically."""
    order = available_strategies()
    return (order.index(name), "") if name in order else (len(order), name)


def task_columns(tasks: tuple[str, ...]) -> list[str]:
    """Column names of the test tasks: ``task 0 (canonical)``..."""
    return [f"task {j} ({name})" for j, name in enumerate(tasks)]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    order = sorted(frame["strategy"].unique(), key=strategy_key)
    frame = frame.assign(_order=frame["strategy"].map({s: i for i, s in enumerate(order)}))
    return frame.sort_values(["preset", "_order"]).drop(columns="_order").reset_index(drop=True)


def _aggregate(rows: list[dict]) -> pd.DataFrame:
    """Mean, std and 95% interval (columns ``<value>``, ``<value> std``, ``<value> ci low`` and
    ``<value> ci high``) of per-run ``rows`` per preset and strategy, with ``seeds``; every key but
    ``preset``, ``strategy`` and ``seed`` is a value."""
    if not rows:
        return pd.DataFrame(columns=["preset", "strategy", "seeds"])
    per_run = pd.DataFrame(rows)
    values = [c for c in per_run.columns if c not in ("preset", "strategy", "seed")]
    groups = per_run.groupby(["preset", "strategy"], sort=False)
    mean = groups[values].mean()
    std = groups[values].std(ddof=1).fillna(0.0).add_suffix(" std")
    seeds = groups["seed"].nunique().rename("seeds")
    ci = groups[values].agg(lambda column: t_interval(column.tolist()))
    low = ci.apply(lambda column: column.str[0]).add_suffix(" ci low")
    high = ci.apply(lambda column: column.str[1]).add_suffix(" ci high")
    table = pd.concat([seeds, mean, std, low, high], axis=1).reset_index()
    return _sorted(table)


def final_mse_table(runs: list[RunResult], key: str = "mse") -> pd.DataFrame:
    """Strategy x test task final MSE (mean per pixel), or another metric ``key`` of
    :data:`reports.collect.TASK_KEYS`, mean and std over seeds, per preset."""
    rows = []
    for run in runs:
        final = run.final(key)
        rows.append({
            "preset": run.preset, "strategy": run.strategy, "seed": run.seed,
            **dict(zip(task_columns(run.tasks), final, strict=True)), "mean": float(final.mean()),
        })  # fmt: skip
    return _aggregate(rows)


def cl_metrics_table(runs: list[RunResult], key: str = "mse", label: str = "MSE") -> pd.DataFrame:
    """Average final error, per-task forgetting, BWT and zero-shot error of each continual strategy, per preset.

    ``key`` chooses the error matrix (the MSE, or an error of :data:`reports.collect.TASK_KEYS`
    such as ``target_error_m``), ``label`` its name in the columns. Single-task and joint runs
    have no sequence of experiences, so they get the average final error only (their other
    cells are NaN).
    """
    rows = []
    for run in runs:
        r = run.matrix(key)
        row = {"preset": run.preset, "strategy": run.strategy, "seed": run.seed,
               f"avg final {label}": float(run.final(key).mean())}  # fmt: skip
        if run.schedule == "continual" and r.shape[0] == r.shape[1] > 1:
            row.update({f"forgetting task {j}": f for j, f in enumerate(forgetting(r))})
            row["BWT"] = backward_transfer(r)
            row[f"zero-shot {label}"] = zero_shot_error(r)
        rows.append(row)
    return _aggregate(rows)


def success_table(matrix: RLMatrix) -> pd.DataFrame:
    """Pipeline x domain success rate with its 95% interval, in the matrix's own order."""
    frame = pd.DataFrame(list(matrix.cells))
    frame["preset"] = matrix.preset
    return frame


def format_cell(mean: float, std: float, seeds: int, digits: int = 5, ci: tuple[float, float] | None = None) -> str:
    """``0.00132`` for one seed, ``0.00132 ± 0.00004 [0.00127, 0.00137]`` (mean ± std [95% interval])
    for several; ``n/a`` for NaN."""
    if mean is None or np.isnan(mean):
        return "n/a"
    if seeds > 1:
        interval = f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci is not None and not np.isnan(ci[0]) else ""
        return f"{mean:.{digits}f} ± {std:.{digits}f}{interval}"
    return f"{mean:.{digits}f}"


def display(table: pd.DataFrame, digits: int = 5) -> pd.DataFrame:
    """The table with each value and its std merged into one readable string column."""
    suffixes = (" std", " ci low", " ci high")
    values = [c for c in table.columns if c not in ("preset", "strategy", "seeds") and not c.endswith(suffixes)]
    out = table[["preset", "strategy", "seeds"]].copy()
    for column in values:
        low = table.get(f"{column} ci low", pd.Series(np.nan, index=table.index))
        high = table.get(f"{column} ci high", pd.Series(np.nan, index=table.index))
        out[column] = [
            format_cell(m, s, n, digits, (lo, hi))
            for m, s, n, lo, hi in zip(table[column], table[f"{column} std"], table["seeds"], low, high, strict=True)
        ]
    return out


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pandas' own needs the ``tabulate`` package)."""
    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


SEEDED = re.compile(r"^(.+?)/seed(\d+)(/.*)?$")
"""A pipeline label with its seed: ``der/seed1``, ``single/seed0/task0``."""


def pool_mapped_agents(matrices: list[RLMatrix]) -> list[RLMatrix]:
    """One matrix per family of agents trained through a mapping, with every seed's cells in it.

    ``sweep --agent task0`` trains one agent per seed, through that seed's Task-0 model, so each
    seed has its own ``matrix.json``. Matrices of one :attr:`~reports.collect.RLMatrix.agent_family`
    (same configuration but the mapping), episode count and domains are merged here; ``oracle``
    and ``raw``, which carry no seed, are labelled with their matrix's seed (``oracle/seed1``) so
    :func:`pooled_success_table` pools them over the seeds' agents too. A matrix whose VAEs are not
    of exactly one seed is left out, and so is a family with fewer than two seeds or with one seed
    twice (two Task-0 models of a seed under one runs folder: which to pool is not ours to choose).
    """
    groups: dict[tuple[str, int, tuple[str, ...]], list[tuple[int, RLMatrix]]] = {}
    for matrix in matrices:
        seeds = {int(m.group(2)) for p in matrix.pipelines if (m := SEEDED.match(p))}
        if matrix.agent_mapping and matrix.agent_family and len(seeds) == 1:
            groups.setdefault((matrix.agent_family, matrix.episodes, matrix.domains), []).append((seeds.pop(), matrix))
    pooled = []
    for (family, episodes, domains), members in groups.items():
        seen = [seed for seed, _ in members]
        if len(seen) < 2 or len(set(seen)) < len(seen):
            continue
        cells, pipelines = [], []
        for seed, matrix in sorted(members, key=lambda m: m[0]):
            for cell in matrix.cells:
                label = cell["pipeline"] if SEEDED.match(cell["pipeline"]) else f"{cell['pipeline']}/seed{seed}"
                cells.append({**cell, "pipeline": label})
            pipelines += [p if SEEDED.match(p) else f"{p}/seed{seed}" for p in matrix.pipelines]
        first = members[0][1]
        pooled.append(RLMatrix(path=first.path.parent / f"{family}-pooled", preset=first.preset,
                               agent=f"{family} through each seed's mapping", episodes=episodes, domains=domains,
                               pipelines=tuple(pipelines), cells=tuple(cells), agent_family=family,
                               agent_mapping="per seed"))  # fmt: skip
    return pooled


def pooled_success_table(matrix: RLMatrix) -> pd.DataFrame:
    """Closed-loop success per VAE kind and domain, pooled over seeds with its Wilson interval, and per seed.

    A kind is a pipeline label without its seed (``der/seed1`` -> ``der``, ``single/seed0/task0``
    -> ``single/task0``); ``raw`` and ``oracle`` are kinds of their own.
    """
    rows: dict[tuple[str, str], dict] = {}
    for cell in matrix.cells:
        match = SEEDED.match(cell["pipeline"])
        kind, seed = (match.group(1) + (match.group(3) or ""), int(match.group(2))) if match else (cell["pipeline"], -1)
        row = rows.setdefault((kind, cell["domain"]), {"successes": 0, "episodes": 0, "per seed": {}})
        successes = round(cell["success_rate"] * cell["episodes"])
        row["successes"] += successes
        row["episodes"] += cell["episodes"]
        row["per seed"][seed] = cell["success_rate"]
    out = []
    for (kind, domain), row in rows.items():
        low, high = wilson(row["successes"], row["episodes"])
        seeds = sorted(s for s in row["per seed"] if s >= 0)
        per_seed = ", ".join(f"s{s} {100 * row['per seed'][s]:.0f}%" for s in seeds)
        out.append({"pipeline": kind, "domain": domain, "seeds": len(seeds), "successes": row["successes"],
                    "episodes": row["episodes"], "success": row["successes"] / max(row["episodes"], 1),
                    "ci low": low, "ci high": high, "per seed": per_seed})  # fmt: skip
    return pd.DataFrame(out)
