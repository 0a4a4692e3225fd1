"""The baselines: single-task models, naive fine-tuning and joint training."""

from __future__ import annotations

from avalanche.training import JointTraining, Naive
from avalanche.training.templates import SupervisedTemplate

from strategies.registry import StrategyContext, register_strategy


@register_strategy("single", schedule="single", reads=())
def single(ctx: StrategyContext) -> SupervisedTemplate:
    """A separate VAE per task, trained on that task only (the upper bound per task)."""
    return Naive(**ctx.template_kwargs())


@register_strategy("finetune", reads=())
def finetune(ctx: StrategyContext) -> SupervisedTemplate:
    """Naive fine-tuning: train on each task in turn with nothing against forgetting."""
    return Naive(**ctx.template_kwargs())


@register_strategy("joint", schedule="joint", reads=())
def joint(ctx: StrategyContext) -> SupervisedTemplate:
    """Avalanche's joint training on the joint dataset (a third of each task)."""
    return JointTraining(**ctx.template_kwargs())
