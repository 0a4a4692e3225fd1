"""Averaged gradient episodic memory (Chaudhry et al., ICLR 2019) on Avalanche's ``AGEMPlugin``.

A-GEM keeps ``agem_patterns`` samples of every finished experience; before each step it takes
the gradient of the loss on ``agem_sample_size`` of them (balanced over experiences) as a
reference, and where the current gradient points against it (negative dot product) projects
the current gradient onto the reference's normal plane. Replaced, and why:

- the projection (``after_backward``) is Avalanche's but for flattening each gradient with
  ``reshape``: Avalanche's ``view`` fails on our ``channels_last`` convolution weights;

- the reference gradient: Avalanche computes ``criterion(model(x), y)`` on its memory batch,
  where our criterion cannot see the batch's auxiliary vector and mask; here it is the whole
  Eq. 1 (:mod:`strategies.passes`), every field of our samples being kept in the memory;
- the memory: Avalanche picks the kept samples with Python's global ``random`` and draws
  memory batches from a loader seeded by torch's global generator, so a resumed run would
  draw other samples; here both come from generators seeded by the run's seed and the
  experience, and the memory and the sampler's state are checkpointed, so ``--resume`` is exact.

``agem_patterns`` 250: ContinualAI's continual-learning-baselines, ``experiments/permuted_mnist/agem.py``.
``agem_sample_size`` 32, the minibatch size, as mammoth's ``best_args`` for seq-cifar10: the
baselines' (and the A-GEM authors') 256 makes every step's reference gradient eight times the
minibatch's work here (a step about nine times finetune's; on quick, Task 1 had not finished
its first epoch after ten minutes on this 2-core CPU, beside two other trainings).
The shared Task-0 model was trained without the plugin: ``catch_up`` stores Task 0's samples.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training import Naive
from avalanche.training.plugins import AGEMPlugin
from avalanche.training.templates import SupervisedTemplate

from benchmark.mapping.loss import VAELoss
from benchmark.mapping.task_metrics import to_float_images
from strategies.passes import Batch, eq1, experience_batches, to_uint8
from strategies.registry import StrategyContext, register_strategy

FIELDS = ("inputs", "targets", "aux", "masks")


def flat_gradient(model: torch.nn.Module) -> torch.Tensor:
    """Every parameter's gradient (zeros where none) as one vector, in ``model.parameters()`` order."""
    return torch.cat(
        [
            p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=p.device)
            for p in model.parameters()
        ]
    )


class AGEM(AGEMPlugin):
    """Avalanche's A-GEM projection with the whole Eq. 1 as reference loss and a seeded, checkpointed memory."""

    def __init__(self, criterion: VAELoss, patterns_per_experience: int, sample_size: int, seed: int) -> None:
        super().__init__(patterns_per_experience, sample_size)
        self.criterion = criterion
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.buffers: list[dict[str, torch.Tensor]] = []  # type: ignore[assignment]

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        """The reference gradient of Eq. 1 on a memory sample (Avalanche's, with our loss)."""
        if not self.buffers:
            return
        strategy.model.train()
        strategy.optimizer.zero_grad()
        eq1(self.criterion, strategy.model, self.sample_from_memory(strategy.device)).backward()
        self.reference_gradients = flat_gradient(strategy.model)
        strategy.optimizer.zero_grad()

    @torch.no_grad()
    def after_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Avalanche's projection on gradients flattened by ``reshape`` (``channels_last`` weights cannot ``view``)."""
        if not self.buffers:
            return
        current = flat_gradient(strategy.model)
        dot = torch.dot(current, self.reference_gradients)
        if dot < 0:
            projected = current - self.reference_gradients * (
                dot / torch.dot(self.reference_gradients, self.reference_gradients)
            )
            start = 0
            for p in strategy.model.parameters():
                if p.grad is not None:
                    p.grad.copy_(projected[start : start + p.numel()].view(p.shape))
                start += p.numel()

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.update_memory(strategy.experience, device=strategy.device)

    def catch_up(self, strategy: Any, experience: Any) -> None:
        """Keep samples of an experience trained without the plugin (the shared Task 0)."""
        self.update_memory(experience, device=strategy.device)

    @torch.no_grad()
    def update_memory(self, experience: Any, num_workers: int = 0, device: Any = "cpu", **kwargs: Any) -> None:  # type: ignore[override]
        """Keep ``patterns_per_experience`` samples of ``experience``, drawn by a generator seeded by it and the run."""
        dataset = experience.dataset
        chooser = torch.Generator().manual_seed(self.seed * 1000 + int(experience.current_experience))
        keep = torch.randperm(len(dataset), generator=chooser)[: self.patterns_per_experience].sort().values
        subset = dataset.subset(keep.tolist())
        inputs, targets, aux, masks = (torch.cat(p) for p in zip(*experience_batches(subset, 256, device), strict=True))
        self.buffers.append({"inputs": to_uint8(inputs), "targets": to_uint8(targets), "aux": aux, "masks": masks})

    def sample_from_memory(self, device: Any = "cpu") -> Batch:  # type: ignore[override]
        """``sample_size`` memory samples, an equal share from each experience's memory."""
        share = max(1, self.sample_size // len(self.buffers))
        picks = []
        for buffer in self.buffers:
            index = torch.randperm(len(buffer["inputs"]), generator=self.generator)[:share]
            picks.append({k: v[index.to(v.device)] for k, v in buffer.items()})
        x, y, aux, masks = (torch.cat([p[k] for p in picks]).to(device) for k in FIELDS)
        return to_float_images(x), to_float_images(y), aux, masks

    def state_dict(self) -> dict[str, Any]:
        return {
            "buffers": [{k: v.cpu() for k, v in b.items()} for b in self.buffers],
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.buffers = [dict(b) for b in state["buffers"]]
        self.generator.set_state(state["generator"])


@register_strategy("agem", reads=("agem_patterns", "agem_sample_size"))
def agem(ctx: StrategyContext) -> SupervisedTemplate:
    """A-GEM: project each gradient so that the loss on a memory of earlier experiences does not rise."""
    cfg = ctx.config
    return Naive(**ctx.template_kwargs(AGEM(ctx.criterion, cfg.agem_patterns, cfg.agem_sample_size, ctx.seed)))
