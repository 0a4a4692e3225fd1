"""The fast path: precision resolution, bf16 autocast with fp32 outputs, uint8 batches, and the run's record of it."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.mapping.fastpath import FastPath, apply_fast_path, bf16_support, resolve_fast_path
from benchmark.mapping.loss import LossConfig, vae_loss
from benchmark.mapping.vae import ConvVAE
from benchmark.run import main

CPU = torch.device("cpu")


def test_auto_follows_the_hardware_and_explicit_choices_are_kept():
    native, why = bf16_support(CPU)
    auto = resolve_fast_path("auto", CPU)
    assert auto.precision == ("bf16" if native else "fp32") and why in auto.reason
    assert auto.channels_last and not auto.compile  # the measured defaults
    fp32 = resolve_fast_path("fp32", CPU, channels_last=False)
    assert fp32 == FastPath("fp32", False, False, fp32.reason) and fp32.autocast_dtype is None
    assert resolve_fast_path("bf16", CPU, channels_last=False).autocast_dtype is torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision 'fp16'; valid: fp32, bf16, auto"):
        resolve_fast_path("fp16", CPU)


def _pair():
    torch.manual_seed(0)
    reference = ConvVAE().eval()
    fast = apply_fast_path(ConvVAE().eval(), FastPath("bf16", channels_last=True))
    fast.load_state_dict(reference.state_dict())
    return reference, fast


def test_bf16_forward_returns_fp32_close_to_fp32():
    reference, fast = _pair()
    x = torch.rand(8, 3, 64, 64)
    ref, out = reference(x), fast(x)
    for a, b in zip(ref, out, strict=True):
        assert b.dtype == torch.float32
        assert (a - b).abs().max() < 0.05 * a.abs().max() + 1e-3
    assert next(fast.parameters()).dtype == torch.float32  # weights stay fp32
    assert fast.reconstruct(x).dtype == torch.float32 and fast.encode(x)[0].dtype == torch.float32


def test_bf16_training_step_has_fp32_loss_and_gradients():
    _, fast = _pair()
    fast.train()
    x = torch.rand(4, 3, 64, 64)
    terms = vae_loss(fast(x), x, torch.zeros(4, 5), LossConfig(), gamma=0.01)
    assert terms.total.dtype == terms.kl.dtype == terms.recon.dtype == torch.float32
    terms.total.backward()
    grads = [p.grad for p in fast.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_uint8_images_are_taken_as_float_over_255():
    reference, _ = _pair()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert torch.equal(reference(images).recon, reference(images.float() / 255).recon)
    terms_u8 = vae_loss(reference(images), images, torch.zeros(2, 5), LossConfig(), gamma=0.0)
    terms_f = vae_loss(reference(images), images.float() / 255, torch.zeros(2, 5), LossConfig(), gamma=0.0)
    assert terms_u8.total.item() == pytest.approx(terms_f.total.item())


def test_run_records_the_precision_and_bf16_trains(smoke_data_dir, smoke_data, tmp_path, caplog):
    argv = ["--preset", "smoke", "--data-dir", str(smoke_data_dir), "--no-progress", "--strategy", "der"]
    assert main([*argv, "--out", str(tmp_path / "bf16"), "--precision", "bf16"]) == 0
    assert main([*argv, "--out", str(tmp_path / "fp32"), "--precision", "fp32"]) == 0
    assert "precision bf16" in caplog.text and "precision fp32" in caplog.text
    results = {}
    for name in ("bf16", "fp32"):
        run = tmp_path / name / "der" / "seed0"
        config = json.loads((run / "config.json").read_text())
        assert config["fast"]["precision"] == name and config["fast"]["reason"]
        results[name] = json.loads((run / "results.json").read_text())["final_mse"]
    # one smoke epoch per task: bf16 and fp32 land close, not equal
    for low, full in zip(results["bf16"], results["fp32"], strict=True):
        assert low != full and low == pytest.approx(full, rel=0.25)
