"""Supervised warm start of the agent's CNN for ``method="ppo"``: regress the scene state from canonical images.

PPO from pixels spends most of its early steps learning to *see* where the target and the
arm's end are. The data generator already gives labelled canonical images (the auxiliary
vector: target position and the two joint angles), so before PPO starts, the policy's
features extractor is trained for a few epochs to predict that vector, standardised, with a
linear head that is then thrown away. PPO then trains everything end to end as usual. This is
the auxiliary-task idea of Jaderberg et al. (2017, UNREAL) used as pre-training. It reaches a
standardised state MSE of about 0.07-0.09; it did not make PPO learn measurably faster here
(4-8% success at 30k steps either way). The default agent is trained by imitation instead
(:mod:`benchmark.rl.imitation`; the README's agent section says why).
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.data.generate import generate
from benchmark.data.spec import DataSpec
from benchmark.rl.config import AgentConfig

log = logging.getLogger("ciim.rl")
PRETRAIN_SEED_OFFSET = 7919
"""Added to the agent's seed for the pre-training scenes (apart from any benchmark data)."""


def pretrain_encoder(
    extractor: nn.Module, cfg: AgentConfig, device: torch.device, progress: bool = True
) -> list[float]:
    """Fit ``extractor`` (plus a linear head) to the scene state of ``cfg.pretrain_images`` canonical
    renders for ``cfg.pretrain_epochs`` epochs; returns the mean standardised MSE of each epoch."""
    spec = DataSpec(
        scene=cfg.env.scene, tasks=("canonical",), n_train=cfg.pretrain_images, n_test=1,
        seed=cfg.seed + PRETRAIN_SEED_OFFSET,
    )  # fmt: skip
    data, _ = generate(spec, progress=progress)
    images = torch.from_numpy(data.train_targets[0]).permute(0, 3, 1, 2).contiguous()
    aux = torch.from_numpy(data.train_aux[0])
    target = (aux - aux.mean(0)) / aux.std(0).clamp_min(1e-6)
    head = nn.Linear(cfg.features_dim, target.shape[1]).to(device)
    optimizer = torch.optim.Adam([*extractor.parameters(), *head.parameters()], lr=cfg.pretrain_lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    losses = []
    extractor.train()
    for _ in tqdm(range(cfg.pretrain_epochs), desc="pretrain cnn", unit="epoch", disable=not progress):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            x = images[idx].to(device).float() / 255
            loss = nn.functional.mse_loss(head(extractor(x)), target[idx].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(images))
    log.info("rl: pre-trained the CNN on %d canonical images, state MSE %.3f (standardised)", len(images), losses[-1])
    return losses
