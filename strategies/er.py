"""Experience replay with Avalanche's ``ReplayPlugin`` and an experience-balanced reservoir buffer.

Avalanche's storage policies draw their reservoir weights from torch's global generator; the
subclasses here draw them from a generator seeded by ``(seed, experience)``, so the buffer is
a pure function of the data and the seed. That keeps ``--resume`` exact (the buffer is rebuilt
by replaying the finished experiences) and lets the shared Task-0 model be followed by ER with
Task 0 in the buffer (``catch_up``). Each training minibatch is ``batch_size`` current samples
plus ``batch_size`` buffer samples, as in Avalanche's default and mammoth's ER.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.training import Naive
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import ExperienceBalancedBuffer, ReservoirSamplingBuffer
from avalanche.training.templates import SupervisedTemplate

from strategies.registry import StrategyContext, register_strategy


class SeededReservoirBuffer(ReservoirSamplingBuffer):
    """Avalanche's reservoir buffer with an explicit, seeded generator."""

    def __init__(self, max_size: int, seed: int) -> None:
        super().__init__(max_size)
        self.generator = torch.Generator().manual_seed(seed)

    def update_from_dataset(self, new_data: AvalancheDataset) -> None:
        new_weights = torch.rand(len(new_data), generator=self.generator)
        cat_weights = torch.cat([new_weights, self._buffer_weights])  # type: ignore[has-type]
        cat_data = new_data.concat(self.buffer)  # type: ignore[has-type]
        sorted_weights, sorted_idxs = cat_weights.sort(descending=True)
        self.buffer = cat_data.subset(sorted_idxs[: self.max_size])
        self._buffer_weights = sorted_weights[: self.max_size]


class SeededExperienceBalancedBuffer(ExperienceBalancedBuffer):
    """Avalanche's experience-balanced buffer whose per-experience reservoirs are seeded."""

    def __init__(self, max_size: int, seed: int) -> None:
        super().__init__(max_size, adaptive_size=True)
        self.seed = seed

    def post_adapt(self, agent: Any, exp: Any) -> None:
        self._num_exps += 1
        lens = self.get_group_lengths(self._num_exps)
        group = SeededReservoirBuffer(lens[-1], seed=self.seed * 1000 + int(exp.current_experience))
        group.update_from_dataset(exp.dataset)
        self.buffer_groups[self._num_exps - 1] = group
        for length, buffer in zip(lens, self.buffer_groups.values(), strict=True):
            buffer.resize(agent, length)


class SeededReplay(ReplayPlugin):
    """``ReplayPlugin`` over a seeded experience-balanced buffer, able to catch up on skipped experiences."""

    def __init__(self, mem_size: int, batch_size: int, seed: int) -> None:
        super().__init__(
            mem_size=mem_size,
            batch_size=batch_size,
            batch_size_mem=batch_size,
            storage_policy=SeededExperienceBalancedBuffer(mem_size, seed),
        )

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        # Same as ReplayPlugin's, without its deprecated ``update`` call (which warns every time).
        self.storage_policy.post_adapt(strategy, strategy.experience)

    def catch_up(self, strategy: Any, experience: Any) -> None:
        """Add an experience trained without this plugin (the shared Task 0) to the buffer."""
        self.storage_policy.post_adapt(strategy, experience)


@register_strategy("er", reads=("mem_size",))
def er(ctx: StrategyContext) -> SupervisedTemplate:
    """Experience replay: each minibatch adds as many samples from an experience-balanced buffer."""
    cfg = ctx.config
    return Naive(**ctx.template_kwargs(SeededReplay(cfg.mem_size, cfg.batch_size, ctx.seed)))
