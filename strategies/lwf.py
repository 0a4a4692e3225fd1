"""Learning without forgetting for a VAE (Li and Hoiem, TPAMI 2017, adapted), as an Avalanche plugin.

LwF keeps no data: it keeps the model as it was at the end of the previous experience and,
on every current minibatch, adds ``lwf_alpha`` times the distance between the current
model's outputs and the previous model's outputs on the *current* inputs. Avalanche's
``LwFPlugin`` distils class logits with a temperature; our outputs are an image and the
parameters of a Gaussian, so this plugin, written like DER's, distils the deterministic
reconstruction ``decode(mu)``, ``mu`` and ``logvar`` with DER's squared error
(:func:`strategies.distill.output_distance`).
No temperature applies.

``lwf_alpha`` 1: Avalanche's default and ContinualAI's continual-learning-baselines
``experiments/split_tiny_imagenet/lwf.py``. The previous model is checkpointed for ``--resume``;
after the shared Task 0 it is that model (``catch_up``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.templates import SupervisedTemplate

from benchmark.mapping.vae import ConvVAE
from strategies.distill import output_distance
from strategies.registry import StrategyContext, register_strategy


class LwFPlugin(SupervisedPlugin):
    """Distils the previous experience's model's outputs on the current inputs into the current model."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha
        self.previous: ConvVAE | None = None
        self._pending: dict[str, torch.Tensor] | None = None
        self.last: dict[str, float] = {}

    def distillation(self, model: ConvVAE, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Distance between ``model``'s outputs (``mu``, ``logvar`` on ``x``) and the previous model's on ``x``."""
        assert self.previous is not None
        with torch.no_grad():
            old_mu, old_logvar = self.previous.encode(x)
            reference = {"recon": self.previous.decode(old_mu), "mu": old_mu, "logvar": old_logvar}
        return output_distance(model.decode(mu), mu, logvar, reference)

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        self._load_pending(strategy.model)
        if self.previous is None:
            return
        out = strategy.mb_output
        distill = self.distillation(strategy.model, strategy.mb_x, out.mu, out.logvar)
        strategy.loss = strategy.loss + self.alpha * distill
        self.last = {"distill": distill.item()}

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.remember(strategy.model)

    def catch_up(self, strategy: Any, experience: Any) -> None:
        """After an experience trained without the plugin (the shared Task 0): keep that model."""
        self.remember(strategy.model)

    def remember(self, model: ConvVAE) -> None:
        """Keep a frozen copy of ``model`` as the previous model."""
        self.previous = copy.deepcopy(model).eval().requires_grad_(False)
        self._pending = None

    def _load_pending(self, model: ConvVAE) -> None:
        if self._pending is not None:
            weights = self._pending
            self.remember(model)
            assert self.previous is not None
            self.previous.load_state_dict(weights)

    def state_dict(self) -> dict[str, Any]:
        if self._pending is not None:
            return {"previous": self._pending}
        previous = None if self.previous is None else {k: v.cpu() for k, v in self.previous.state_dict().items()}
        return {"previous": previous}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        # The architecture comes from the strategy's model, which this hook does not see: the
        # weights wait until the next minibatch.
        self.previous, self._pending = None, state["previous"]


@register_strategy("lwf", reads=("lwf_alpha",))
def lwf(ctx: StrategyContext) -> SupervisedTemplate:
    """Learning without forgetting: distil the previous model's outputs on the current inputs, keep no data."""
    return Naive(**ctx.template_kwargs(LwFPlugin(ctx.config.lwf_alpha)))
