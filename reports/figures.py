"""The report's figures, drawn with matplotlib (Agg, no display) and written as PNG and PDF.

- :func:`final_mse_bars`: grouped bars of final MSE per test task and strategy (the paper's Fig. 4).
- :func:`mse_after_experience`: MSE on each test task after each experience, a line per
  continual strategy, so forgetting shows as a line going up.
- :func:`training_curves`: the training loss from each run's ``logs/metrics.csv`` with the
  KL weight (its annealing ramp) on a second axis.
- :func:`success_heatmap`: the closed-loop success matrix with 95% intervals.
- :func:`reconstruction_grid` and :func:`strip_sheet`: images (Fig. 5 and Fig. 6).

Every function returns the paths it wrote; every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from benchmark.common.io import atomic_path  # noqa: E402
from reports.collect import RLMatrix, RunResult  # noqa: E402
from reports.tables import strategy_key  # noqa: E402

FORMATS = ("png", "pdf")


def save(fig: plt.Figure, out: Path, stem: str, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``out/stem.<format>`` for each format, atomically; closes the figure."""
    paths = []
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def final_mse_bars(
    table: pd.DataFrame,
    tasks: Sequence[str],
    out: Path,
    stem: str,
    ylabel: str = "final MSE (mean per pixel)",
    title: str = "Final reconstruction error per test task",
) -> list[Path]:
    """Grouped bars: x = test task, one bar per strategy, error bars = std over seeds."""
    columns = [f"task {j} ({name})" for j, name in enumerate(tasks)]
    strategies = list(table["strategy"])
    width = 0.8 / max(len(strategies), 1)
    fig, ax = plt.subplots(figsize=(1.6 + 1.9 * len(tasks), 3.6))
    x = np.arange(len(tasks))
    for k, row in enumerate(table.to_dict("records")):
        values = [row[c] for c in columns]
        errors = [row[f"{c} std"] for c in columns]
        label = f"{row['strategy']} (n={row['seeds']})" if row["seeds"] > 1 else row["strategy"]
        ax.bar(
            x + (k - (len(strategies) - 1) / 2) * width,
            values,
            width,
            label=label,
            yerr=errors if row["seeds"] > 1 else None,
            capsize=2,
        )
    ax.set_xticks(x, [f"Task {j}\n{name}" for j, name in enumerate(tasks)])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, out, stem)


def mse_after_experience(runs: list[RunResult], out: Path, stem: str) -> list[Path]:
    """One panel per test task: MSE after each experience, mean over seeds, a line per continual strategy;
    joint training, which has no experiences, is a dashed horizontal line at its final value."""
    continual = [r for r in runs if r.schedule == "continual"]
    tasks = (continual or runs)[0].tasks
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.3 * len(tasks), 3.2), sharey=True, squeeze=False)
    names = sorted({r.strategy for r in runs if r.schedule in ("continual", "joint")}, key=strategy_key)
    colours = {name: f"C{k}" for k, name in enumerate(names)}
    for j, ax in enumerate(axes[0]):
        for name in names:
            group = [r for r in runs if r.strategy == name]
            if group[0].schedule == "joint":
                ax.axhline(np.mean([r.final_mse[j] for r in group]), ls="--", color=colours[name], label=name)
                continue
            curve = np.mean([r.mse[:, j] for r in group], axis=0)
            ax.plot(np.arange(len(curve)), curve, marker="o", color=colours[name], label=name)
        ax.set_title(f"test task {j} ({tasks[j]})", fontsize=10)
        ax.set_xlabel("after experience")
        ax.set_xticks(np.arange(len(tasks)))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("MSE (mean per pixel)")
    axes[0][-1].legend(fontsize=8, frameon=False)
    return save(fig, out, stem)


