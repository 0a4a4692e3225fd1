"""Train and evaluate one strategy on the stream: schedule, shared Task-0 model, checkpoints, resume, results.

A run folder ``<out>/<strategy>/seed<N>/`` holds ``config.json``, ``logs/`` (Avalanche's CSV
files, ``metrics.csv``, TensorBoard), ``checkpoints/exp<k>.pt`` after each experience,
``model.pt`` and ``results.json``. After every training experience the model is evaluated on
all test experiences; row ``i`` of each matrix is the evaluation after training step ``i``.

Continual strategies start from one Task-0 model per configuration, trained once and kept
under ``<out>/_shared/`` (keyed by everything that determines it), so ``--strategy all`` and
later runs reuse it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.task_aware import with_task_labels

from benchmark.common.io import write_json
from benchmark.continual import checkpoint
from benchmark.continual.config import LATER_TASK_FIELDS, RESUME_IGNORES, STRATEGY_FIELDS, RunConfig, run_dir
from benchmark.continual.results import append_row, empty_rows, make_results
from benchmark.continual.session import Session
from benchmark.data.cache import spec_key
from benchmark.data.generate import StreamData
from benchmark.data.stream import build_benchmark, joint_dataset
from benchmark.mapping.vae import ARCHITECTURE_VERSION, ConvVAE, save_vae
from strategies.registry import get_strategy

log = logging.getLogger("ciim.train")


class ResumeError(RuntimeError):
    """A run folder cannot be resumed with this configuration."""


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def task0_path(cfg: RunConfig, out: Path) -> Path:
    """Where the shared Task-0 model of ``cfg`` lives: keyed by everything that determines it
    (the first task's data, seed, device type, architecture, arithmetic, and the training config
    but for the fields that act only later, :data:`LATER_TASK_FIELDS`, and the later tasks'
    epochs), so every continual strategy of a seed shares it, whatever tasks follow the first (the
    first task's samples do not depend on the later tasks: see
    :func:`benchmark.data.generate.state_seed`)."""
    t = cfg.train
    key = _digest(
        {
            "data": spec_key(dataclasses.replace(cfg.data, tasks=cfg.data.tasks[:1])),
            "seed": cfg.seed,
            "device": torch.device(cfg.device).type,
            "architecture": ARCHITECTURE_VERSION,
            "fast": {k: v for k, v in dataclasses.asdict(cfg.fast).items() if k != "reason"},
            "train": {k: v for k, v in dataclasses.asdict(t).items() if k not in LATER_TASK_FIELDS}
            | {"epochs": t.epochs[0]},
        }
    )
    return out / "_shared" / f"task0-{key}.pt"


def shared_task0(
    cfg: RunConfig, device: torch.device, data: StreamData, out: Path, progress: bool
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The Task-0 model state and its evaluation row, trained once per configuration (:func:`task0_path`)."""
    t = cfg.train
    path = task0_path(cfg, out)
    if path.is_file():
        try:
            saved = checkpoint.load(path)
        except Exception as exc:  # a damaged file is retrained, not fatal
            log.warning("train: Task-0 model %s is unreadable (%s); retraining", path, exc.__class__.__name__)
        else:
            log.info("train: reusing the Task-0 model %s", path)
            export_task0(cfg, path, saved["state"])
            if saved["config"]["data"]["tasks"] == list(cfg.data.tasks):
                return saved["state"], saved["row"]
            return saved["state"], _evaluate_state(cfg, device, data, saved["state"])
    log.info("train: training the shared Task-0 model (%d epochs)", t.epochs[0])
    checkpoint.seed_everything(cfg.seed)
    bm = build_benchmark(data)
    log_dir = path.with_suffix("") / "logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    session = Session(get_strategy("finetune"), cfg, device, log_dir, progress)
    try:
        session.train(bm.train_stream[0], t.epochs[0])
        row = session.evaluate(bm.test_stream, data.num_tasks)
        state = session.state()
    finally:
        session.close()
    checkpoint.save(path, {"state": state, "row": row, "config": cfg.to_dict()})
    export_task0(cfg, path, state)
    return state, row


