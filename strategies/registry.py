"""The strategy registry: a strategy is one builder function registered by name.

A builder receives a :class:`StrategyContext` (model, optimizer, the Eq. 1 criterion, the
evaluator, common plugins) and returns an Avalanche template, usually ``Naive`` with some
plugins. The *schedule* says how the runner feeds it the stream:

- ``continual``: start from the shared Task-0 model (trained once per run config), then train
  on Task 1 and Task 2 with the preset's epochs;
- ``single``: a fresh model per task, trained on that task only for the total epochs;
- ``joint``: one model on the joint dataset (a third of each task) for the total epochs.

Plugins of a ``continual`` strategy never see Task-0 training, since that model is shared,
unless it is registered with ``shares_task0=False``: it then trains its own Task-0 model with
its plugins watching (SI needs Task 0's trajectory). A plugin that keeps state across
experiences can implement ``catch_up(strategy, experience)`` to absorb an experience it did
not train on (the runner calls it for Task 0, and on ``--resume`` for every finished
experience), and ``state_dict()`` / ``load_state_dict()`` if that state cannot be rebuilt
from the data alone (the runner checkpoints it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.templates import SupervisedTemplate

from benchmark.continual.config import STRATEGY_FIELDS, TrainConfig
from benchmark.mapping.loss import VAELoss
from benchmark.mapping.vae import ConvVAE

Schedule = Literal["continual", "single", "joint"]
SCHEDULES: tuple[str, ...] = ("continual", "single", "joint")


@dataclass
class StrategyContext:
    """What a builder needs to make its Avalanche template."""

    model: ConvVAE
    optimizer: torch.optim.Optimizer
    criterion: VAELoss
    evaluator: EvaluationPlugin
    device: torch.device
    config: TrainConfig
    seed: int
    plugins: list[SupervisedPlugin] = field(default_factory=list)
    """Plugins every strategy gets (e.g. the NaN guard); builders add their own after these."""

    def template_kwargs(self, *plugins: SupervisedPlugin) -> dict[str, Any]:
        """Keyword arguments for any Avalanche ``SupervisedTemplate`` subclass."""
        return {
            "model": self.model,
            "optimizer": self.optimizer,
            "criterion": self.criterion,
            "train_mb_size": self.config.batch_size,
            "train_epochs": 1,  # the runner sets the epochs of each experience
            "eval_mb_size": self.config.eval_batch_size,
            "device": self.device,
            "plugins": [*self.plugins, *plugins],
            "evaluator": self.evaluator,
            "eval_every": -1,
        }


Builder = Callable[[StrategyContext], SupervisedTemplate]


@dataclass(frozen=True)
class StrategyEntry:
    name: str
    build: Builder
    schedule: Schedule
    description: str
    shares_task0: bool = True
    """``continual`` only: start from the shared Task-0 model (else train Task 0 with the plugins)."""
    reads: tuple[str, ...] = STRATEGY_FIELDS
    """The strategy-only :class:`TrainConfig` fields (:data:`STRATEGY_FIELDS`) the builder reads. A
    finished run is compared with a new config on these only (``--resume``, the sweep's skip), so
    changing the default of another strategy's flag (``--agem-sample-size``) leaves every other
    strategy's runs valid. A strategy registered without saying reads all of them: the safe side."""

    @property
    def starts_from_task0(self) -> bool:
        """Whether its runs start from the shared Task-0 model (a ``continual`` strategy that shares it)."""
        return self.schedule == "continual" and self.shares_task0


_REGISTRY: dict[str, StrategyEntry] = {}


def register_strategy(
    name: str, schedule: Schedule = "continual", shares_task0: bool = True, reads: tuple[str, ...] = STRATEGY_FIELDS
) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under ``name``; its docstring's first line describes it.

    ``reads``: the :data:`STRATEGY_FIELDS` its plugins use (see :attr:`StrategyEntry.reads`;
    by default all of them)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if unknown := sorted(set(reads) - set(STRATEGY_FIELDS)):
        raise ValueError(f"reads: {', '.join(unknown)} not among the strategy fields {', '.join(STRATEGY_FIELDS)}")
    if not name or "," in name or name == "all":
        raise ValueError(f"invalid strategy name {name!r}")

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} is already registered")
        doc = (builder.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = StrategyEntry(name, builder, schedule, doc, shares_task0, tuple(reads))
        return builder

    return decorator


def unregister_strategy(name: str) -> None:
    """Remove a registered strategy (for tests and notebooks)."""
    _REGISTRY.pop(name, None)


def available_strategies() -> list[str]:
    """Registered names, in registration order."""
    return list(_REGISTRY)


def get_strategy(name: str) -> StrategyEntry:
    """The entry registered as ``name``; a ``KeyError`` lists the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; valid strategies: {', '.join(_REGISTRY)}") from None
