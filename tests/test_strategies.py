"""Every registered strategy's plugins, and the behaviour of each regulariser on the smoke data."""

from __future__ import annotations

import copy
import inspect
from types import SimpleNamespace

import pytest
import torch
from avalanche.core import SupervisedPlugin

from benchmark.continual.config import RunConfig
from benchmark.continual.session import Session
from benchmark.data.stream import build_benchmark
from benchmark.mapping.loss import LossConfig, VAELoss
from benchmark.mapping.vae import ConvVAE, VAEConfig
from benchmark.presets import get_preset
from strategies import available_strategies, get_strategy
from strategies.agem import AGEM, flat_gradient
from strategies.ewc import EWC
from strategies.lwf import LwFPlugin
from strategies.mas import MAS
from strategies.passes import eq1, experience_batches
from strategies.si import SI

HOOK_PREFIXES = ("before_", "after_")


@pytest.mark.parametrize("name", available_strategies())
def test_every_plugin_hook_is_an_avalanche_hook(name, smoke_spec, tmp_path):
    """A misspelled hook (``after_training_experience``) never fires: every hook-like method must be Avalanche's."""
    preset = get_preset("smoke")
    cfg = RunConfig(name, "smoke", 0, "cpu", smoke_spec, preset.train_config())
    session = Session(get_strategy(name), cfg, torch.device("cpu"), tmp_path / "logs", progress=False)
    try:
        for plugin in session.strategy.plugins:
            own = [
                m
                for m, _ in inspect.getmembers(type(plugin), inspect.isfunction)
                if m.startswith(HOOK_PREFIXES) and m in vars(type(plugin))
            ]
            for method in own:
                assert hasattr(SupervisedPlugin, method), f"{name}: {type(plugin).__name__}.{method} is no hook"
    finally:
        session.close()


@pytest.fixture(scope="module")
def task0(smoke_data):
    return build_benchmark(smoke_data).train_stream[0]


def _strategy(model, counter=1):
    """The attributes of an Avalanche strategy that the plugins read."""
    return SimpleNamespace(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        device=torch.device("cpu"),
        train_mb_size=16,
        clock=SimpleNamespace(train_exp_counter=counter),
        loss=torch.ones(()),  # Avalanche's MAS refuses a zero loss
    )


def _model(seed=0):
    torch.manual_seed(seed)
    return ConvVAE(VAEConfig(resolution=64))


def _nudge(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))


@pytest.mark.parametrize("make", [lambda c: EWC(c, 1.0), lambda c: MAS(1.0, 0.5)], ids=["ewc", "mas"])
def test_regularisers_penalty_is_zero_at_the_anchor_and_positive_after_a_change(make, task0):
    criterion = VAELoss(LossConfig(arm_weight=19.0, target_weight=99.0))
    plugin = make(criterion)
    strategy = _strategy(_model())
    plugin.catch_up(strategy, task0)
    assert float(_penalty(plugin, strategy)) == 0.0
    _nudge(strategy.model)
    assert float(_penalty(plugin, strategy)) > 0.0
    # the state survives a checkpoint
    other = make(criterion)
    other.load_state_dict(copy.deepcopy(plugin.state_dict()))
    assert float(_penalty(other, strategy)) == pytest.approx(float(_penalty(plugin, strategy)))


def _penalty(plugin, strategy):
    """What the plugin adds to a loss of 1."""
    strategy.loss = torch.ones(())
    plugin.before_backward(strategy)
    return strategy.loss - 1.0


def test_si_importance_comes_from_the_training_path(task0):
    criterion = VAELoss(LossConfig())
    plugin = SI(1.0, eps=0.1)
    model = _model()
    strategy = _strategy(model, counter=0)
    strategy.optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    plugin.before_training_exp(strategy)
    for _, batch in zip(range(3), experience_batches(task0.dataset, 16, "cpu"), strict=False):
        plugin.before_training_iteration(strategy)
        strategy.optimizer.zero_grad()
        strategy.mbatch = batch
        eq1(criterion, model, batch).backward()
        strategy.optimizer.step()
        plugin.after_training_iteration(strategy)
    plugin.after_training_exp(strategy)
    assert sum(float(p.data.abs().sum()) for p in plugin.ewc_data[1].values()) > 0
    strategy.clock.train_exp_counter = 1
    assert float(_penalty(plugin, strategy)) == 0.0  # the anchor is the end of the experience
    _nudge(model)
    assert float(_penalty(plugin, strategy)) > 0.0
    other = SI(1.0, eps=0.1)
    other.load_state_dict(copy.deepcopy(plugin.state_dict()))
    assert float(_penalty(other, strategy)) == pytest.approx(float(_penalty(plugin, strategy)))


