"""Eq. 1 and the KL ramp."""

from __future__ import annotations

import pytest
import torch

from benchmark.mapping.loss import LossConfig, VAELoss, kl_weight, vae_loss
from benchmark.mapping.vae import VAEOutput


def test_eq1_terms_by_hand():
    recon = torch.full((2, 3, 2, 2), 0.5)
    target = torch.zeros(2, 3, 2, 2)
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.zeros(2, 2)
    aux_pred, aux = torch.zeros(2, 5), torch.ones(2, 5)
    out = VAEOutput(recon, mu, logvar, aux_pred)
    terms = vae_loss(out, target, aux, LossConfig(alpha=2.0, beta=3.0, gamma=1.0), gamma=0.5)
    # per image: 12 pixels * 0.25 = 3; aux: 5 * 1 = 5; KL: 0.5 * mu^2 summed = 0.5 for image 0, 0 for image 1
    assert terms.recon.item() == pytest.approx(3.0)
    assert terms.aux.item() == pytest.approx(5.0)
    assert terms.kl.item() == pytest.approx(0.25)
    assert terms.total.item() == pytest.approx(2 * 3.0 + 3 * 5.0 + 0.5 * 0.25)


def test_kl_ramp():
    cfg = LossConfig(gamma=2.0, kl_anneal_iterations=100)
    assert kl_weight(cfg, 0) == 0.0
    assert kl_weight(cfg, 50) == pytest.approx(1.0)
    assert kl_weight(cfg, 100) == kl_weight(cfg, 1000) == 2.0
    assert kl_weight(LossConfig(gamma=2.0, kl_anneal_iterations=0), 0) == 2.0


class _FakeStrategy:
    def __init__(self, aux, target):
        self.mbatch = [None, target, aux, None]

    @property
    def mb_y(self):
        return self.mbatch[1]


def test_criterion_reads_aux_from_the_minibatch_and_counts_iterations():
    crit = VAELoss(LossConfig(kl_anneal_iterations=10))
    with pytest.raises(RuntimeError, match="criterion of an Avalanche strategy"):
        crit(VAEOutput(*[torch.zeros(1)] * 4), torch.zeros(1))
    aux, target = torch.ones(2, 5), torch.zeros(2, 3, 4, 4)
    strategy = _FakeStrategy(aux, target)
    crit.before_training(strategy)
    out = VAEOutput(torch.zeros(2, 3, 4, 4), torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 5))
    loss = crit(out, target)
    assert crit.last.aux.item() == pytest.approx(5.0) and loss.item() == pytest.approx(crit.config.beta * 5.0)
    # called by a plugin on another batch (EWC's importances): no auxiliary term, `last` untouched
    other = crit(out, torch.zeros(2, 3, 4, 4))
    assert other.item() == pytest.approx(0.0) and crit.last.aux.item() == pytest.approx(5.0)
    for _ in range(5):
        crit.after_training_iteration(strategy)
    assert crit.gamma == pytest.approx(0.5 * crit.config.gamma)
    state = crit.state_dict()
    fresh = VAELoss(crit.config)
    fresh.load_state_dict(state)
    assert fresh.gamma == crit.gamma
