"""The sim2real evaluation matrix: observation pipelines (rows) x visual domains (columns).

Rows are ``oracle`` (the canonical render of the same state), ``raw`` (the domain's image, no
VAE) and one row per trained VAE found in a runs folder; columns are domains. Every cell plays
the same seeded episodes (see :mod:`benchmark.rl.episodes`), so cells are comparable. The matrix
is saved as ``matrix.json`` and ``matrix.csv`` (one row per cell), with Fig. 6-like strips of
the first episodes of each cell under ``strips/``. Given the data set, the matrix also holds the
agent agreement of ``raw`` and of every VAE on each test task (:mod:`benchmark.rl.agreement`),
the closed-loop proxy that needs no episodes, in ``matrix.json`` and ``agreement.csv``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from benchmark.common.io import atomic_path, write_json
from benchmark.data.generate import StreamData
from benchmark.data.spec import TASK_DOMAINS as DATA_TASKS
from benchmark.mapping.fastpath import resolve_fast_path
from benchmark.mapping.vae import ConvVAE, load_vae
from benchmark.rl.agent import make_vec_env
from benchmark.rl.agreement import agreement
from benchmark.rl.config import AgentConfig
from benchmark.rl.evaluate import run_episodes, save_strip
from benchmark.rl.pipelines import ORACLE, RAW, OracleObservation, VAEObservation

log = logging.getLogger("ciim.rl")
DOMAINS: tuple[str, ...] = ("canonical", "randomized", "noisy", "heldout")
MATRIX_ENVS = 8
"""Environments stepped together in a matrix cell. More than the cores on purpose: the VAE and the
agent then map 8 frames per call instead of 2, which ``bench/rl.py`` measured at 220 environment
steps/s against 130 with one environment per core on the 2-core machine."""
EVAL_SEED = 2_000_000
"""Base seed of the evaluation episodes (apart from the training and final-check seeds)."""


@dataclass(frozen=True)
class Pipeline:
    """One row of the matrix: ``oracle``, ``raw`` or a VAE file."""

    label: str
    vae: Path | None = None


def find_vaes(runs: Path, preset: str | None = None) -> list[Pipeline]:
    """Every trained VAE under ``runs`` (``<strategy>/seed<N>/model.pt``), of ``preset`` when given.

    A single-task run contributes one row per task model (``single/seed0/task0`` is the
    Task-0-only VAE); runs of another preset are skipped.
    """
    found = []
    for config_path in sorted(runs.glob("*/seed*/config.json")):
        run = config_path.parent
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError):
            log.warning("rl: skipping %s (unreadable config.json)", run)
            continue
        if preset is not None and config.get("preset") != preset:
            continue
        label = f"{run.parent.name}/{run.name}"
        tasks = sorted(run.glob("model_task*.pt"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
        if tasks:
            found += [Pipeline(f"{label}/{p.stem.removeprefix('model_')}", p) for p in tasks]
        elif (run / "model.pt").is_file():
            found.append(Pipeline(label, run / "model.pt"))
    return found


def stream_of(vaes: list[Pipeline]) -> tuple[tuple[str, ...], dict[str, Any] | None]:
    """The tasks of the streams the ``vaes`` were trained on (in order, each once) and the data spec
    (as in ``config.json``) of the first: the matrix's columns and the agent agreement's test sets."""
    tasks: list[str] = []
    first = None
    for pipeline in vaes:
        if pipeline.vae is None:
            continue
        try:
            config = json.loads((pipeline.vae.parent / "config.json").read_text())
        except (OSError, ValueError):
            continue
        first = first or config.get("data")
        tasks += [t for t in config.get("data", {}).get("tasks", []) if t not in tasks]
    return tuple(tasks), first


def default_domains(vaes: list[Pipeline]) -> tuple[str, ...]:
    """Every domain in the VAEs' streams, then ``heldout``; :data:`DOMAINS` without VAEs."""
    tasks, _ = stream_of(vaes)
    return (*tasks, *(["heldout"] if "heldout" not in tasks else [])) if tasks else DOMAINS


def _wrap(venv: VecEnv, pipeline: Pipeline, vaes: dict[str, ConvVAE], device: torch.device) -> VecEnv:
    if pipeline.label == ORACLE:
        return OracleObservation(venv)
    if pipeline.label == RAW:
        return venv
    return VAEObservation(venv, vaes[pipeline.label], device)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def strip_name(pipeline: str, domain: str, episode: int) -> str:
    """File name, under ``strips/``, of the strip of one episode of one cell (read back by the reports)."""
    return f"{slug(pipeline)}__{domain}__ep{episode}.png"


