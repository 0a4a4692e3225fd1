"""The VAE loss (the paper's Eq. 1) with KL annealing, as an Avalanche criterion.

    loss = alpha * reconstruction(recon, canonical_target) + beta * auxiliary(aux_pred, aux) + gamma_t * KL

Every term is summed over its elements (pixels and channels, auxiliary components, latent
dimensions) and averaged over the batch: the reconstruction error is "accumulated over every
pixel" as in the paper (Xie et al., Eq. 1).

Deviation from the paper, on by default: the reconstruction term is *foreground-weighted*. Each
pixel's squared error is multiplied by ``1 + arm_weight`` on the arm's pixels and
``1 + target_weight`` on the target's pixels of the canonical target image (the segmentation
mask rendered with it, ``mbatch[3]``), by ``1 + stray_weight`` on the floor pixels the
reconstruction paints off the floor colour (:func:`stray_pixels`), and by 1 elsewhere; with
the three weights 0 this is the paper's plain Eq. 1 (``--plain-eq1``). Why: the target covers ~12 of
4,096 pixels and the floor ~97%, so the plain sum lets a model that blurs or misplaces the
target by a few pixels reach a low MSE while the agent acting on it fails (see the README,
"Task metrics"). The idea is PixelDA's masked PMSE (Bousmalis et al. 2017) and RCAN's
segmentation supervision (James et al. 2019). The reconstruction target is always the canonical image
(``mbatch[1]``), never the input. ``gamma_t`` ramps linearly from 0 to ``gamma`` over the
first ``kl_anneal_iterations`` training iterations (Bowman et al., 2016, "Generating
sentences from a continuous space").

Avalanche calls ``criterion(mb_output, mb_y)`` only; the auxiliary vector is ``mbatch[2]``
and the mask ``mbatch[3]``, so :class:`VAELoss` is also a plugin: Avalanche registers a criterion that is a plugin
automatically, which gives it the strategy and its current minibatch. When a plugin calls the
criterion on a batch of its own (EWC computing importances), the auxiliary term is left out
and the reconstruction is unweighted, since that batch's auxiliary vector and mask are not
known to the criterion.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from avalanche.core import SupervisedPlugin

from benchmark.mapping.fastpath import to_float_images
from benchmark.mapping.task_metrics import ARM_THRESHOLD
from benchmark.mapping.vae import VAEOutput
from envs.renderer import MASK_ARM, MASK_FLOOR, MASK_TARGET


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
    arm_weight: float = 0.0
    """Extra weight of the arm's pixels in the reconstruction term (0: the paper's plain term)."""
    target_weight: float = 0.0
    """Extra weight of the target's pixels in the reconstruction term (0: the paper's plain term)."""
    weight_dilation: int = 0
    """Grow the weighted regions by this many pixels (a square neighbourhood) before weighting, so the
    floor right around the arm and the target costs as much as they do (see :func:`pixel_weights`)."""
    stray_weight: float = 0.0
    """Extra weight of *stray* pixels: floor pixels of the canonical target that the reconstruction
    paints as something else (see :func:`stray_pixels`)."""


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


def _region(mask: torch.Tensor, label: int, dilation: int) -> torch.Tensor:
    """``(N, 1, H, W)`` float indicator of ``label`` in ``mask``, grown by ``dilation`` pixels."""
    region = (mask == label).float().unsqueeze(1)
    if dilation > 0:
        region = torch.nn.functional.max_pool2d(region, 2 * dilation + 1, stride=1, padding=dilation)
    return region


def pixel_weights(mask: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """Per-pixel weights ``(N, 1, H, W)`` of the reconstruction term for segmentation masks ``(N, H, W)``.

    ``1 + arm_weight`` on the arm, ``1 + target_weight`` on the target (the larger where grown
    regions overlap), 1 elsewhere. Weighting only the objects' own pixels makes a misplaced edge
    cheap on the floor side and dear on the object side, so a model learns to paint the arm a
    little too wide; ``weight_dilation`` weights a band of floor around each object the same.
    """
    weights = torch.ones((mask.shape[0], 1, *mask.shape[1:]), dtype=torch.float32, device=mask.device)
    if config.arm_weight:
        weights = torch.maximum(weights, 1 + config.arm_weight * _region(mask, MASK_ARM, config.weight_dilation))
    if config.target_weight:
        target = _region(mask, MASK_TARGET, config.weight_dilation)
        weights = torch.maximum(weights, 1 + config.target_weight * target)
    return weights


STRAY_THRESHOLD = ARM_THRESHOLD
"""A floor pixel is stray when the reconstruction misses its colour by more than this in some
channel: the arm-IoU detector's threshold (:data:`benchmark.mapping.task_metrics.ARM_THRESHOLD`)."""