def training_curves(runs: list[RunResult], out: Path, stem: str) -> list[Path]:
    """Training loss per epoch of each strategy's first seed, with the KL weight on a second axis."""
    curves: list[tuple[str, pd.DataFrame]] = []
    for run in sorted(runs, key=lambda r: (strategy_key(r.strategy), r.seed)):
        if any(c[0] == run.strategy for c in curves):
            continue
        path = run.path / "logs" / "metrics.csv"
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError):
            continue
        if {"name", "step", "value"} <= set(frame.columns):
            curves.append((run.strategy, frame))
    if not curves:
        return []
    columns = min(3, len(curves))
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.1 * rows), squeeze=False)
    for ax in axes.flat[len(curves) :]:
        ax.set_visible(False)
    for ax, (name, frame) in zip(axes.flat, curves, strict=False):
        loss = frame[frame["name"] == "train/loss"]
        gamma = frame[frame["name"] == "train/gamma"]
        ax.plot(loss["step"], loss["value"], color="C0")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("loss per epoch (log)", fontsize=8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if not gamma.empty:
            twin = ax.twinx()
            twin.plot(gamma["step"], gamma["value"], color="C3", ls="--")
            twin.set_ylim(bottom=0)
            twin.tick_params(axis="y", labelcolor="C3", labelsize=7)
    handles = [plt.Line2D([], [], color="C0"), plt.Line2D([], [], color="C3", ls="--")]
    fig.legend(handles, ["Eq. 1 loss (left axis)", "KL weight gamma (right axis)"], loc="upper center", ncol=2,
               frameon=False, bbox_to_anchor=(0.5, 1.04))  # fmt: skip
    fig.tight_layout()
    return save(fig, out, stem)


def success_heatmap(matrix: RLMatrix, out: Path, stem: str) -> list[Path]:
    """Pipelines x domains, colour = success rate, each cell annotated with the rate and its 95% interval."""
    rates = np.full((len(matrix.pipelines), len(matrix.domains)), np.nan)
    notes = [["" for _ in matrix.domains] for _ in matrix.pipelines]
    for cell in matrix.cells:
        i, j = matrix.pipelines.index(cell["pipeline"]), matrix.domains.index(cell["domain"])
        rates[i, j] = cell["success_rate"]
        low, high = cell.get("success_ci95", [np.nan, np.nan])
        notes[i][j] = f"{100 * cell['success_rate']:.0f}%\n[{100 * low:.0f}-{100 * high:.0f}]"
    fig, ax = plt.subplots(figsize=(1.4 + 1.5 * len(matrix.domains), 0.8 + 0.55 * len(matrix.pipelines)))
    image = ax.imshow(rates, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i, row in enumerate(notes):
        for j, text in enumerate(row):
            dark = np.isnan(rates[i, j]) or rates[i, j] > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="black" if dark else "white")
    ax.set_xticks(range(len(matrix.domains)), matrix.domains)
    ax.set_yticks(range(len(matrix.pipelines)), matrix.pipelines)
    ax.set_xlabel("domain the agent acts in")
    ax.set_ylabel("observation pipeline")
    ax.set_title(f"Success rate over {matrix.episodes} episodes per cell (95% Wilson interval)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, label="success rate")
    return save(fig, out, stem)


def reconstruction_grid(
    rows: Sequence[str], inputs: np.ndarray, target: np.ndarray, recons: dict[str, np.ndarray], out: Path, stem: str
) -> list[Path]:
    """Fig. 5: a row per test task; columns: input, canonical target, each strategy's reconstruction.

    ``inputs`` is ``(rows, H, W, 3)`` uint8, ``target`` the shared canonical image of the sample,
    ``recons[name]`` ``(rows, H, W, 3)`` uint8.
    """
    columns = ["input", "canonical target", *recons]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.3 * len(columns), 1.4 * len(rows)), squeeze=False)
    for i, name in enumerate(rows):
        images = [inputs[i], target, *(r[i] for r in recons.values())]
        for j, (ax, image) in enumerate(zip(axes[i], images, strict=True)):
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    return save(fig, out, stem)


def strip_sheet(strips: dict[str, Path], title: str, out: Path, stem: str) -> list[Path]:
    """Fig. 6: the saved evaluation strips of one domain stacked, one labelled row per pipeline."""
    loaded: dict[str, np.ndarray] = {}
    for label, path in strips.items():
        try:
            with Image.open(path) as file:
                loaded[label] = np.asarray(file.convert("RGB"))
        except OSError:
            continue
    if not loaded:
        return []
    fig, axes = plt.subplots(len(loaded), 1, figsize=(8, 2.1 * len(loaded)), squeeze=False)
    for ax, (label, image) in zip(axes[:, 0], loaded.items(), strict=True):
        ax.imshow(image)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, fontsize=8)
    axes[0, 0].set_title(title, fontsize=9)
    return save(fig, out, stem)


def strategy_intervals(mse: pd.DataFrame, success: pd.DataFrame | None, out: Path, stem: str) -> list[Path]:
    """Left: each strategy's final MSE (mean over test tasks) with its 95% t interval over seeds;
    right (with a closed-loop matrix): its success per domain, pooled over seeds, with Wilson intervals."""
    panels = 2 if success is not None and not success.empty else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.0 * panels, 3.6), squeeze=False)
    ax = axes[0][0]
    strategies = list(mse["strategy"])
    means = mse["mean"].to_numpy(float)
    low = np.nan_to_num(means - mse["mean ci low"].to_numpy(float))
    high = np.nan_to_num(mse["mean ci high"].to_numpy(float) - means)
    ax.errorbar(np.arange(len(strategies)), means, yerr=[low, high], fmt="o", capsize=3)
    ax.set_xticks(np.arange(len(strategies)), [f"{s}\nn={n}" for s, n in zip(strategies, mse["seeds"], strict=True)])
    ax.set_ylabel("final MSE, mean over test tasks")
    ax.set_title("Final MSE, 95% interval over seeds")
    ax.grid(axis="y", alpha=0.3)
    if panels == 2:
        assert success is not None
        ax = axes[0][1]
        kinds = [k for k in dict.fromkeys(success["pipeline"])]
        domains = list(dict.fromkeys(success["domain"]))
        width = 0.8 / max(len(domains), 1)
        for d, domain in enumerate(domains):
            rows = success[success["domain"] == domain].set_index("pipeline").reindex(kinds)
            rate = rows["success"].to_numpy(float)
            err = [np.nan_to_num(rate - rows["ci low"].to_numpy(float)), np.nan_to_num(rows["ci high"] - rate)]
            ax.bar(np.arange(len(kinds)) + (d - (len(domains) - 1) / 2) * width, rate, width, yerr=err, capsize=2,
                   label=domain)  # fmt: skip
        ax.set_xticks(np.arange(len(kinds)), kinds, rotation=30, ha="right")
        ax.set_ylabel("success rate, pooled over seeds")
        ax.set_ylim(0, 1)
        ax.set_title("Closed loop, 95% Wilson intervals")
        ax.legend(fontsize=7, frameon=False)
        ax.grid(axis="y", alpha=0.3)
    return save(fig, out, stem)