def evaluate_matrix(
    model: BaseAlgorithm,
    agent: AgentConfig,
    pipelines: list[Pipeline],
    out: Path,
    domains: tuple[str, ...] = DOMAINS,
    episodes: int = 100,
    seed: int = EVAL_SEED,
    device: str | torch.device = "cpu",
    strips: int = 2,
    progress: bool = True,
    precision: str = "auto",
    data: StreamData | None = None,
    workers: int | None = None,
    data_tasks: tuple[str, ...] = DATA_TASKS,
) -> dict[str, Any]:
    """Evaluate every pipeline in every domain; write ``matrix.json``, ``matrix.csv`` and strips to ``out``.

    ``workers`` environments are stepped together, each in its own process (default
    :data:`MATRIX_ENVS`); every figure is the same whatever their number, since episode ``k``
    is seeded by ``k`` alone and the agent acts in padded batches.

    The VAEs run at ``precision`` (:mod:`benchmark.mapping.fastpath`); the agent always in fp32. With
    ``data`` (the VAEs' data set, of the tasks ``data_tasks``), the agent agreement on its test
    sets is added.
    """
    device = torch.device(device)
    fast = resolve_fast_path(precision, device)
    vaes = {p.label: load_vae(p.vae, device, fast) for p in pipelines if p.vae is not None}  # fail before any work
    workers = min(workers or MATRIX_ENVS, episodes)
    cells = []
    bar = tqdm(total=len(domains) * len(pipelines), desc="rl eval", unit="cell", disable=not progress)
    for domain in domains:
        venv = make_vec_env(domain, agent.env, workers, seed)
        try:
            for pipeline in pipelines:
                result = run_episodes(model, _wrap(venv, pipeline, vaes, device), episodes, record=strips)
                cells.append({"pipeline": pipeline.label, "domain": domain, **result.summary()})
                for eid, frames in result.frames.items():
                    save_strip(frames, out / "strips" / strip_name(pipeline.label, domain, eid))
                bar.update()
                log.debug("rl: %s in %s: %.2f", pipeline.label, domain, result.success_rate)
        finally:
            venv.close()
    bar.close()
    rows = []
    if data is not None:
        views: dict[str, ConvVAE | None] = {p.label: vaes.get(p.label) for p in pipelines if p.label != ORACLE}
        rows = agreement(model, views, data, tuple(data_tasks[: data.num_tasks]), agent.env.scene)
    matrix = {
        "agent": agent.key(),
        "agent_mapping": agent.mapping,
        "agent_family": agent.family(),
        "preset": agent.preset,
        "episodes": episodes,
        "seed": seed,
        "vae_precision": fast.precision,
        "domains": list(domains),
        "pipelines": [p.label for p in pipelines],
        "vae_files": {p.label: str(p.vae) for p in pipelines if p.vae is not None},
        "cells": cells,
        "agreement": rows,
    }
    write_json(out / "matrix.json", matrix)
    if rows:
        with atomic_path(out / "agreement.csv") as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
    with atomic_path(out / "matrix.csv") as tmp:
        table = pd.DataFrame(cells)
        table[["ci_low", "ci_high"]] = pd.DataFrame(table.pop("success_ci95").tolist(), index=table.index)
        table.to_csv(tmp, index=False)
    return matrix


def format_agreement(matrix: dict[str, Any]) -> str:
    """The agent agreement rows of ``matrix`` as a text table under a heading (empty when it has none)."""
    rows = matrix.get("agreement") or []
    if not rows:
        return ""
    width = max(12, *(len(r["pipeline"]) + 2 for r in rows))
    lines = ["\nagent agreement on the test sets (action on the view vs on the canonical image)"]
    lines += [f"{'pipeline':<{width}}{'test task':>14}{'images':>8}{'action error':>14}{'wrong sign':>12}"]
    for r in rows:
        lines.append(f"{r['pipeline']:<{width}}{r['domain']:>14}{r['images']:>8}{r['action_error']:>14.3f}"
                     f"{100 * r['wrong_sign']:>11.0f}%")  # fmt: skip
    return "\n".join(lines)


def format_matrix(matrix: dict[str, Any]) -> str:
    """Success rates (%, with the 95% interval) as a text table: pipelines x domains."""
    cells = {(c["pipeline"], c["domain"]): c for c in matrix["cells"]}
    width = max(12, *(len(p) + 2 for p in matrix["pipelines"]))
    lines = [f"{'pipeline':<{width}}" + "".join(f"{d:>18}" for d in matrix["domains"])]
    for p in matrix["pipelines"]:
        row = ""
        for d in matrix["domains"]:
            c = cells[(p, d)]
            low, high = c["success_ci95"]
            text = f"{100 * c['success_rate']:.0f}% [{100 * low:.0f}-{100 * high:.0f}]"
            row += f"{text:>18}"
        lines.append(f"{p:<{width}}{row}")
    return "\n".join(lines)


def closed_loop(
    runs: Path,
    preset: str,
    vaes: list[Pipeline],
    resolution: int = 64,
    device: str | torch.device = "cpu",
    episodes: int | None = None,
    progress: bool = True,
    precision: str = "auto",
    data: StreamData | None = None,
    agent: Path | None = None,
    train: AgentConfig | None = None,
) -> tuple[dict[str, Any], Path]:
    """The whole sim2real check of ``preset``: train or reuse its agent under ``runs/rl`` (the agent
    of config ``train`` instead when given, e.g. one through a Task-0 model), or load the trained
    agent folder ``agent``; then the matrix of ``oracle``, ``raw`` and ``vaes`` in every domain,
    written to :func:`~benchmark.rl.config.matrix_folder` (of that folder, or of ``train``'s)."""
    from benchmark.rl.agent import get_or_train_agent, load_agent
    from benchmark.rl.config import EVAL_EPISODES, agent_config, matrix_folder

    if agent is not None:
        model, cfg, _ = load_agent(agent, device)
    else:
        cfg = train or agent_config(preset, resolution)
        model, directory, _ = get_or_train_agent(cfg, runs / "rl", device, progress)
        agent = directory if train is not None else None
    out = matrix_folder(runs, preset, agent)
    pipelines = [Pipeline(ORACLE), Pipeline(RAW), *vaes]
    tasks, _ = stream_of(vaes)
    matrix = evaluate_matrix(
        model,
        cfg,
        pipelines,
        out,
        domains=default_domains(vaes),
        episodes=episodes or EVAL_EPISODES[preset],
        device=device,
        progress=progress,
        precision=precision,
        data=data,
        data_tasks=tasks or DATA_TASKS,
    )
    return matrix, out
