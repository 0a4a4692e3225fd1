"""Distillation of a VAE's outputs: how far the current model's outputs are from reference ones.

DER (:mod:`strategies.der`) distils outputs stored with its buffer, LwF (:mod:`strategies.lwf`)
the previous model's outputs on the current inputs. Both compare the deterministic
reconstruction ``decode(mu)``, ``mu`` and ``logvar`` with a squared error summed per sample and
averaged over the batch, the reduction of Eq. 1 (a per-element mean would be ~10^4 times
smaller than the task loss).
"""

from __future__ import annotations

import torch

from benchmark.mapping.vae import ConvVAE


def distillation(model: ConvVAE, stored: dict[str, torch.Tensor]) -> torch.Tensor:
    """Squared error of the current deterministic outputs on buffered inputs vs. the stored outputs."""
    mu, logvar = model.encode(stored["inputs"])
    return output_distance(model.decode(mu), mu, logvar, stored)


def output_distance(
    recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, reference: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Squared error of the outputs ``decode(mu)``, ``mu``, ``logvar`` vs. ``reference``'s (per-sample sum, mean)."""
    error = (recon - reference["recon"]).pow(2).sum() + (mu - reference["mu"]).pow(2).sum()
    return (error + (logvar - reference["logvar"]).pow(2).sum()) / recon.shape[0]
