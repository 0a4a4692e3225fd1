"""The convolutional VAE: outputs, sampling, the deterministic path, saving and loading."""

from __future__ import annotations

import pytest
import torch

from benchmark.mapping.vae import ConvVAE, VAEConfig, VAEOutput, load_vae, save_vae


@pytest.mark.parametrize("resolution", [32, 64])
def test_output_shapes_and_range(resolution):
    model = ConvVAE(VAEConfig(resolution=resolution, latent_size=8))
    out = model(torch.rand(4, 3, resolution, resolution))
    assert isinstance(out, VAEOutput)
    assert out.recon.shape == (4, 3, resolution, resolution)
    assert out.mu.shape == out.logvar.shape == (4, 8) and out.aux.shape == (4, 5)
    assert 0.0 <= out.recon.min().item() and out.recon.max().item() <= 1.0


def test_reparameterisation_uses_exp_half_logvar(monkeypatch):
    model = ConvVAE(VAEConfig(latent_size=4)).train()
    captured = {}

    def fake_decode(z):
        captured["z"] = z
        return torch.zeros(z.shape[0], 3, 64, 64)

    mu = torch.zeros(20000, 4)
    logvar = torch.full((20000, 4), 2 * float(torch.log(torch.tensor(3.0))))  # sigma = 3
    monkeypatch.setattr(model, "_decode", fake_decode)
    monkeypatch.setattr(model, "_encode", lambda x: (mu, logvar))
    model(torch.zeros(1))
    # Avalanche 0.6.0's MlpVAE would sample with sigma = 0.5 * exp(logvar) = 4.5
    assert captured["z"].std().item() == pytest.approx(3.0, rel=0.03)


def test_eval_mode_is_deterministic_and_matches_reconstruct():
    model = ConvVAE().eval()
    x = torch.rand(3, 3, 64, 64)
    assert torch.equal(model(x).recon, model(x).recon)
    assert torch.allclose(model(x).recon, model.reconstruct(x))
    model.train()
    assert not torch.equal(model(x).recon, model(x).recon)


def test_config_rejects_bad_resolution():
    with pytest.raises(ValueError, match="multiple of 16"):
        VAEConfig(resolution=50)


def test_save_load_round_trip_and_errors(tmp_path):
    model = ConvVAE(VAEConfig(latent_size=6))
    save_vae(model, tmp_path / "run" / "model.pt")
    loaded = load_vae(tmp_path / "run")  # a run folder works as well as the file
    assert loaded.config == model.config and not loaded.training
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(loaded.reconstruct(x), model.eval().reconstruct(x))
    with pytest.raises(FileNotFoundError):
        load_vae(tmp_path / "missing")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="is not a ciim-bench VAE"):
        load_vae(tmp_path / "junk.pt")


def test_logvar_is_bounded_so_the_kl_stays_finite():
    """A fine-tuning step on a new domain once drove logvar past 88 and the loss to inf."""
    from benchmark.mapping.loss import LossConfig, vae_loss

    torch.manual_seed(0)
    model = ConvVAE()
    with torch.no_grad():
        model.to_logvar.weight.mul_(1e4)
    x = torch.rand(4, 3, 64, 64)
    out = model(x)
    assert out.logvar.abs().max() <= 10.0 and out.logvar.abs().max() > 9.0  # tanh saturates to exactly 1 in fp32
    terms = vae_loss(out, x, torch.zeros(4, out.aux.shape[1]), LossConfig(1.0, 10.0, 0.01, 0), 0.01)
    assert torch.isfinite(terms.total)


def test_coordinate_decoder_sees_where_each_pixel_is_and_round_trips(tmp_path):
    from benchmark.mapping.vae import AddCoords

    coords = AddCoords()(torch.zeros(2, 1, 4, 6))
    assert coords.shape == (2, 3, 4, 6)
    assert coords[0, 1, :, 0].tolist() == pytest.approx([-1, -1 / 3, 1 / 3, 1]) and coords[0, 2, 0, -1] == 1
    model = ConvVAE(VAEConfig(resolution=32, latent_size=4, decoder_coords=True)).eval()
    convs = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.in_channels for c in convs] == [256 + 2, 128 + 2, 64 + 2, 32 + 2]
    save_vae(model, tmp_path / "m.pt")
    again = load_vae(tmp_path / "m.pt")
    x = torch.rand(2, 3, 32, 32)
    assert again.config.decoder_coords and torch.equal(again.reconstruct(x), model.reconstruct(x))


def test_refining_decoder_adds_a_convolution_per_stage_and_round_trips(tmp_path):
    plain = ConvVAE(VAEConfig(resolution=32, latent_size=4))
    model = ConvVAE(VAEConfig(resolution=32, latent_size=4, decoder_refine=True)).eval()
    refine = [m for m in model.decoder if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in refine] == [(n, n, (3, 3)) for n in (128, 64, 32)]
    assert not any(isinstance(m, torch.nn.Conv2d) for m in plain.decoder)  # the default keeps the saved models' layout
    save_vae(model, tmp_path / "m.pt")
    again = load_vae(tmp_path / "m.pt")
    x = torch.rand(2, 3, 32, 32)
    assert again.config.decoder_refine and torch.equal(again.reconstruct(x), model.reconstruct(x))
    assert again.reconstruct(x).shape == x.shape
