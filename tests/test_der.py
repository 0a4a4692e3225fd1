"""The DER buffer and plugin."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.mapping.vae import ConvVAE, VAEConfig
from strategies.der import DERBuffer, distillation


def _batch(n, model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g).float() / 255
    with torch.no_grad():
        mu, logvar = model.encode(x)
        recon = model.decode(mu)
    return {
        "inputs": x,
        "targets": x.flip(-1),
        "aux": torch.rand(n, 5, generator=g),
        "masks": torch.randint(0, 3, (n, 32, 32), generator=g, dtype=torch.uint8),
        "recon": recon,
        "mu": mu,
        "logvar": logvar,
    }


def test_buffer_stores_outputs_at_insertion_time():
    model = ConvVAE(VAEConfig(resolution=32, latent_size=4))
    batch = _batch(8, model)
    buffer = DERBuffer(16, seed=0)
    buffer.add(**batch)
    assert len(buffer) == 8
    assert torch.equal(buffer.data["recon"][:8], batch["recon"])
    assert torch.equal(buffer.data["inputs"][:8].float() / 255, batch["inputs"])  # uint8 storage is exact
    assert torch.equal(buffer.data["masks"][:8], batch["masks"])
    # Changing the model afterwards does not change what was stored.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    assert torch.equal(buffer.data["recon"][:8], batch["recon"])


def test_distillation_is_zero_for_an_unchanged_model_and_positive_after_a_change():
    model = ConvVAE(VAEConfig(resolution=32, latent_size=4))
    buffer = DERBuffer(32, seed=0)
    buffer.add(**_batch(20, model))
    stored = buffer.sample(10)
    assert distillation(model, stored).item() < 1e-8
    with torch.no_grad():
        model.to_mu.bias.add_(0.5)
    assert distillation(model, stored).item() > 1e-3


def test_reservoir_keeps_a_uniform_sample():
    """Every one of 200 stream items is kept with probability size/200 = 0.25."""
    counts = np.zeros(200)
    trials = 300
    for seed in range(trials):
        buffer = DERBuffer(50, seed=seed)
        for start in range(0, 200, 20):
            ids = torch.arange(start, start + 20).float()
            buffer.add(
                inputs=torch.zeros(20, 1, 1, 1), targets=torch.zeros(20, 1, 1, 1), aux=ids[:, None],
                masks=torch.zeros(20, 1, 1),
                recon=torch.zeros(20, 1), mu=torch.zeros(20, 1), logvar=torch.zeros(20, 1),
            )  # fmt: skip
        assert len(buffer) == 50 and buffer.seen == 200
        kept = buffer.data["aux"][:, 0].long()
        assert len(set(kept.tolist())) == 50
        counts[kept.numpy()] += 1
    rate = counts / trials
    # Binomial std of one item's rate: sqrt(0.25*0.75/300) = 0.025; allow 4.5 sigma per item.
    assert abs(rate.mean() - 0.25) < 1e-9
    assert np.all(np.abs(rate - 0.25) < 0.115)
    # early and late items are kept equally often (no recency bias)
    assert abs(rate[:100].mean() - rate[100:].mean()) < 0.02


def test_buffer_state_round_trip():
    model = ConvVAE(VAEConfig(resolution=32, latent_size=4))
    buffer = DERBuffer(8, seed=3)
    buffer.add(**_batch(12, model))
    copy = DERBuffer(8, seed=99)
    copy.load_state_dict(buffer.state_dict())
    assert copy.seen == 12 and torch.equal(copy.sample(4)["recon"], buffer.sample(4)["recon"])