def test_ewc_importance_sees_the_auxiliary_term(task0):
    """With the whole Eq. 1 the auxiliary head is important; with beta = 0 (a reduced loss) it would not be."""
    model = _model()
    importances = {}
    for beta in (10.0, 0.0):
        plugin = EWC(VAELoss(LossConfig(beta=beta)), 1.0)
        plugin.catch_up(_strategy(model), task0)
        importances[beta] = plugin.importances[0]
    head = [k for k in importances[10.0] if k.startswith("aux_head")]
    assert head and all(float(importances[10.0][k].data.abs().sum()) > 0 for k in head)
    assert all(float(importances[0.0][k].data.abs().sum()) == 0 for k in head)


def test_lwf_distillation_is_zero_for_an_unchanged_model(task0, smoke_data):
    model = _model()
    plugin = LwFPlugin(1.0)
    plugin.catch_up(_strategy(model), task0)
    x = torch.as_tensor(smoke_data.train_inputs[1][:8]).float().div(255.0).permute(0, 3, 1, 2)
    mu, logvar = model.encode(x)
    assert float(plugin.distillation(model, x, mu, logvar)) == 0.0
    _nudge(model)
    mu, logvar = model.encode(x)
    assert float(plugin.distillation(model, x, mu, logvar)) > 0.0
    # the previous model is a frozen copy, not the model itself
    assert all(not p.requires_grad for p in plugin.previous.parameters())


def test_agem_memory_carries_every_field_and_the_projection_removes_the_conflict(task0, smoke_data):
    criterion = VAELoss(LossConfig())
    plugin = AGEM(criterion, patterns_per_experience=10, sample_size=8, seed=0)
    model = _model()
    strategy = _strategy(model)
    plugin.catch_up(strategy, task0)
    (buffer,) = plugin.buffers
    assert len(buffer["inputs"]) == 10 and buffer["inputs"].dtype == torch.uint8
    # each kept sample is a sample of Task 0 with its own auxiliary vector and mask
    aux = torch.as_tensor(smoke_data.train_aux[0])
    for row, mask in zip(buffer["aux"], buffer["masks"], strict=True):
        (index,) = torch.nonzero((aux == row).all(dim=1)).flatten().tolist()
        assert torch.equal(mask, torch.as_tensor(smoke_data.train_masks[0][index]))
    # the reference gradient is Eq. 1's on the memory; a gradient against it is projected
    plugin.before_training_iteration(strategy)
    reference = plugin.reference_gradients.clone()
    assert reference.abs().sum() > 0
    start = 0
    for p in model.parameters():
        p.grad = -reference[start : start + p.numel()].view(p.shape).clone() + 0.1 * torch.randn(p.shape)
        start += p.numel()
    assert torch.dot(flat_gradient(model), reference) < 0
    plugin.after_backward(strategy)
    assert float(torch.dot(flat_gradient(model), reference)) == pytest.approx(0.0, abs=1e-3 * float(reference.norm()))


def test_mir_scores_interference_with_eq1_per_sample(task0):
    from benchmark.mapping.loss import vae_loss, vae_loss_per_sample
    from strategies.mir import MIRPlugin, virtual_step

    criterion = VAELoss(LossConfig(arm_weight=19.0, target_weight=99.0))
    plugin = MIRPlugin(criterion, mem_size=20, batch_size=4, subsample=8, seed=0)
    model = _model()
    plugin.catch_up(SimpleNamespace(eval_mb_size=16, device="cpu"), task0)
    assert len(plugin.buffer) == 20
    stored = plugin.buffer.sample(8)
    # the per-sample Eq. 1 averages to the batch's
    model.eval()
    out = model(stored["inputs"])
    args = (stored["targets"], stored["aux"], criterion.config, criterion.gamma, stored["masks"])
    per_sample = vae_loss_per_sample(out, *args)
    assert float(per_sample.mean()) == pytest.approx(float(vae_loss(out, *args).total), rel=1e-5)
    # and each sample's is Eq. 1 on that sample alone
    one = type(out)(*(t[2:3] for t in out))
    row = (stored["targets"][2:3], stored["aux"][2:3], criterion.config, criterion.gamma, stored["masks"][2:3])
    alone = vae_loss(one, *row)
    assert float(per_sample[2]) == pytest.approx(float(alone.total), rel=1e-5)
    # no step, no interference; a step down the gradient of these samples' loss lowers every score
    zero = tuple(torch.zeros_like(p) for p in model.parameters())
    assert torch.equal(plugin.interference(model, virtual_step(model, zero, 1.0), stored), torch.zeros(8))
    model.train()
    grads = torch.autograd.grad(eq1(criterion, model, tuple(stored[k] for k in ("inputs", "targets", "aux", "masks"))),
                                list(model.parameters()), allow_unused=True)  # fmt: skip
    assert float(plugin.interference(model, virtual_step(model, grads, 1e-6), stored).mean()) < 0
