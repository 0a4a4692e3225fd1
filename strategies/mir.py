"""Maximally interfered retrieval (Aljundi et al., NeurIPS 2019) for the VAE, as an Avalanche plugin.

MIR replays the stored samples that the coming update would hurt most: on each minibatch it
takes a virtual SGD step on the current loss, scores ``mir_subsample`` random buffer samples
by how much their loss rises under that step, and adds Eq. 1 on the ``batch_size`` highest.

Avalanche's ``MIRPlugin`` cannot run on our stream: its buffer is class-balanced on
``mb_y`` (our targets are images), it unpacks three-field batches (ours have five), and it
scores samples by switching the criterion to ``reduction="none"``, which Eq. 1 has no notion
of. So this plugin, written like DER's, keeps DER's seeded reservoir over every training
sample (:class:`strategies.der.DERBuffer`), scores with Eq. 1 per sample
(:func:`benchmark.mapping.loss.vae_loss_per_sample`) in eval mode (``z = mu``, so the two
scores of a sample differ only by the virtual step), and takes the virtual step as
Avalanche's and the authors' code do (``theta - lr * grad``, with the optimizer's rate).

Sizes: the buffer is ``mem_size`` (1000, as ER and DER); ``batch_size`` retrieved samples (as
ER replays); ``mir_subsample`` 160, five times that, the ratio of ContinualAI's
continual-learning-baselines ``experiments/split_mnist/mir.py`` (50 candidates for 10). The
shared Task-0 model was trained without the plugin: ``catch_up`` fills the buffer from Task 0.
The buffer is checkpointed for ``--resume``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.templates import SupervisedTemplate

from benchmark.mapping.loss import VAELoss, vae_loss_per_sample
from benchmark.mapping.vae import ConvVAE
from strategies.der import DERBuffer
from strategies.passes import eq1, experience_batches
from strategies.registry import StrategyContext, register_strategy


def virtual_step(model: ConvVAE, grads: tuple[torch.Tensor | None, ...], lr: float) -> ConvVAE:
    """A copy of ``model`` after one plain SGD step ``theta - lr * grad``, ``grads`` given for the
    parameters that require gradients (the others, e.g. a frozen decoder, stay)."""
    stepped = copy.deepcopy(model)
    with torch.no_grad():
        trained = [p for p in stepped.parameters() if p.requires_grad]
        for p, g in zip(trained, grads, strict=True):
            if g is not None:
                p.sub_(lr * g)
    return stepped


class MIRPlugin(SupervisedPlugin):
    """Adds Eq. 1 on the buffer samples whose loss the coming update raises most."""

    def __init__(self, criterion: VAELoss, mem_size: int, batch_size: int, subsample: int, seed: int) -> None:
        super().__init__()
        self.criterion = criterion
        self.buffer = DERBuffer(mem_size, seed)
        self.batch_size = batch_size
        self.subsample = subsample
        self.last: dict[str, float] = {}

    @torch.no_grad()
    def interference(self, model: ConvVAE, stepped: ConvVAE, stored: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per stored sample, its Eq. 1 under ``stepped`` minus under ``model`` (both deterministic)."""
        cfg, gamma = self.criterion.config, self.criterion.gamma
        args = (stored["targets"], stored["aux"], cfg, gamma, stored["masks"])
        was_training = model.training
        model.eval()
        stepped.eval()
        before = vae_loss_per_sample(model(stored["inputs"]), *args)
        after = vae_loss_per_sample(stepped(stored["inputs"]), *args)
        model.train(was_training)
        return after - before

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        model = strategy.model
        if len(self.buffer):
            params = [p for p in model.parameters() if p.requires_grad]
            grads = torch.autograd.grad(strategy.loss, params, retain_graph=True, allow_unused=True)
            stepped = virtual_step(model, grads, strategy.optimizer.param_groups[0]["lr"])
            candidates = self.buffer.sample(self.subsample)
            chosen = self.interference(model, stepped, candidates).argsort(descending=True)[: self.batch_size]
            picked = {k: v[chosen] for k, v in candidates.items()}
            replay = eq1(self.criterion, model, (picked["inputs"], picked["targets"], picked["aux"], picked["masks"]))
            strategy.loss = strategy.loss + replay
            self.last = {"replay": replay.item()}
        batch = strategy.mbatch
        self.buffer.add(inputs=strategy.mb_x, targets=strategy.mb_y, aux=batch[2], masks=batch[3])

    @torch.no_grad()
    def catch_up(self, strategy: Any, experience: Any) -> None:
        """Fill the buffer from an experience trained without this plugin (the shared Task 0)."""
        for x, y, aux, masks in experience_batches(experience.dataset, strategy.eval_mb_size, strategy.device):
            self.buffer.add(inputs=x, targets=y, aux=aux, masks=masks)

    def state_dict(self) -> dict[str, Any]:
        return self.buffer.state_dict()

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.buffer.load_state_dict(state, device)


@register_strategy("mir", reads=("mem_size", "mir_subsample"))
def mir(ctx: StrategyContext) -> SupervisedTemplate:
    """Maximally interfered retrieval: replay the stored samples the coming update would hurt most."""
    cfg = ctx.config
    plugin = MIRPlugin(ctx.criterion, cfg.mem_size, cfg.batch_size, cfg.mir_subsample, ctx.seed)
    return Naive(**ctx.template_kwargs(plugin))
