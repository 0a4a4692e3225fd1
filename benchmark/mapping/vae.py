"""The convolutional VAE that maps any image to the canonical image, and how to save and load it.

Encoder: four stride-2 convolutions to ``mu`` and ``logvar``; decoder: a linear layer and four
stride-2 transposed convolutions to a ``[0, 1]`` image (by default each but the last followed by a
3x3 convolution, :attr:`VAEConfig.decoder_refine`); auxiliary head: two linear layers from
the latent to the auxiliary vector (target position and joint angles).

Written here rather than taken from Avalanche: avalanche-lib 0.6.0's ``MlpVAE`` is fully
connected and samples with ``sigma = 0.5 * exp(logvar)``; the correct reparameterisation is
``sigma = exp(0.5 * logvar)`` (Kingma and Welling, 2014). There is no batch normalisation, so
the deterministic path (``encode`` then ``decode(mu)``) gives the same output in train and
eval mode, which the DER distillation relies on.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from benchmark.common.io import atomic_path
from benchmark.mapping.fastpath import FastPath, apply_fast_path, to_float_images
from envs.renderer import AUX_SIZE

MODEL_FORMAT = 1
ARCHITECTURE_VERSION = 2
"""Bumped when the same weights would compute something else (2: bounded ``logvar``); part of the
shared Task-0 model's cache key."""
LOGVAR_BOUND = 10.0
"""``logvar`` is squashed softly into ``(-10, 10)``; see :meth:`ConvVAE.encode`."""


class VAEOutput(NamedTuple):
    """What :meth:`ConvVAE.forward` returns."""

    recon: torch.Tensor
    """Reconstruction ``(N, 3, H, W)`` in ``[0, 1]``: of a sampled latent in training, of ``mu`` in eval."""
    mu: torch.Tensor
    logvar: torch.Tensor
    aux: torch.Tensor
    """Predicted auxiliary vector ``(N, aux_size)``, from ``mu``."""


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of :class:`ConvVAE`; saved with every model."""

    resolution: int = 64
    """Input and output side in pixels; a multiple of 16."""
    latent_size: int = 32
    channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    """Channels of the four encoder convolutions (mirrored by the decoder)."""
    aux_size: int = AUX_SIZE
    aux_hidden: int = 64
    decoder_refine: bool = False
    """Follow each upsampling of the decoder but the last by a 3x3 convolution (same channels):
    a transposed convolution alone paints each output pixel from a 2x2 patch of the coarser
    grid, and a thin arm at an arbitrary angle needs its neighbours too. About doubles the
    decoder's arithmetic."""
    decoder_coords: bool = False
    """Give every transposed convolution of the decoder two coordinate channels (CoordConv, Liu et
    al. 2018): convolutions are translation-equivariant, so placing a small object at an exact
    pixel from a latent code is hard for them without being told where each pixel is."""

    def __post_init__(self) -> None:
        if self.resolution % 16 or self.resolution < 16:
            raise ValueError(f"VAE resolution must be a multiple of 16, got {self.resolution}")
        if self.latent_size < 1:
            raise ValueError(f"latent_size must be positive, got {self.latent_size}")