def task0_vae_file(path: Path) -> Path:
    """The plain VAE file exported beside the shared Task-0 checkpoint ``path``: ``<path without .pt>/model.pt``."""
    return path.with_suffix("") / "model.pt"


def export_task0(cfg: RunConfig, path: Path, state: dict[str, Any]) -> Path:
    """Write the shared Task-0 model at ``path`` as a plain VAE file (:func:`task0_vae_file`), if missing.

    That file is what a user hands to ``benchmark.rl train --mapping`` (an agent that also learns
    from the first task's reconstructions of canonical frames) or to ``benchmark.rl evaluate --vae``,
    and what ``benchmark.run --rl --agent task0`` trains its agent through.
    """
    target = task0_vae_file(path)
    if not target.is_file():
        model = ConvVAE(cfg.train.vae_config(cfg.data.scene.resolution))
        model.load_state_dict(state["model"])
        save_vae(model, target, {"task": 0, "seed": cfg.seed, "shared": path.name})
    return target


def config_differences(directory: Path, cfg: RunConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """Top-level sections of ``directory/config.json`` that differ from ``cfg`` (``ignore``: sections not compared).

    The strategy-only training fields that ``cfg.strategy`` does not read are not compared
    (:attr:`strategies.registry.StrategyEntry.reads`)."""
    old = json.loads((directory / "config.json").read_text())
    new = json.loads(json.dumps(cfg.to_dict()))
    try:
        unread = set(STRATEGY_FIELDS) - set(get_strategy(cfg.strategy).reads)
    except KeyError:  # a strategy not registered here: compare every field
        unread = set()
    for section, key in {*RESUME_IGNORES, *(("train", k) for k in unread)}:
        for config in (old, new):
            config.get(section, {}).pop(key, None)
    return sorted(k for k in set(old) | set(new) if k not in ignore and old.get(k) != new.get(k))


def _evaluate_state(
    cfg: RunConfig, device: torch.device, data: StreamData, state: dict[str, Any]
) -> dict[str, list[float]]:
    """One results row of a saved model state on this stream's test tasks (a Task-0 model shared
    with a stream whose later tasks differ)."""
    with tempfile.TemporaryDirectory(prefix="ciim-eval-") as logs:
        session = Session(get_strategy("finetune"), cfg, device, Path(logs), progress=False)
        try:
            session.load_state(state, plugins=False)
            return session.evaluate(build_benchmark(data).test_stream, data.num_tasks)
        finally:
            session.close()


def _check_resume(directory: Path, cfg: RunConfig) -> None:
    if diff := config_differences(directory, cfg):
        raise ResumeError(f"cannot resume {directory}: its config differs in {', '.join(diff)}")


def _finished(directory: Path, steps: int) -> bool:
    """Whether the run in ``directory`` saved its last step's checkpoint, its model and its results
    (a run extended onto a longer stream has no checkpoint of its new last step yet)."""
    last = directory / "checkpoints" / f"exp{steps - 1}.pt"
    return all(p.is_file() for p in (last, directory / "results.json", directory / "model.pt"))


def _latest_checkpoint(directory: Path, steps: int) -> tuple[int, dict[str, Any]] | None:
    for step in reversed(range(steps)):
        path = directory / "checkpoints" / f"exp{step}.pt"
        if path.is_file():
            try:
                return step, checkpoint.load(path)
            except Exception:  # a checkpoint cut short by a kill: fall back to the previous one
                log.warning("train: checkpoint %s is unreadable; trying an earlier one", path)
    return None


def run_strategy(
    cfg: RunConfig, data: StreamData, out: Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train and evaluate ``cfg.strategy``; returns (and writes) its ``results.json`` content."""
    entry = get_strategy(cfg.strategy)
    device = torch.device(cfg.device)
    directory = run_dir(out, cfg.strategy, cfg.seed)
    bm = build_benchmark(data)
    num_tasks = data.num_tasks
    t = cfg.train
    if len(t.epochs) != num_tasks:
        raise ValueError(f"epochs has {len(t.epochs)} values but the stream has {num_tasks} tasks")
    if entry.schedule == "joint":
        joint = with_task_labels(benchmark_from_datasets(train=[joint_dataset(data, cfg.seed)]))
        steps = [(joint.train_stream[0], t.total_epochs)]
    elif entry.schedule == "single":
        steps = [(exp, t.total_epochs) for exp in bm.train_stream]
    else:
        steps = [(exp, t.epochs[k]) for k, exp in enumerate(bm.train_stream)]

    start_step, rows, elapsed = 0, empty_rows(), 0.0
    if resume and not (directory / "config.json").is_file():
        log.info("train: nothing to resume in %s; starting it", directory)
        resume = False
    if resume:
        _check_resume(directory, cfg)
        if _finished(directory, len(steps)):
            # Nothing left to train: keep the run's files as they are (a rewritten model.pt or
            # results.json would change their dates and the wall time for no new result).
            log.info("train: %s is finished; its results are kept", directory)
            return json.loads((directory / "results.json").read_text())
    resumed = _latest_checkpoint(directory, len(steps)) if resume else None
    if not resume:
        # A fresh run: nothing of an earlier run in this folder may be mixed into it.
        shutil.rmtree(directory / "checkpoints", ignore_errors=True)
        shutil.rmtree(directory / "logs", ignore_errors=True)
        for stale in directory.glob("*.pt"):
            stale.unlink()
        (directory / "results.json").unlink(missing_ok=True)
        write_json(directory / "config.json", cfg.to_dict())

    started = time.perf_counter()
    if resumed is None:
        checkpoint.seed_everything(cfg.seed)  # the model's initial weights come from the seed
    session = Session(entry, cfg, device, directory / "logs", progress)
    try:
        if resumed is not None:
            step, saved = resumed
            log.info("train: resuming %s after step %d", directory, step)
            session.load_state(saved["session"])
            rows, elapsed, start_step = saved["rows"], saved["elapsed"], step + 1
            for plugin in session.plugins_with("catch_up"):
                if not hasattr(plugin, "load_state_dict"):
                    for k in range(start_step):
                        plugin.catch_up(session.strategy, steps[k][0])
        elif entry.starts_from_task0:
            state, row = shared_task0(cfg, device, data, out, progress)
            session.load_state(state, plugins=False)
            for plugin in session.plugins_with("catch_up"):
                plugin.catch_up(session.strategy, steps[0][0])
            append_row(rows, row)
            start_step = 1
            _save_step(directory, 0, session, rows, elapsed + time.perf_counter() - started)

        for k in range(start_step, len(steps)):
            experience, epochs = steps[k]
            if entry.schedule == "single":
                session.reset_model(cfg.seed * 1000 + k)
            session.train(experience, epochs)
            append_row(rows, session.evaluate(bm.test_stream, num_tasks))
            if entry.schedule == "single":
                save_vae(session.model, directory / f"model_task{k}.pt", {"task": k})
            _save_step(directory, k, session, rows, elapsed + time.perf_counter() - started)
        save_vae(session.model, directory / "model.pt", {"strategy": cfg.strategy, "seed": cfg.seed})
    finally:
        session.close()

    wall = elapsed + time.perf_counter() - started
    results = make_results(cfg, entry.schedule, rows, wall)
    write_json(directory / "results.json", results)
    return results


def _save_step(directory: Path, step: int, session: Session, rows: dict[str, Any], elapsed: float) -> None:
    state = {"session": session.state(), "rows": rows, "elapsed": elapsed, "step": step}
    checkpoint.save(directory / "checkpoints" / f"exp{step}.pt", state)
