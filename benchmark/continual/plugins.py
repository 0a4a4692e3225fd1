"""Training guards as Avalanche plugins: stop on a non-finite loss, clip the gradient norm."""

from __future__ import annotations

import logging
from typing import Any

import torch
from avalanche.core import SupervisedPlugin

log = logging.getLogger("ciim.train")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the experience and iteration."""


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
