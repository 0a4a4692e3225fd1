"""Elastic weight consolidation (Kirkpatrick et al., PNAS 2017) on Avalanche's ``EWCPlugin``.

Avalanche's plugin keeps the anchor weights and importances of every experience and adds
``ewc_lambda * sum_i F_i (theta - theta*_i)^2`` to the loss (``mode="separate"``). Only its
importance pass is replaced: it calls ``criterion(model(x), y)`` on batches of its own, where
our criterion cannot see the auxiliary vector and the mask, so the Fisher diagonal (the mean
squared gradient of each minibatch, as Avalanche computes it) would come from a reduced loss.
Here it comes from the whole Eq. 1 (:mod:`strategies.passes`).

``ewc_lambda`` 1, ``separate``: ContinualAI's continual-learning-baselines,
``experiments/permuted_mnist/ewc.py`` (Avalanche's reference EWC experiment). Our Eq. 1 is
a sum over pixels, not a mean, so the same lambda weighs more here than on a classifier;
the README's strategy table shows what it does on quick.

The shared Task-0 model was trained without the plugin: ``catch_up`` computes Task 0's
importances from it. The importances and anchors are checkpointed for ``--resume``.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training import Naive
from avalanche.training.plugins import EWCPlugin
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import ParamData, copy_params_dict, zerolike_params_dict

from benchmark.mapping.loss import VAELoss
from strategies.param_state import params_from_state, params_state
from strategies.passes import eq1, experience_batches
from strategies.registry import StrategyContext, register_strategy


class EWC(EWCPlugin):
    """Avalanche's EWC with the Fisher diagonal of the whole Eq. 1, able to catch up on Task 0."""

    def __init__(self, criterion: VAELoss, ewc_lambda: float) -> None:
        super().__init__(ewc_lambda, mode="separate")
        self.criterion = criterion

    def compute_importances(  # type: ignore[override]
        self, model, criterion, optimizer, dataset, device, batch_size, num_workers=0
    ) -> dict[str, ParamData]:
        """Mean over minibatches of the squared gradient of Eq. 1 (Avalanche's estimate of the Fisher diagonal)."""
        importances = zerolike_params_dict(model)
        batches = 0
        with torch.random.fork_rng(devices=[]):  # the pass does not move the training's random stream
            for batch in experience_batches(dataset, batch_size, device):
                optimizer.zero_grad()
                eq1(self.criterion, model, batch).backward()
                for (name, param), (same, imp) in zip(model.named_parameters(), importances.items(), strict=True):
                    assert name == same
                    if param.grad is not None:
                        imp.data += param.grad.detach().pow(2)
                batches += 1
        optimizer.zero_grad()
        for imp in importances.values():
            imp.data /= float(max(batches, 1))
        return dict(importances)

    def catch_up(self, strategy: Any, experience: Any) -> None:
        """Importances and anchor of an experience trained without the plugin (the shared Task 0)."""
        t = int(experience.current_experience)
        importances = self.compute_importances(
            strategy.model, None, strategy.optimizer, experience.dataset, strategy.device, strategy.train_mb_size
        )
        self.update_importances(importances, t)
        self.saved_params[t] = copy_params_dict(strategy.model)

    def state_dict(self) -> dict[str, Any]:
        return {"importances": params_state(self.importances), "saved_params": params_state(self.saved_params)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.importances.clear()
        self.importances.update(params_from_state(state["importances"], device))
        self.saved_params.clear()
        self.saved_params.update(params_from_state(state["saved_params"], device))


@register_strategy("ewc", reads=("ewc_lambda",))
def ewc(ctx: StrategyContext) -> SupervisedTemplate:
    """Elastic weight consolidation: a Fisher-weighted pull towards each earlier experience's weights."""
    return Naive(**ctx.template_kwargs(EWC(ctx.criterion, ctx.config.ewc_lambda)))
