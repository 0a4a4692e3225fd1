"""The VAE loss (the paper's Eq. 1) with KL annealing, as an Avalanche criterion.

    loss = alpha * reconstruction(recon, canonical_target) + beta * auxiliary(aux_pred, aux) + gamma_t * KL

Every term is summed over its elements (pixels and channels, auxiliary components, latent
dimensions) and averaged over the batch: the reconstruction error is "accumulated over every
pixel" as in the paper. The reconstruction target is always the canonical image
(``mbatch[1]``), never the input. ``gamma_t`` ramps linearly from 0 to ``gamma`` over the
first ``kl_anneal_iterations`` training iterations (Bowman et al., 2016, "Generating
sentences from a continuous space").

Avalanche calls ``criterion(mb_output, mb_y)`` only; the auxiliary vector is ``mbatch[2]``,
so :class:`VAELoss` is also a plugin: Avalanche registers a criterion that is a plugin
automatically, which gives it the strategy and its current minibatch. When a plugin calls the
criterion on a batch of its own (EWC computing importances), the auxiliary term is left out,
since that batch's auxiliary vector is not known to the criterion.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from avalanche.core import SupervisedPlugin

from benchmark.fastpath import to_float_images
from benchmark.vae import VAEOutput


@dataclass(frozen=True)
class LossConfig:
    """Weights of Eq. 1 and the KL schedule."""

    alpha: float = 1.0
    """Weight of the reconstruction term."""
    beta: float = 10.0
    """Weight of the auxiliary regression term."""
    gamma: float = 0.01
    """Final weight of the KL term."""
    kl_anneal_iterations: int = 500
    """Iterations over which the KL weight ramps from 0 to ``gamma``; 0 disables the ramp."""


class LossTerms(NamedTuple):
    """Eq. 1 and its parts (each already averaged over the batch, before weighting)."""

    total: torch.Tensor
    recon: torch.Tensor
    aux: torch.Tensor
    kl: torch.Tensor
    gamma: float


def kl_weight(config: LossConfig, iteration: int) -> float:
    """The annealed KL weight after ``iteration`` training iterations."""
    if config.kl_anneal_iterations <= 0:
        return config.gamma
    return config.gamma * min(1.0, iteration / config.kl_anneal_iterations)


def vae_loss(output: VAEOutput, target: torch.Tensor, aux: torch.Tensor, config: LossConfig, gamma: float) -> LossTerms:
    """Eq. 1 for one batch, computed in fp32."""
    n = target.shape[0]
    recon = (output.recon.float() - to_float_images(target)).pow(2).sum() / n
    aux_term = (output.aux.float() - aux.float()).pow(2).sum() / n
    mu, logvar = output.mu.float(), output.logvar.float()
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / n
    total = config.alpha * recon + config.beta * aux_term + gamma * kl
    return LossTerms(total, recon, aux_term, kl, gamma)


class VAELoss(SupervisedPlugin):
    """Eq. 1 as an Avalanche criterion; counts training iterations for the KL ramp.

    ``last`` holds the terms of the latest call, for the training metrics.
    """

    def __init__(self, config: LossConfig) -> None:
        super().__init__()
        self.config = config
        self.iterations = 0
        self.last: LossTerms | None = None
        self._strategy: Any = None

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._strategy = strategy

    def before_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._strategy = strategy

    def after_training_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.iterations += 1

    @property
    def gamma(self) -> float:
        """The KL weight of the current iteration."""
        return kl_weight(self.config, self.iterations)

    def __call__(self, output: VAEOutput, target: torch.Tensor) -> torch.Tensor:
        if self._strategy is None:
            raise RuntimeError("VAELoss must be the criterion of an Avalanche strategy (it reads mbatch[2])")
        if target is self._strategy.mb_y:
            aux = self._strategy.mbatch[2]
            config = self.config
        else:
            # A plugin calls the criterion on a batch of its own (EWC's importance pass): the
            # batch's auxiliary vector is unknown here, so that term is left out.
            aux = output.aux.detach()
            config = dataclasses.replace(self.config, beta=0.0)
        terms = vae_loss(output, target, aux, config, self.gamma)
        if target is self._strategy.mb_y:
            self.last = terms
        return terms.total

    def state_dict(self) -> dict[str, int]:
        return {"iterations": self.iterations}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.iterations = int(state["iterations"])
