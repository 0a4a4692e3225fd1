"""Training plugins: stop on a non-finite loss, clip the gradient norm, decay the learning rate, freeze the decoder."""

from __future__ import annotations

import logging
import math
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


class CosineLR(SupervisedPlugin):
    """Cosine decay of the learning rate over each training experience (``TrainConfig.lr_schedule``).

    Iteration ``k`` of an experience of ``T`` iterations (its epochs times its batches) trains at
    ``lr * (floor + (1 - floor) * (1 + cos(pi k / T)) / 2)``: from ``lr`` down to ``floor * lr``,
    then back to ``lr`` at the next experience, so every task starts as fast as the first did
    (the warm restarts of Loshchilov and Hutter 2017, one cycle per task). Why: a short schedule
    at a constant rate ends on noisy Adam steps, which leave the reconstruction blurred where
    the arm and the target need a pixel's precision.

    Avalanche's ``LRSchedulerPlugin`` wraps one torch scheduler of a fixed length; here the
    length changes with each experience's epochs and its (replay-enlarged) data loader, so the
    rate is set from the strategy's clock before each iteration. The clock is part of a run's
    checkpoint, so a resumed run follows the same schedule.
    """

    def __init__(self, lr: float, floor: float = 0.0) -> None:
        super().__init__()
        if not lr > 0 or not 0 <= floor <= 1:
            raise ValueError(f"CosineLR needs lr > 0 and 0 <= floor <= 1, got lr={lr}, floor={floor}")
        self.lr = lr
        self.floor = floor

    def rate(self, iteration: int, total: int) -> float:
        """The learning rate of ``iteration`` (from 0) of an experience of ``total`` iterations."""
        progress = min(1.0, iteration / max(1, total))
        return self.lr * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress)))

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        total = strategy.train_epochs * len(strategy.dataloader)
        lr = self.rate(strategy.clock.train_exp_iterations, total)
        for group in strategy.optimizer.param_groups:
            group["lr"] = lr


class FreezeDecoder(SupervisedPlugin):
    """Trains the decoder on the first experience only (``TrainConfig.freeze_decoder``).

    From the second experience on, the decoder's parameters (``from_latent`` and ``decoder``)
    stop requiring gradients, so the optimizer leaves them at their Task-0 weights and only the
    encoder and the auxiliary head learn the new domain: every later task is learnt as "encode
    this look into the latent code of its canonical image", and the canonical reconstructions
    an agent was trained through (``benchmark.rl train --mapping``) stay the ones it saw. The
    paper trains the whole VAE on every task; this is the fixed-decoder variant of the same
    mapping (a shared canonical decoder as in RCAN's generator target, James et al. 2019).

    The flags are set again before every training experience from its index, so a resumed or
    extended run freezes exactly as an uninterrupted one does.
    """

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        train = strategy.experience.current_experience == 0
        for module in (strategy.model.from_latent, strategy.model.decoder):
            module.requires_grad_(train)
