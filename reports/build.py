"""Turn a runs folder into tables, figures, ``report.md`` and ``report.html``.

One section per preset: runs of different presets are never put in one table. Within a preset,
several seeds of a strategy are aggregated (mean ± std, with the number of seeds). Files the
collector could not use are listed at the end of the report, one line each, and logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from benchmark.common.io import atomic_path
from benchmark.rl.matrix import strip_name
from reports import figures
from reports.claims import check_claims, finals
from reports.collect import Collection, RLMatrix, RunResult, collect
from reports.document import Document
from reports.metrics import DEFINITIONS
from reports.samples import reconstruction_samples
from reports.tables import (
    SEEDED,
    cl_metrics_table,
    display,
    final_mse_table,
    pool_mapped_agents,
    pooled_success_table,
    strategy_key,
    to_markdown,
)

log = logging.getLogger("ciim.reports")
PACKAGES = ("ciim-bench", "torch", "avalanche-lib", "stable-baselines3", "pybullet", "kornia")


class ReportError(Exception):
    """Nothing to report on; the message says why."""


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    markdown: Path
    html: Path
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)


def _versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _write_table(frame: pd.DataFrame, out: Path, stem: str) -> list[Path]:
    paths = [out / f"{stem}.csv", out / f"{stem}.md"]
    with atomic_path(paths[0]) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(to_markdown(display(frame)) + "\n")
    return paths


def _runs_table(runs: list[RunResult]) -> pd.DataFrame:
    rows = []
    for run in sorted(runs, key=lambda r: (strategy_key(r.strategy), r.seed)):
        minutes = "?" if run.wall_time_s is None else f"{run.wall_time_s / 60:.1f}"
        rows.append({"strategy": run.strategy, "seed": run.seed, "schedule": run.schedule,
                     "device": run.device or "?", "wall time (min)": minutes, "folder": str(run.path)})  # fmt: skip
    return pd.DataFrame(rows)


def _vae_section(doc: Document, runs: list[RunResult], out: Path, data_root: Path, grid: bool) -> list[Path]:
    written: list[Path] = []
    tasks = runs[0].tasks
    table = final_mse_table(runs)
    written += _write_table(table, out, "final_mse")
    doc.heading("Final reconstruction error per task", 3)
    doc.table(display(table), "Final MSE (mean per pixel) of each strategy on each test task; mean ± std [95% t "
              "interval] over seeds where there are several (`seeds`). A single-task run counts each task's "
              "own model.")  # fmt: skip
    bars = figures.final_mse_bars(table, tasks, out / "figures", "final_mse")
    written += bars
    doc.figure(bars[0], "Final MSE per test task and strategy (cf. the paper's Fig. 4); error bars: std over seeds.")
    written += _task_section(doc, runs, out)
    metrics = cl_metrics_table(runs)
    written += _write_table(metrics, out, "cl_metrics")
    doc.heading("Continual-learning metrics", 3)
    doc.bullets(list(DEFINITIONS.values()))
    doc.table(display(metrics), "From each run's R[i][j] (MSE on test task j after experience i), averaged over "
              "seeds. Single-task and joint runs have no sequence: they get the average final MSE only.")  # fmt: skip
    target_cl = cl_metrics_table(runs, "target_error_m", "target error (m)")
    written += _write_table(target_cl, out, "cl_metrics_target")
    doc.table(display(target_cl, 4), "The same metrics on the median target error (metres) of each test task.")
    if any(r.schedule == "continual" for r in runs):
        lines = figures.mse_after_experience(runs, out / "figures", "mse_after_experience")
        written += lines
        doc.figure(lines[0], "MSE on each test task after each experience (mean over seeds): a rising line is "
                   "forgetting. Joint training has no experiences and is drawn dashed at its final value.")  # fmt: skip
    curves = figures.training_curves(runs, out / "figures", "training_curves")
    written += curves
    if curves:
        doc.figure(curves[0], "Training loss (Eq. 1) per epoch of each strategy's first seed, log scale, with the "
                   "KL weight gamma (dashed, right axis): its ramp from 0 is the KL annealing.")  # fmt: skip
    if grid:
        samples = reconstruction_samples(runs, data_root)
        if samples is not None and samples.recons:
            fig = figures.reconstruction_grid(samples.rows, samples.inputs, samples.target, samples.recons,
                                              out / "figures", "reconstructions")  # fmt: skip
            written += fig
            doc.figure(fig[0], "One test scene in every task (rows): input, canonical target, and each strategy's "
                       "reconstruction (first seed, final model; cf. the paper's Fig. 5).")  # fmt: skip
    doc.heading("Runs", 3)
    doc.table(_runs_table(runs))
    return written


TASK_TABLES = {
    "target_error_m": ("median target error (m)", "Median distance between the target in the reconstruction and in "
                       "the canonical image, in metres at the target's height, over the test images whose target "
                       "was found; the agent succeeds within 0.05 m."),
    "target_error_p90_m": ("90th-percentile target error (m)", "90th percentile of the same distance."),
    "target_missing": ("targets lost", "Fraction of test images whose visible target is missing from the "
                       "reconstruction (no pixel red enough)."),
    "arm_iou": ("arm IoU", "Mean IoU of the arm segmented in the reconstruction with the canonical arm (1 = exact)."),
}  # fmt: skip
"""Task-level tables of the report (:mod:`benchmark.mapping.task_metrics`): key -> (title, caption)."""


def _task_section(doc: Document, runs: list[RunResult], out: Path) -> list[Path]:
    """What the agent needs: where the target lands and whether the arm is right, per strategy and task."""
    written: list[Path] = []
    doc.heading("Task-level errors: what the agent needs", 3)
    doc.text("Per-pixel MSE is dominated by the floor; these measure the two things the agent acts on "
             "(`benchmark/mapping/task_metrics.py`: the canonical side from PyBullet's segmentation mask, the "
             "reconstruction side from a colour detector).")  # fmt: skip
    tables = {key: final_mse_table(runs, key) for key in TASK_TABLES}
    for key, (title, caption) in TASK_TABLES.items():
        written += _write_table(tables[key], out, f"final_{key}")
        doc.table(display(tables[key], 4), f"{title[0].upper()}{title[1:]}: {caption}")
    bars = figures.final_mse_bars(tables["target_error_m"], runs[0].tasks, out / "figures",
                                  "final_target_error", "median target error (m)",
                                  "Where the target lands: final median target error per test task")  # fmt: skip
    written += bars
    doc.figure(bars[0], "Final median target error per test task and strategy; error bars: std over seeds.")
    return written


def _main_matrix(matrices: list[RLMatrix], preset: str, mapped: list[RLMatrix]) -> RLMatrix | None:
    """The matrix the summary figure and the paper claims use: the preset agent's
    (``rl_eval/<preset>``) when there is one, else the first pooled per-seed family (``mapped``),
    else the last by path."""
    own = [m for m in matrices if m.path.name == preset]
    return own[-1] if own else mapped[0] if mapped else matrices[-1] if matrices else None


def _pooled_section(doc: Document, matrix: RLMatrix, out: Path) -> list[Path]:
    """``success_pooled.csv`` of ``matrix``, and its table when some kind has more than one seed."""
    pooled = pooled_success_table(matrix)
    written = [out / "success_pooled.csv"]
    with atomic_path(written[-1]) as tmp:
        pooled.to_csv(tmp, index=False)
    if (pooled["seeds"] > 1).any():
        cells = pooled.assign(cell=[f"{100 * r:.0f}% [{100 * lo:.0f}-{100 * hi:.0f}] ({ps})" for r, lo, hi, ps in
                                    zip(pooled["success"], pooled["ci low"], pooled["ci high"], pooled["per seed"],
                                        strict=True)])  # fmt: skip
        pooled_wide = cells.pivot(index="pipeline", columns="domain", values="cell")
        kinds = list(dict.fromkeys(pooled["pipeline"]))
        doc.table(pooled_wide.reindex(index=kinds, columns=list(matrix.domains)).reset_index(),
                  "Success pooled over seeds [95% Wilson interval of the pooled episodes] (per seed).")  # fmt: skip
    return written


def _mapped_section(doc: Document, matrix: RLMatrix, out: Path) -> list[Path]:
    """The per-seed agents trained through their seed's Task-0 model (``--agent task0``), pooled."""
    doc.heading("Closed loop pooled over seeds: each seed's agent trained through that seed's Task-0 model", 3)
    seeds = sorted({int(m.group(2)) for p in matrix.pipelines if (m := SEEDED.match(p))})
    doc.text(f"Agents of family `{matrix.agent_family}` (one configuration, each trained through its own seed's "
             f"Task-0 model), seeds {', '.join(map(str, seeds))}, {matrix.episodes} episodes per cell; `oracle` "
             "and `raw` are each seed's own agent on the renders and on the domain's image.")  # fmt: skip
    return _pooled_section(doc, matrix, out)


