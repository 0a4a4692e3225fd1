"""Dark Experience Replay for the VAE, as an Avalanche plugin (Buzzega et al., NeurIPS 2020).

Avalanche's ``DER`` strategy is classification-only (it stores logits and class labels), so
this is our own plugin following mammoth's ``models/der.py`` and ``models/derpp.py``:

- a reservoir buffer over every training sample seen, storing the input, the canonical target,
  the auxiliary vector, the target's segmentation mask and the model's outputs *at insertion time*: the deterministic
  reconstruction ``decode(mu)``, ``mu`` and ``logvar``;
- in ``before_backward`` (Avalanche has already added Eq. 1 of the current minibatch to
  ``strategy.loss``) it adds ``der_alpha * distill`` on one buffer sample, where ``distill``
  is the squared error between the current outputs on the buffered inputs and the stored ones;
- with ``der_beta > 0`` (DER++) it adds ``der_beta * Eq.1`` on a second, independent sample.

Deviations from mammoth, and why: the outputs are images and Gaussian parameters rather than
logits, so the distillation sums the squared error over pixels and latent dimensions and
averages over the batch, the same reduction as Eq. 1 (a per-element mean would be ~10^4 times
smaller than the task loss). Images are stored as uint8 (exact for our 8-bit data). The
buffer draws from its own seeded generator. Because continual strategies share one Task-0
model, the buffer is first filled from Task 0 with that model's outputs (``catch_up``).
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.templates import SupervisedTemplate

from benchmark.mapping.loss import VAELoss, vae_loss
from strategies.distill import distillation
from strategies.passes import experience_batches, to_uint8
from strategies.registry import StrategyContext, register_strategy


class DERBuffer:
    """Reservoir sampling over a stream of samples (Vitter's algorithm R), with a seeded generator."""

    def __init__(self, size: int, seed: int) -> None:
        if size < 1:
            raise ValueError(f"buffer size must be positive, got {size}")
        self.size = size
        self.seen = 0
        self.generator = torch.Generator().manual_seed(seed)
        self.data: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return min(self.seen, self.size)

    def _slots(self, count: int) -> list[int]:
        """Buffer slot of each of ``count`` new samples, -1 for those not kept."""
        slots = []
        for _ in range(count):
            if self.seen < self.size:
                slots.append(self.seen)
            else:
                r = int(torch.randint(0, self.seen + 1, (1,), generator=self.generator))
                slots.append(r if r < self.size else -1)
            self.seen += 1
        return slots

    @torch.no_grad()
    def add(self, **batch: torch.Tensor) -> None:
        """Offer a batch: ``inputs``, ``targets`` (float in [0, 1] or uint8) and ``masks``, and any other
        fields (DER: ``aux``, ``recon``, ``mu``, ``logvar``); images and masks as uint8, the rest as float."""
        rows = {
            "inputs": to_uint8(batch["inputs"]),
            "targets": to_uint8(batch["targets"]),
            "masks": batch["masks"].detach().to(torch.uint8),
            **{k: v.detach().float() for k, v in batch.items() if k not in ("inputs", "targets", "masks")},
        }
        if not self.data:
            self.data = {
                k: torch.zeros((self.size, *v.shape[1:]), dtype=v.dtype, device=v.device) for k, v in rows.items()
            }
        slots = torch.tensor(self._slots(len(rows["inputs"])))
        keep = slots >= 0
        if keep.any():
            dest = slots[keep].to(self.data["inputs"].device)
            src = keep.nonzero().squeeze(1).to(rows["inputs"].device)
            for k, v in rows.items():
                self.data[k][dest] = v[src]

    def sample(self, count: int) -> dict[str, torch.Tensor]:
        """``count`` distinct stored samples (fewer if the buffer holds fewer); images as float in [0, 1]."""
        index = torch.randperm(len(self), generator=self.generator)[:count].to(self.data["inputs"].device)
        out = {k: v[index] for k, v in self.data.items()}
        out["inputs"] = out["inputs"].float().div_(255.0)
        out["targets"] = out["targets"].float().div_(255.0)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "seen": self.seen,
            "generator": self.generator.get_state(),
            "data": {k: v.cpu() for k, v in self.data.items()},
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.size, self.seen = int(state["size"]), int(state["seen"])
        self.generator.set_state(state["generator"])
        self.data = {k: v.to(device) for k, v in state["data"].items()}


class DERPlugin(SupervisedPlugin):
    """DER / DER++ regularisers added to ``strategy.loss`` in ``before_backward``."""

    def __init__(
        self, criterion: VAELoss, mem_size: int, batch_size: int, alpha: float, beta: float, seed: int
    ) -> None:
        super().__init__()
        self.criterion = criterion
        self.buffer = DERBuffer(mem_size, seed)
        self.batch_size = batch_size
        self.alpha = alpha
        self.beta = beta
        self.last: dict[str, float] = {}

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        model = strategy.model
        if len(self.buffer):
            stored = self.buffer.sample(self.batch_size)
            distill = distillation(model, stored)
            strategy.loss = strategy.loss + self.alpha * distill
            self.last = {"distill": distill.item()}
            if self.beta > 0:
                second = self.buffer.sample(self.batch_size)
                out = model(second["inputs"])
                terms = vae_loss(
                    out, second["targets"], second["aux"], self.criterion.config, self.criterion.gamma, second["masks"]
                )
                strategy.loss = strategy.loss + self.beta * terms.total
                self.last["replay"] = terms.total.item()
        # Insert the current minibatch with the outputs of the model before this update (as mammoth).
        mu, logvar = strategy.mb_output.mu.detach(), strategy.mb_output.logvar.detach()
        with torch.no_grad():
            recon = model.decode(mu)
        batch = strategy.mbatch
        self.buffer.add(
            inputs=strategy.mb_x, targets=strategy.mb_y, aux=batch[2], masks=batch[3], recon=recon, mu=mu, logvar=logvar
        )

    @torch.no_grad()
    def catch_up(self, strategy: Any, experience: Any) -> None:
        """Fill the buffer from an experience trained without this plugin, with the current model's outputs."""
        model = strategy.model
        was_training = model.training
        model.eval()
        for x, y, aux, masks in experience_batches(experience.dataset, strategy.eval_mb_size, strategy.device):
            mu, logvar = model.encode(x)
            self.buffer.add(inputs=x, targets=y, aux=aux, masks=masks, recon=model.decode(mu), mu=mu, logvar=logvar)
        model.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        return self.buffer.state_dict()

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.buffer.load_state_dict(state, device)


@register_strategy("der", reads=("mem_size", "der_alpha", "der_beta"))
def der(ctx: StrategyContext) -> SupervisedTemplate:
    """Dark experience replay (DER++ with der_beta > 0): distil stored outputs, replay stored samples."""
    cfg = ctx.config
    plugin = DERPlugin(ctx.criterion, cfg.mem_size, cfg.batch_size, cfg.der_alpha, cfg.der_beta, ctx.seed)
    return Naive(**ctx.template_kwargs(plugin))
