"""Extra passes over an experience that regularisers and memories make, with our batches and Eq. 1.

Avalanche's EWC, MAS and A-GEM plugins compute their importances or reference gradients as
``criterion(model(x), y)`` on batches of ``(x, y, task)``. Our batches are ``(input, canonical
target, auxiliary vector, mask, ..., task)`` and our criterion needs the auxiliary vector and
the mask of the same batch (:class:`benchmark.mapping.loss.VAELoss` can only read them from the
strategy's current minibatch), so called on a batch of its own it would leave the auxiliary
term out. The functions here give those passes the whole Eq. 1 of Xie et al. (auxiliary term
and foreground weights included) on any batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from benchmark.mapping.loss import VAELoss, vae_loss
from benchmark.mapping.task_metrics import to_float_images
from benchmark.mapping.vae import ConvVAE

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""``(inputs, targets, aux, masks)`` on the device, images as float in [0, 1]."""


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images as uint8 for a memory (exact for our 8-bit data): as they are if uint8, else float in [0, 1] scaled."""
    if images.dtype == torch.uint8:
        return images.detach().clone()
    return images.detach().mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def experience_batches(dataset: Any, batch_size: int, device: torch.device | str) -> Iterator[Batch]:
    """The samples of ``dataset`` (an experience's, or a memory's) in order, as :data:`Batch` es."""
    dataset = dataset.eval()  # no training transforms
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=dataset.collate_fn)
    for batch in loader:
        x, y, aux, masks = (t.to(device) for t in batch[:4])
        yield to_float_images(x), to_float_images(y), aux, masks


def eq1(criterion: VAELoss, model: ConvVAE, batch: Batch) -> torch.Tensor:
    """Eq. 1 of ``model`` on ``batch`` with ``criterion``'s weights and current KL weight."""
    x, y, aux, masks = batch
    return vae_loss(model(x), y, aux, criterion.config, criterion.gamma, masks).total