def stray_pixels(recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` float indicator of the floor pixels (by ``mask``) that ``recon`` paints off the floor colour.

    Weighting only the objects' pixels makes a false positive cheap: the model paints the target
    and the arm too wide and speckles the floor, since a miss on an object costs up to 100 times
    a stray mark beside it. Giving the stray pixels of the current reconstruction (no gradient
    flows through the choice) a weight of their own makes both mistakes dear, in the spirit of
    the hard-pixel weighting of focal losses (Lin et al. 2017).
    """
    off = (recon.detach().float() - target).abs().amax(dim=1, keepdim=True) > STRAY_THRESHOLD
    return (off & (mask == MASK_FLOOR).unsqueeze(1)).float()


def vae_loss(
    output: VAEOutput,
    target: torch.Tensor,
    aux: torch.Tensor,
    config: LossConfig,
    gamma: float,
    mask: torch.Tensor | None = None,
) -> LossTerms:
    """Eq. 1 for one batch, computed in fp32; foreground-weighted where ``mask`` is given and the weights are set."""
    n = target.shape[0]
    error, aux_error, kl_terms = _elementwise_terms(output, target, aux, config, mask)
    recon = error.sum() / n
    aux_term = aux_error.sum() / n
    kl = kl_terms.sum() / n
    total = config.alpha * recon + config.beta * aux_term + gamma * kl
    return LossTerms(total, recon, aux_term, kl, gamma)


def _elementwise_terms(
    output: VAEOutput, target: torch.Tensor, aux: torch.Tensor, config: LossConfig, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The weighted per-pixel squared error, per-component auxiliary error and per-dimension KL,
    each ``(N, ...)``: what :func:`vae_loss` and :func:`vae_loss_per_sample` sum, over the batch
    or per sample."""
    target = to_float_images(target)
    error = (output.recon.float() - target).pow(2)
    if mask is not None and (config.arm_weight or config.target_weight or config.stray_weight):
        weights = pixel_weights(mask, config)
        if config.stray_weight:
            weights = torch.maximum(weights, 1 + config.stray_weight * stray_pixels(output.recon, target, mask))
        error = error * weights
    aux_error = (output.aux.float() - aux.float()).pow(2)
    mu, logvar = output.mu.float(), output.logvar.float()
    return error, aux_error, -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def vae_loss_per_sample(
    output: VAEOutput,
    target: torch.Tensor,
    aux: torch.Tensor,
    config: LossConfig,
    gamma: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 1 of each sample, ``(N,)``: :func:`vae_loss`'s total before the batch mean (for MIR's retrieval).

    One pass over the batch (every term summed per sample), not a :func:`vae_loss` call per row."""
    error, aux_error, kl_terms = _elementwise_terms(output, target, aux, config, mask)
    recon, aux_term = error.flatten(1).sum(1), aux_error.flatten(1).sum(1)
    kl = kl_terms.flatten(1).sum(1)
    return config.alpha * recon + config.beta * aux_term + gamma * kl


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
        mask = None
        if target is self._strategy.mb_y:
            aux = self._strategy.mbatch[2]
            mask = self._strategy.mbatch[3]
            config = self.config
        else:
            # A plugin calls the criterion on a batch of its own (EWC's importance pass): the
            # batch's auxiliary vector and mask are unknown here, so the auxiliary term is left
            # out and the reconstruction is unweighted.
            aux = output.aux.detach()
            config = dataclasses.replace(self.config, beta=0.0)
        terms = vae_loss(output, target, aux, config, self.gamma, mask)
        if target is self._strategy.mb_y:
            self.last = terms
        return terms.total

    def state_dict(self) -> dict[str, int]:
        return {"iterations": self.iterations}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.iterations = int(state["iterations"])
