"""Image post-processing effects, applied batched with kornia.

An effect is a small frozen dataclass of ranges. ``sample(rng)`` draws the concrete
parameters of one image from an explicit ``numpy.random.Generator``; ``apply`` runs the
effect on a whole batch of float images ``(N, 3, H, W)`` in ``[0, 1]`` with one parameter
row per image. Effects that need per-pixel randomness (noise) draw it from a
``torch.Generator`` seeded per image, so an image's result never depends on which batch,
worker or process it was rendered in.

The paper post-processed its Task-2 images with imgaug (white noise, salt-and-pepper,
posterize, sharpness). imgaug does not import under NumPy 2, so the same effects are
rebuilt here on kornia's functional API.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import kornia
import numpy as np
import torch

Range = tuple[float, float]


def uniform(rng: np.random.Generator, bounds: Range) -> float:
    """A uniform draw from ``bounds``; a point range ``(a, a)`` is ``a`` and consumes no randomness."""
    low, high = bounds
    return float(low) if low == high else float(rng.uniform(low, high))


def _column(params: Sequence[Sequence[float]], index: int, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor([p[index] for p in params], dtype=like.dtype, device=like.device)


def _noise(seeds: Sequence[int], shape: tuple[int, ...], like: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-image noise: image ``i`` always gets the same noise for the same seed."""
    out = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        if kind == "normal":
            out.append(torch.randn(shape, generator=gen))
        else:
            out.append(torch.rand(shape, generator=gen))
    return torch.stack(out).to(device=like.device, dtype=like.dtype)


class Effect(ABC):
    """One post-processing step with random magnitude."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> tuple[float, ...]:
        """Draw this effect's parameters for one image."""

    @abstractmethod
    def apply(self, images: torch.Tensor, params: Sequence[Sequence[float]], seeds: Sequence[int]) -> torch.Tensor:
        """Apply to ``images`` (N, 3, H, W) in [0, 1]; ``params[i]`` and ``seeds[i]`` belong to image i."""


@dataclass(frozen=True)
class GaussianNoise(Effect):
    """Additive white noise with a standard deviation drawn from ``std`` (in [0, 1] units)."""

    std: Range = (0.01, 0.08)

    def sample(self, rng: np.random.Generator) -> tuple[float, ...]:
        return (uniform(rng, self.std),)

    def apply(self, images, params, seeds):
        std = _column(params, 0, images).view(-1, 1, 1, 1)
        return (images + std * _noise(seeds, tuple(images.shape[1:]), images, "normal")).clamp(0, 1)


@dataclass(frozen=True)
class SaltAndPepper(Effect):
    """Sets a fraction ``amount`` of pixels to black or white (half each), all channels together."""

    amount: Range = (0.002, 0.03)

    def sample(self, rng: np.random.Generator) -> tuple[float, ...]:
        return (uniform(rng, self.amount),)

    def apply(self, images, params, seeds):
        amount = _column(params, 0, images).view(-1, 1, 1, 1)
        n, _, h, w = images.shape
        u = _noise(seeds, (2, h, w), images, "uniform")
        hit = u[:, :1] < amount
        value = (u[:, 1:] < 0.5).to(images.dtype)
        return torch.where(hit, value, images)


@dataclass(frozen=True)
class Posterize(Effect):
    """Keeps ``bits`` bits per channel (an integer drawn from the inclusive range)."""

    bits: tuple[int, int] = (3, 6)

    def sample(self, rng: np.random.Generator) -> tuple[float, ...]:
        return (float(rng.integers(self.bits[0], self.bits[1] + 1)),)

    def apply(self, images, params, seeds):
        bits = torch.tensor([int(p[0]) for p in params], device=images.device)
        return kornia.enhance.posterize(images, bits)


@dataclass(frozen=True)
class Sharpness(Effect):
    """PIL-style sharpness: 0 blurs, 1 keeps the image, above 1 sharpens."""

    factor: Range = (0.3, 2.5)

    def sample(self, rng: np.random.Generator) -> tuple[float, ...]:
        return (uniform(rng, self.factor),)

    def apply(self, images, params, seeds):
        return kornia.enhance.sharpness(images, _column(params, 0, images)).clamp(0, 1)


@dataclass(frozen=True)
class GaussianBlur(Effect):
    """Lens blur with a sigma in pixels drawn from ``sigma``."""

    sigma: Range = (0.3, 1.0)

    def sample(self, rng: np.random.Generator) -> tuple[float, ...]:
        return (uniform(rng, self.sigma),)

    def apply(self, images, params, seeds):
        sigma = _column(params, 0, images)
        kernel = 2 * int(np.ceil(3 * max(self.sigma))) + 1
        return kornia.filters.gaussian_blur2d(images, kernel, torch.stack([sigma, sigma], dim=1))


@dataclass(frozen=True)
class JpegCompression(Effect):
    """JPEG encode and decode at a quality drawn from ``quality`` (1-100)."""

    quality: Range = (25.0, 60.0)

    def sample(self, rng: np.random.Generator) -> tuple[float, ...]:
        return (uniform(rng, self.quality),)

    def apply(self, images, params, seeds):
        quality = _column(params, 0, images)
        return kornia.enhance.jpeg_codec_differentiable(images, quality).clamp(0, 1)


@dataclass(frozen=True)
class ColourCast(Effect):
    """A camera's white-balance error: each channel is scaled by ``1 + U(-strength, strength)``."""

    strength: Range = (0.05, 0.2)

    def sample(self, rng: np.random.Generator) -> tuple[float, ...]:
        s = uniform(rng, self.strength)
        return tuple(float(g) for g in 1.0 + rng.uniform(-s, s, size=3))

    def apply(self, images, params, seeds):
        gains = torch.tensor([list(p) for p in params], dtype=images.dtype, device=images.device)
        return (images * gains.view(-1, 3, 1, 1)).clamp(0, 1)


def apply_effects(
    images: np.ndarray,
    effects: Sequence[Effect],
    params: Sequence[Sequence[Sequence[float]]],
    seeds: Sequence[int],
) -> np.ndarray:
    """Run ``effects`` in order over a batch of uint8 images ``(N, H, W, 3)``.

    ``params[i][k]`` are the parameters of effect ``k`` for image ``i`` and ``seeds[i]``
    that image's noise seed. Returns uint8 images of the same shape.
    """
    if not effects or len(images) == 0:
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    for k, effect in enumerate(effects):
        x = effect.apply(x, [p[k] for p in params], [int(s) + 7919 * k for s in seeds])
    out = (x.clamp(0, 1) * 255.0).round_().to(torch.uint8)
    return out.permute(0, 2, 3, 1).contiguous().numpy()
