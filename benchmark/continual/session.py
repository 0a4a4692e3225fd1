"""A training session: one model, its criterion, loggers and Avalanche strategy, and its saved state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import loss_metrics
from avalanche.training.plugins import EvaluationPlugin

from benchmark.continual import checkpoint
from benchmark.continual.config import RunConfig
from benchmark.continual.loggers import RunLoggers
from benchmark.continual.plugins import CosineLR, FreezeDecoder, GradClip, NaNGuard
from benchmark.mapping.fastpath import FloatBatches, apply_fast_path
from benchmark.mapping.loss import VAELoss
from benchmark.mapping.metrics import EVAL_KEYS, LossTermsMetric, MappingMetrics, eval_name
from benchmark.mapping.vae import ConvVAE
from strategies.registry import StrategyContext, StrategyEntry


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
        if t.lr_schedule == "cosine":
            plugins.append(CosineLR(t.lr, t.lr_floor))
        if t.freeze_decoder and entry.schedule == "continual":  # a single-task model is fresh per task
            plugins.append(FreezeDecoder())
        ctx = StrategyContext(self.model, self.optimizer, self.criterion, self.evaluator, device, t, cfg.seed, plugins)
        self.strategy = entry.build(ctx)

    def plugins_with(self, attribute: str) -> list[Any]:
        return [p for p in self.strategy.plugins if hasattr(p, attribute) and p is not self.criterion]

    def train(self, experience: Any, epochs: int) -> None:
        self.strategy.train_epochs = epochs
        self.strategy.train(experience)

    def evaluate(self, test_stream: Any, num_tasks: int, only: list[int] | None = None) -> dict[str, list[float]]:
        """One row of each results matrix: every metric on every test experience (or on those ``only`` names).

        Evaluation leaves the global RNG as it found it (every data loader draws a seed from it),
        so training does not depend on how many test experiences were evaluated: a run extended
        by a task trains as the uninterrupted run on the longer stream does.
        """
        tasks = list(range(num_tasks)) if only is None else only
        self.evaluator.reset_last_metrics()
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            metrics = self.strategy.eval(test_stream if only is None else [test_stream[j] for j in tasks])
        return {key: [float(metrics[eval_name(j, key)]) for j in tasks] for key in EVAL_KEYS}

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