def _rl_section(doc: Document, matrix: RLMatrix, out: Path) -> list[Path]:
    written: list[Path] = []
    doc.heading("Closed loop: the agent through each VAE", 3)
    doc.text(f"Agent `{matrix.agent}`, {matrix.episodes} episodes per cell, the same episode seeds in every cell. "
             "Rows: `oracle` sees the canonical render of the same state, `raw` the domain's image, the others "
             "each VAE's reconstruction.")  # fmt: skip
    heat = figures.success_heatmap(matrix, out / "figures", "success_matrix")
    written += heat
    doc.figure(heat[0], "Success rate per observation pipeline and domain, with 95% Wilson intervals.")
    rows = []
    for cell in matrix.cells:
        low, high = cell.get("success_ci95", [float("nan")] * 2)
        rows.append({"pipeline": cell["pipeline"], "domain": cell["domain"],
                     "success": f"{100 * cell['success_rate']:.0f}% [{100 * low:.0f}-{100 * high:.0f}]",
                     "mean final distance (m)": f"{cell.get('mean_final_distance', float('nan')):.3f}"})  # fmt: skip
    frame = pd.DataFrame(rows)
    written += [out / "success.csv"]
    with atomic_path(written[-1]) as tmp:
        frame.to_csv(tmp, index=False)
    wide = frame.pivot(index="pipeline", columns="domain", values="success").reindex(
        index=list(matrix.pipelines), columns=list(matrix.domains)).reset_index()  # fmt: skip
    doc.table(wide, "Success rate [95% interval] per pipeline (rows) and domain (columns).")
    written += _pooled_section(doc, matrix, out)
    if matrix.agreement:
        agree = pd.DataFrame(list(matrix.agreement))
        written += [out / "agreement.csv"]
        with atomic_path(written[-1]) as tmp:
            agree.to_csv(tmp, index=False)
        shown = agree.assign(
            cell=[f"{e:.3f} / {100 * w:.0f}%" for e, w in zip(agree["action_error"], agree["wrong_sign"], strict=True)]
        ).pivot(index="pipeline", columns="domain", values="cell")
        order = [p for p in matrix.pipelines if p in shown.index]
        doc.table(shown.reindex(index=order).reset_index(), "Agent agreement, the closed-loop proxy without "
                  "episodes: over each test set, the mean distance between the agent's action on the "
                  "pipeline's view and on the canonical image / the share of images where it turns a joint "
                  "the other way.")  # fmt: skip
    for domain in matrix.domains:
        strips = {p: path for p in matrix.pipelines
                  if (path := matrix.path / "strips" / strip_name(p, domain, 0)).is_file()}  # fmt: skip
        sheet = figures.strip_sheet(strips, f"domain: {domain}, episode 0", out / "figures", f"strips_{domain}")
        written += sheet
        if sheet:
            doc.figure(sheet[0], f"Episode 0 in `{domain}`, per pipeline: top row of each strip, the rendered "
                       "frames; bottom row, what the agent saw (cf. the paper's Fig. 6).")  # fmt: skip
    return written


