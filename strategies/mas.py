"""Memory aware synapses (Aljundi et al., ECCV 2018) on Avalanche's ``MASPlugin``.

MAS weighs each parameter by how much the model's *output* moves with it: the mean absolute
gradient of the squared L2 norm of the output over the experience's inputs, no labels needed.
Avalanche's plugin takes the output of ``model(x)`` as one tensor and refuses batches of more
than three fields; our model returns a ``VAEOutput`` and our batches have five fields, so the
importance pass is replaced (the penalty, the anchors and the running merge of importances
are Avalanche's). The output here is what the mapping gives the agent and the auxiliary head:
the deterministic reconstruction ``decode(mu)`` and the auxiliary prediction, per sample.

``mas_lambda`` 1 and ``mas_alpha`` 0.5: Avalanche's defaults, also ContinualAI's
continual-learning-baselines ``experiments/split_tiny_imagenet/mas.py``.

The shared Task-0 model was trained without the plugin: ``catch_up`` computes Task 0's
importances and anchor from it. Both are checkpointed for ``--resume``.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training import Naive
from avalanche.training.plugins import MASPlugin
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import ParamData, copy_params_dict, zerolike_params_dict

from benchmark.mapping.vae import ConvVAE
from strategies.param_state import params_from_state, params_state
from strategies.passes import experience_batches
from strategies.registry import StrategyContext, register_strategy


def output_importance(model: ConvVAE, dataset: Any, batch_size: int, device: Any) -> dict[str, ParamData]:
    """Mean over minibatches of ``|d/dtheta mean_n ||(decode(mu_n), aux_n)||^2|``, per parameter."""
    importance = dict(zerolike_params_dict(model))
    batches = 0
    was_training = model.training
    model.train()
    for x, *_ in experience_batches(dataset, batch_size, device):
        model.zero_grad()
        mu, _ = model.encode(x)
        out = torch.cat([model.decode(mu).flatten(1), model.aux_head(mu)], dim=1)
        out.pow(2).sum(dim=1).mean().backward()
        for name, param in model.named_parameters():
            if param.grad is not None:
                importance[name].data += param.grad.detach().abs()
        batches += 1
    model.zero_grad()
    model.train(was_training)
    for imp in importance.values():
        imp.data /= float(max(batches, 1))
    return importance


class MAS(MASPlugin):
    """Avalanche's MAS with the output of our VAE, able to catch up on Task 0."""

    def __init__(self, lambda_reg: float, alpha: float) -> None:
        super().__init__(lambda_reg=lambda_reg, alpha=alpha)

    def _get_importance(self, strategy: Any) -> dict[str, ParamData]:
        return output_importance(strategy.model, strategy.experience.dataset, strategy.train_mb_size, strategy.device)

    def catch_up(self, strategy: Any, experience: Any) -> None:
        """Importance and anchor of an experience trained without the plugin (the shared Task 0)."""
        self.params = dict(copy_params_dict(strategy.model))
        self.importance = output_importance(strategy.model, experience.dataset, strategy.train_mb_size, strategy.device)

    def state_dict(self) -> dict[str, Any]:
        return {"params": params_state(self.params or {}), "importance": params_state(self.importance or {})}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.params = params_from_state(state["params"], device) or None  # type: ignore[assignment]
        self.importance = params_from_state(state["importance"], device) or None  # type: ignore[assignment]


@register_strategy("mas", reads=("mas_lambda", "mas_alpha"))
def mas(ctx: StrategyContext) -> SupervisedTemplate:
    """Memory aware synapses: a pull towards earlier weights, weighted by the output's sensitivity to each."""
    return Naive(**ctx.template_kwargs(MAS(ctx.config.mas_lambda, ctx.config.mas_alpha)))