class AddCoords(nn.Module):
    """Appends two channels holding each pixel's row and column, scaled to ``[-1, 1]`` (CoordConv)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        rows = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        cols = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
        return torch.cat([x, rows, cols], dim=1)


def _up(channels_in: int, channels_out: int, coords: bool, refine: bool = False) -> list[nn.Module]:
    """One decoder stage: a stride-2 transposed convolution, with coordinate channels first if
    ``coords``, and a 3x3 convolution after it if ``refine``."""
    conv = nn.ConvTranspose2d(channels_in + 2 * coords, channels_out, 4, 2, 1)
    stage: list[nn.Module] = [AddCoords(), conv] if coords else [conv]
    if refine:
        stage += [nn.LeakyReLU(0.2), nn.Conv2d(channels_out, channels_out, 3, 1, 1)]
    return stage


class ConvVAE(nn.Module):
    """Convolutional VAE with an auxiliary regression head; see the module docstring."""

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or VAEConfig()
        c = cfg.channels
        side = cfg.resolution // 16
        self._grid = (c[3], side, side)
        flat = c[3] * side * side
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c[0], 4, 2, 1), act,
            nn.Conv2d(c[0], c[1], 4, 2, 1), act,
            nn.Conv2d(c[1], c[2], 4, 2, 1), act,
            nn.Conv2d(c[2], c[3], 4, 2, 1), act,
            nn.Flatten(),
        )  # fmt: skip
        self.to_mu = nn.Linear(flat, cfg.latent_size)
        self.to_logvar = nn.Linear(flat, cfg.latent_size)
        self.from_latent = nn.Linear(cfg.latent_size, flat)
        k, r = cfg.decoder_coords, cfg.decoder_refine
        self.decoder = nn.Sequential(
            act,
            *_up(c[3], c[2], k, r), act,
            *_up(c[2], c[1], k, r), act,
            *_up(c[1], c[0], k, r), act,
            *_up(c[0], 3, k),
            nn.Sigmoid(),
        )  # fmt: skip
        self.aux_head = nn.Sequential(
            nn.Linear(cfg.latent_size, cfg.aux_hidden), nn.ReLU(), nn.Linear(cfg.aux_hidden, cfg.aux_size)
        )
        self.autocast_dtype: torch.dtype | None = None
        """Low precision of the forward passes (``torch.bfloat16``) or None for fp32; set by
        :func:`benchmark.mapping.fastpath.apply_fast_path`. Not part of the saved model."""
        self.channels_last = False
        """Feed inputs as NHWC (set together with the weights' memory format)."""

    def _autocast(self, x: torch.Tensor) -> torch.autocast:
        dtype = self.autocast_dtype
        return torch.autocast(x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = to_float_images(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        logvar = LOGVAR_BOUND * torch.tanh(self.to_logvar(h) / LOGVAR_BOUND)
        return self.to_mu(h), logvar

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_latent(z).view(-1, *self._grid))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` (fp32) of the approximate posterior of images ``x`` (float in ``[0, 1]`` or uint8).

        ``logvar`` is ``10 * tanh(raw / 10)``: when a new task's images arrive (fine-tuning from
        canonical to randomized renders on quick), the first large updates swung the raw
        ``logvar`` past 88, ``exp`` overflowed and the loss became inf within 20 iterations.
        The soft bound keeps gradients everywhere and hardly touches trained values (-7 to -2).
        """
        x = self._prepare(x)
        with self._autocast(x):
            mu, logvar = self._encode(x)
        return mu.float(), logvar.float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Image (fp32, in ``[0, 1]``) for latent codes ``z``."""
        with self._autocast(z):
            return self._decode(z).float()

    def forward(self, x: torch.Tensor) -> VAEOutput:
        """Images ``x`` (float in ``[0, 1]`` or uint8) to a :class:`VAEOutput`, always in fp32.

        Every public method runs under the model's precision (:attr:`autocast_dtype`) and
        returns fp32, so losses and metrics never see bf16.
        """
        x = self._prepare(x)
        with self._autocast(x):
            mu, logvar = self._encode(x)
            if self.training:
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar.float())
            else:
                z = mu
            out = VAEOutput(self._decode(z), mu, logvar, self.aux_head(mu))
        return VAEOutput(*(t.float() for t in out))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic mapping to the canonical image: ``decode(mu)``, in fp32."""
        x = self._prepare(x)
        with self._autocast(x):
            return self._decode(self._encode(x)[0]).float()

    @torch.inference_mode()
    def map_images(self, images: np.ndarray) -> np.ndarray:
        """:meth:`reconstruct` for uint8 ``(N, H, W, 3)`` images, as uint8 ``(N, H, W, 3)``, on the model's device.

        The one conversion shared by the RL observation wrapper, ``translate`` and the reports.
        """
        device = next(self.parameters()).device
        recon = self.reconstruct(torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2))
        return (recon * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def save_vae(model: ConvVAE, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
    """Write a self-describing model file (config and weights), atomically."""
    payload = {
        "format": MODEL_FORMAT,
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def vae_file(path: str | os.PathLike[str]) -> Path:
    """The model file a user means by ``path``: the file itself, or the ``model.pt`` of a run folder.

    Raises ``FileNotFoundError`` (one line, "no VAE at ...") if there is none."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no VAE at {path}")
    return path


def load_vae(path: str | os.PathLike[str], device: str | torch.device = "cpu", fast: FastPath | None = None) -> ConvVAE:
    """Load a trained VAE, in eval mode, from a ``model.pt`` or from the run folder that holds it.

    ``fast`` sets its precision and memory format (:mod:`benchmark.mapping.fastpath`); default fp32.

    Example::

        from benchmark.mapping.vae import load_vae
        vae = load_vae("runs/der/seed0")
        canonical = vae.reconstruct(images)  # images: (N, 3, 64, 64) float in [0, 1]

    Raises ``FileNotFoundError`` or ``ValueError`` with a one-line reason.
    """
    path = vae_file(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ValueError("no ciim-bench model header")
        raw: dict[str, Any] = payload["config"]
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        config = VAEConfig(**fields)
        model = ConvVAE(config)
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # any unreadable or foreign file is a one-line error for the user
        reason = str(exc).split("\n")[0][:120]
        raise ValueError(f"{path} is not a ciim-bench VAE ({exc.__class__.__name__}: {reason})") from None
    return apply_fast_path(model.to(device).eval(), fast or FastPath())


def load_vae_at(
    path: str | os.PathLike[str], resolution: int, device: str | torch.device = "cpu", fast: FastPath | None = None
) -> ConvVAE:
    """:func:`load_vae`, refusing in one line (``ValueError``) a model of another image side than ``resolution``
    (an agent's frames, say)."""
    vae = load_vae(path, device, fast)
    if (side := vae.config.resolution) != resolution:
        raise ValueError(
            f"{path} maps {side}x{side} images but {resolution}x{resolution} are needed; "
            f"use a VAE trained at --resolution {resolution}"
        )
    return vae