PAPER_TASKS = ("canonical", "randomized", "noisy")
"""The paper's stream, whose findings the claims check."""


def _sections(found: Collection) -> list[tuple[str, tuple[str, ...] | None]]:
    """(preset, stream) of each report section: runs of different presets or streams never share a table."""
    keys = sorted({(r.preset, r.tasks) for r in found.runs}, key=lambda k: (k[0], k[1] != PAPER_TASKS, k[1]))
    with_runs = {preset for preset, _ in keys}
    return [*keys, *((p, None) for p in sorted({m.preset for m in found.rl} - with_runs))]


def build_report(runs: str | Path, out: str | Path, data_root: str | Path = "data", grid: bool = True) -> Report:
    """Collect ``runs``, write per-preset tables and figures under ``out/<preset>/`` and the two reports in ``out``."""
    runs, out = Path(runs), Path(out)
    if not runs.is_dir():
        raise ReportError(f"runs folder {runs} does not exist")
    found: Collection = collect(runs)
    for problem in found.problems:
        log.warning("reports: %s", problem)
    if not found.runs and not found.rl:
        raise ReportError(f"nothing to report under {runs}: no results.json or matrix.json")
    doc = Document("ciim-bench report")
    doc.text(f"Runs folder `{runs}`, written {dt.datetime.now().isoformat(timespec='minutes')}. Versions: "
             f"{_versions()}.")  # fmt: skip
    doc.text(f"Presets: {', '.join(found.presets)}. Each preset has its own section; runs of different presets "
             "are never averaged together.")  # fmt: skip
    written: list[Path] = []
    for preset, tasks in _sections(found):
        runs_p = [r for r in found.runs if r.preset == preset and (tasks is None or r.tasks == tasks)]
        matrices = sorted((m for m in found.rl if m.preset == preset), key=lambda m: str(m.path))
        seeds = sorted({r.seed for r in runs_p})
        folder = out / (preset if tasks in (None, PAPER_TASKS) else f"{preset}-{len(tasks)}tasks-{'-'.join(tasks)}")
        stream = "" if tasks in (None, PAPER_TASKS) else f", stream {', '.join(tasks)}"
        doc.heading(f"Preset `{preset}`{stream}")
        doc.text(f"{len(runs_p)} VAE run(s) of {len({r.strategy for r in runs_p})} strategies, seeds "
                 f"{', '.join(map(str, seeds)) or '-'}; {len(matrices)} closed-loop evaluation(s).")  # fmt: skip
        if runs_p:
            written += _vae_section(doc, runs_p, folder, Path(data_root), grid)
        mapped = pool_mapped_agents(matrices)
        main_matrix = _main_matrix(matrices, preset, mapped)
        used: set[Path] = {folder}
        for k, matrix in enumerate(matrices):  # another agent's matrix (``--agent``) gets its own tables and figures
            sub = folder if matrix is main_matrix else folder / matrix.path.name
            if matrix is not main_matrix and sub in used:
                sub = folder / f"{matrix.path.name}-{k}"
            used.add(sub)
            written += _rl_section(doc, matrix, sub)
        for matrix in mapped:
            written += _mapped_section(doc, matrix, folder / matrix.path.name)
        if runs_p:
            pooled = pooled_success_table(main_matrix) if main_matrix else None
            spread = figures.strategy_intervals(final_mse_table(runs_p), pooled, folder / "figures",
                                                "strategy_intervals")  # fmt: skip
            written += spread
            doc.figure(spread[0], "Final MSE per strategy with its 95% t interval over seeds, and closed-loop "
                       "success pooled over seeds with 95% Wilson intervals.")  # fmt: skip
        doc.heading("Paper claims", 3)
        if tasks not in (None, PAPER_TASKS):
            doc.text("The paper's findings are about its three tasks; they are checked in the section of that stream.")
            continue
        doc.text("Each finding on reconstruction is judged twice: on the final MSE (the paper's measure) and on "
                 "the final median target error in metres (what the agent needs). A finding holds only when each "
                 "comparison it makes is significant at 95% in a paired t-test over the seeds (seeds share the "
                 "data and the Task-0 model); \"matches\" is a paired equivalence test (TOST) within 10%; one "
                 "seed can only be inconclusive.")  # fmt: skip
        bullets = []
        for key, measure in (("mse", "MSE"), ("target_error_m", "target error")):
            claims = check_claims(finals(runs_p, key), main_matrix)
            if key != "mse":
                claims = claims[:-1]  # the closed-loop claim does not depend on the measure
            bullets += [f"**{c.verdict}** (on {measure}): {c.finding} ({c.evidence})" for c in claims]
        doc.bullets(bullets)
    if found.problems:
        doc.heading("Files left out")
        doc.bullets([f"`{p}`" for p in found.problems])
    report = Report(out / "report.md", out / "report.html", written, found.problems, found.presets)
    with atomic_path(report.markdown) as tmp:
        tmp.write_text(doc.to_markdown(out))
    with atomic_path(report.html) as tmp:
        tmp.write_text(doc.to_html())
    return report
