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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import loss_metrics
from avalanche.training.plugins import EvaluationPlugin

from benchmark import checkpoint
from benchmark.cache import spec_key
from benchmark.config import DataSpec, TrainConfig
from benchmark.fastpath import FastPath, FloatBatches, apply_fast_path
from benchmark.generate import StreamData
from benchmark.io import write_json
from benchmark.loggers import RunLoggers
from benchmark.loss import VAELoss
from benchmark.metrics import EVAL_KEYS, LossTermsMetric, MappingMetrics, eval_name
from benchmark.stream import build_benchmark, joint_dataset
from benchmark.vae import ARCHITECTURE_VERSION, ConvVAE, save_vae
from strategies.registry import StrategyContext, StrategyEntry, get_strategy

log = logging.getLogger("ciim.train")
MATRIX_KEYS = {key: f"{key}_matrix" for key in EVAL_KEYS}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the experience and iteration."""


class ResumeError(RuntimeError):
    """A run folder cannot be resumed with this configuration."""


class NaNGuard(SupervisedPlugin):
    """Stops training before an optimizer step on a non-finite loss (plugins' terms included)."""

    def after_backward(self, strategy: Any, **kwargs: Any) -> None:
        loss = strategy.loss
        if not torch.isfinite(loss).all():
            raise TrainingDiverged(
                f"loss became {loss.item()} in experience {strategy.experience.current_experience} "
                f"at iteration {strategy.clock.train_exp_iterations + 1}"
            )


class GradClip(SupervisedPlugin):
    """Clips the global gradient norm before each optimizer step (``TrainConfig.grad_clip``).

    Avalanche has no such plugin. It runs in ``before_update``, after every plugin's loss term
    has been backpropagated, and logs how many steps of each experience it clipped.
    """

    def __init__(self, max_norm: float) -> None:
        super().__init__()
        if not max_norm > 0:
            raise ValueError(f"max_norm must be positive, got {max_norm}")
        self.max_norm = max_norm
        self.clipped = 0
        self.steps = 0

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.clipped = self.steps = 0

    def before_update(self, strategy: Any, **kwargs: Any) -> None:
        norm = torch.nn.utils.clip_grad_norm_(strategy.model.parameters(), self.max_norm)
        self.steps += 1
        self.clipped += int(norm > self.max_norm)

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        log.info("train: gradient norm clipped at %g in %d of %d steps", self.max_norm, self.clipped, self.steps)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run's results; saved as ``config.json``."""

    strategy: str
    preset: str
    seed: int
    device: str
    data: DataSpec
    train: TrainConfig
    fast: FastPath = FastPath()
    """Precision, memory format and compilation of the VAE (see :mod:`benchmark.fastpath`)."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["data"] = self.data.to_dict()
        out["data_key"] = spec_key(self.data)
        return out


RESUME_IGNORES = {("fast", "reason")}
"""Fields of ``config.json`` that may differ on resume: the wording of why a precision was chosen."""


def run_dir(out: Path, strategy: str, seed: int) -> Path:
    return out / strategy / f"seed{seed}"


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Session:
    """One model, its criterion, loggers and Avalanche strategy, logging into one folder."""

    def __init__(self, entry: StrategyEntry, cfg: RunConfig, device: torch.device, log_dir: Path, progress: bool):
        t = cfg.train
        self.cfg = cfg
        self.device = device
        model = ConvVAE(t.vae_config(cfg.data.scene.resolution)).to(device)
        self.model = apply_fast_path(model, cfg.fast)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=t.lr)
        self.criterion = VAELoss(t.loss_config())
        self.loggers = RunLoggers(log_dir, progress)
        self.evaluator = EvaluationPlugin(
            MappingMetrics(cfg.data.scene),
            LossTermsMetric(self.criterion),
            loss_metrics(epoch=True, experience=True),
            loggers=self.loggers.all,
        )
        plugins: list[SupervisedPlugin] = [FloatBatches(), NaNGuard()]  # FloatBatches first: see its docstring
        if t.grad_clip > 0:
            plugins.append(GradClip(t.grad_clip))
        ctx = StrategyContext(self.model, self.optimizer, self.criterion, self.evaluator, device, t, cfg.seed, plugins)
        self.strategy = entry.build(ctx)

    def plugins_with(self, attribute: str) -> list[Any]:
        return [p for p in self.strategy.plugins if hasattr(p, attribute) and p is not self.criterion]

    def train(self, experience: Any, epochs: int) -> None:
        self.strategy.train_epochs = epochs
        self.strategy.train(experience)

    def evaluate(self, test_stream: Any, num_tasks: int) -> dict[str, list[float]]:
        """One row of each results matrix: every metric on every test experience."""
        self.evaluator.reset_last_metrics()
        with torch.inference_mode():
            metrics = self.strategy.eval(test_stream)
        return {key: [float(metrics[eval_name(j, key)]) for j in range(num_tasks)] for key in EVAL_KEYS}

    def reset_model(self, seed: int) -> None:
        """Fresh, seeded weights and optimizer state (single-task models)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in self.model.modules():
                if module is not self.model and hasattr(module, "reset_parameters"):
                    module.reset_parameters()  # type: ignore[operator]
        self.optimizer.state.clear()
        self.criterion.iterations = 0

    def state(self) -> dict[str, Any]:
        clock = {k: v for k, v in vars(self.strategy.clock).items() if isinstance(v, int)}
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "criterion": self.criterion.state_dict(),
            "plugins": {type(p).__name__: p.state_dict() for p in self.plugins_with("load_state_dict")},
            "clock": clock,
            "logs": self.loggers.snapshot(),
            "rng": checkpoint.rng_state(),
        }

    def load_state(self, state: dict[str, Any], plugins: bool = True) -> None:
        self.model.load_state_dict(state["model"])
        self.model.to(self.device)
        # Avalanche resets the optimizer the first time a strategy makes it; do that now, then load.
        self.strategy.make_optimizer(reset_optimizer_state=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.criterion.load_state_dict(state["criterion"])
        if plugins:
            for plugin in self.plugins_with("load_state_dict"):
                plugin.load_state_dict(state["plugins"][type(plugin).__name__], self.device)
        for key, value in state["clock"].items():
            setattr(self.strategy.clock, key, value)
        self.loggers.restore(state["logs"])
        checkpoint.set_rng_state(state["rng"])

    def close(self) -> None:
        self.loggers.close()


def _empty_rows() -> dict[str, list[list[float]]]:
    return {key: [] for key in EVAL_KEYS}


def _append(rows: dict[str, list[list[float]]], row: dict[str, list[float]]) -> None:
    for key in EVAL_KEYS:
        rows[key].append(row[key])


def shared_task0(
    cfg: RunConfig, device: torch.device, data: StreamData, out: Path, progress: bool
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The Task-0 model state and its evaluation row, trained once per configuration."""
    t = cfg.train
    key = _digest(
        {
            "data": spec_key(cfg.data),
            "seed": cfg.seed,
            "device": device.type,
            "architecture": ARCHITECTURE_VERSION,
            "fast": {k: v for k, v in dataclasses.asdict(cfg.fast).items() if k != "reason"},
            "train": {k: v for k, v in dataclasses.asdict(t).items() if k not in ("mem_size", "der_alpha", "der_beta")}
            | {"epochs": t.epochs[0]},
        }
    )
    path = out / "_shared" / f"task0-{key}.pt"
    if path.is_file():
        try:
            saved = checkpoint.load(path)
            log.info("train: reusing the Task-0 model %s", path)
            return saved["state"], saved["row"]
        except Exception as exc:  # a damaged file is retrained, not fatal
            log.warning("train: Task-0 model %s is unreadable (%s); retraining", path, exc.__class__.__name__)
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
    return state, row


def _check_resume(directory: Path, cfg: RunConfig) -> None:
    old = json.loads((directory / "config.json").read_text())
    new = json.loads(json.dumps(cfg.to_dict()))
    for section, key in RESUME_IGNORES:
        for config in (old, new):
            config.get(section, {}).pop(key, None)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise ResumeError(f"cannot resume {directory}: its config differs in {', '.join(diff)}")


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

    start_step, rows, elapsed = 0, _empty_rows(), 0.0
    if resume and not (directory / "config.json").is_file():
        log.info("train: nothing to resume in %s; starting it", directory)
        resume = False
    resumed = _latest_checkpoint(directory, len(steps)) if resume else None
    if resume:
        _check_resume(directory, cfg)
    else:
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
        elif entry.schedule == "continual":
            state, row = shared_task0(cfg, device, data, out, progress)
            session.load_state(state, plugins=False)
            for plugin in session.plugins_with("catch_up"):
                plugin.catch_up(session.strategy, steps[0][0])
            _append(rows, row)
            start_step = 1
            _save_step(directory, 0, session, rows, elapsed + time.perf_counter() - started)

        for k in range(start_step, len(steps)):
            experience, epochs = steps[k]
            if entry.schedule == "single":
                session.reset_model(cfg.seed * 1000 + k)
            session.train(experience, epochs)
            _append(rows, session.evaluate(bm.test_stream, num_tasks))
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
