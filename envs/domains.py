"""Visual domains: declarative specs of how a scene may look, and their registry.

A :class:`Domain` is a frozen dataclass of ranges (camera jitter, floor colour or texture,
lighting, post-processing effects). ``Domain.sample(rng)`` draws one concrete
:class:`Appearance` for one image; the renderer turns a scene state plus an appearance into
pixels. A range ``(a, a)`` is a fixed value, so the canonical domain is just a domain whose
ranges are all points.

Adding a domain is one function in one file::

    from envs.domains import Domain, register_domain

    @register_domain("dusk")
    def dusk() -> Domain:
        return Domain(light_rgb=((0.9, 1.0), (0.5, 0.7), (0.3, 0.5)))

Domains shipped here: ``canonical`` (the invariant image), ``randomized`` (Task 1),
``noisy`` (Task 2) and ``heldout`` (a realistic proxy for a real camera, evaluation only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from envs.effects import (
    ColourCast,
    Effect,
    GaussianBlur,
    GaussianNoise,
    JpegCompression,
    Posterize,
    SaltAndPepper,
    Sharpness,
    uniform,
)

Range = tuple[float, float]
RGBRange = tuple[Range, Range, Range]


def _fixed(*values: float) -> tuple[Range, ...]:
    return tuple((v, v) for v in values)


@dataclass(frozen=True)
class SceneLook:
    """Everything the renderer needs besides the scene state: one draw of a domain's scene ranges."""

    camera_shift: tuple[float, float, float]
    """Camera eye offset in metres (x, y, z) from the canonical pose."""
    camera_rotation: tuple[float, float, float]
    """Camera rotation jitter in degrees about the world x, y and z axes."""
    floor_rgb: tuple[float, float, float]
    """Floor colour (multiplies the texture when there is one)."""
    floor_texture: str | None
    """Texture file relative to ``pybullet_data``, or None for a plain floor."""
    light_direction: tuple[float, float, float]
    light_rgb: tuple[float, float, float]
    light_ambient: float
    light_diffuse: float
    light_specular: float
    shadow: bool


@dataclass(frozen=True)
class Appearance:
    """One image's concrete look: the scene part, then post-processing parameters."""

    look: SceneLook
    effect_params: tuple[tuple[float, ...], ...] = ()
    """One parameter tuple per effect of the domain, in order."""
    noise_seed: int = 0
    """Seed of the per-pixel noise of this image's effects."""


@dataclass(frozen=True)
class Domain:
    """A visual domain as ranges; every field defaults to the canonical value."""

    camera_shift_m: float = 0.0
    """Uniform jitter of the camera eye, +/- metres on each axis."""
    camera_rotation_deg: float = 0.0
    """Uniform rotation jitter of the camera, +/- degrees about each axis."""
    floor_rgb: RGBRange = ((0.45, 0.45), (0.45, 0.45), (0.45, 0.45))  # type: ignore[assignment]
    """Floor colour range per channel."""
    floor_textures: tuple[str, ...] = ()
    """Textures (paths inside ``pybullet_data``), one drawn per image; empty for a plain floor."""
    light_direction: RGBRange = ((0.4, 0.4), (0.3, 0.3), (1.0, 1.0))  # type: ignore[assignment]
    """Direction of the light, per axis range (normalised after drawing)."""
    light_rgb: RGBRange = ((1.0, 1.0), (1.0, 1.0), (1.0, 1.0))  # type: ignore[assignment]
    light_ambient: Range = (0.6, 0.6)
    light_diffuse: Range = (0.4, 0.4)
    light_specular: Range = (0.1, 0.1)
    shadow_probability: float = 0.0
    """Probability that an image is rendered with shadows."""
    effects: tuple[Effect, ...] = field(default=())
    """Post-processing steps applied in order to the rendered image."""

    def sample(self, rng: np.random.Generator) -> Appearance:
        """Draw one image's appearance; the draw order is fixed, so a seed fixes the image."""

        def draw(bounds: Range) -> float:
            return uniform(rng, bounds)

        def draw3(bounds: RGBRange) -> tuple[float, float, float]:
            a, b, c = (draw(r) for r in bounds)
            return (a, b, c)

        s, r = self.camera_shift_m, self.camera_rotation_deg
        shift = tuple(float(v) for v in rng.uniform(-s, s, 3)) if s else (0.0, 0.0, 0.0)
        rotation = tuple(float(v) for v in rng.uniform(-r, r, 3)) if r else (0.0, 0.0, 0.0)
        texture = self.floor_textures[int(rng.integers(len(self.floor_textures)))] if self.floor_textures else None
        direction = np.asarray(draw3(self.light_direction))
        direction = direction / max(float(np.linalg.norm(direction)), 1e-9)
        shadow = bool(rng.random() < self.shadow_probability) if self.shadow_probability else False
        look = SceneLook(
            camera_shift=shift,  # type: ignore[arg-type]
            camera_rotation=rotation,  # type: ignore[arg-type]
            floor_rgb=draw3(self.floor_rgb),
            floor_texture=texture,
            light_direction=(float(direction[0]), float(direction[1]), float(direction[2])),
            light_rgb=draw3(self.light_rgb),
            light_ambient=draw(self.light_ambient),
            light_diffuse=draw(self.light_diffuse),
            light_specular=draw(self.light_specular),
            shadow=shadow,
        )
        params = tuple(effect.sample(rng) for effect in self.effects)
        seed = int(rng.integers(0, 2**31 - 1)) if self.effects else 0
        return Appearance(look=look, effect_params=params, noise_seed=seed)


_DOMAINS: dict[str, Callable[[], Domain]] = {}


def register_domain(name: str) -> Callable[[Callable[[], Domain]], Callable[[], Domain]]:
    """Decorator: register a function returning a :class:`Domain` under ``name``."""

    def decorator(factory: Callable[[], Domain]) -> Callable[[], Domain]:
        if name in _DOMAINS:
            raise ValueError(f"domain {name!r} is already registered")
        _DOMAINS[name] = factory
        return factory

    return decorator


def available_domains() -> list[str]:
    """Names of all registered domains, in registration order."""
    return list(_DOMAINS)


def get_domain(name: str) -> Domain:
    """The domain registered as ``name``; a ``KeyError`` lists the valid names otherwise."""
    try:
        return _DOMAINS[name]()
    except KeyError:
        raise KeyError(f"unknown domain {name!r}; valid domains: {', '.join(available_domains())}") from None


@register_domain("canonical")
def canonical() -> Domain:
    """Fixed camera, colours and light: the invariant image every VAE maps back to."""
    return Domain()


@register_domain("randomized")
def randomized() -> Domain:
    """Task 1: camera pose jitter, floor colour and lighting randomized per image."""
    return Domain(
        camera_shift_m=0.05,
        camera_rotation_deg=3.0,
        floor_rgb=((0.0, 1.0), (0.0, 1.0), (0.0, 1.0)),
        light_direction=((-1.0, 1.0), (-1.0, 1.0), (0.3, 1.0)),
        light_rgb=((0.5, 1.0), (0.5, 1.0), (0.5, 1.0)),
        light_ambient=(0.2, 0.8),
        light_diffuse=(0.2, 0.9),
        light_specular=(0.0, 0.8),
        shadow_probability=0.5,
    )


@register_domain("noisy")
def noisy() -> Domain:
    """Task 2: the canonical render post-processed with noise, posterize and sharpness."""
    # Sharpening before the noise, so that it does not amplify the noise itself.
    return Domain(effects=(Posterize(), Sharpness(), GaussianNoise(), SaltAndPepper()))


@register_domain("textured")
def textured() -> Domain:
    """A fourth task for open-ended streams: the canonical scene on a textured floor.

    None of the three paper tasks shows a floor with a pattern (``randomized`` changes its
    colour only), so a VAE must learn it anew; ``heldout``'s table texture is not among these,
    so the held-out domain stays unseen.
    """
    return Domain(
        floor_rgb=((0.7, 1.0), (0.7, 1.0), (0.7, 1.0)),
        floor_textures=("checker_blue.png", "checker_grid.jpg", "tex256.png"),
    )


@register_domain("heldout")
def heldout() -> Domain:
    """A realistic proxy for a real camera (not real images), used for evaluation only.

    Textured floor, warmer and dimmer light with shadows, slight pose error, and a camera
    pipeline: lens blur, colour cast and JPEG compression.
    """
    return Domain(
        camera_shift_m=0.03,
        camera_rotation_deg=2.0,
        floor_rgb=((0.8, 1.0), (0.8, 1.0), (0.8, 1.0)),
        floor_textures=("table/table.png",),
        light_direction=((-0.6, 0.6), (-0.6, 0.6), (0.6, 1.0)),
        light_rgb=((0.95, 1.0), (0.8, 0.9), (0.65, 0.8)),
        light_ambient=(0.45, 0.6),
        light_diffuse=(0.4, 0.6),
        light_specular=(0.1, 0.3),
        shadow_probability=1.0,
        effects=(GaussianBlur(sigma=(0.2, 0.6)), ColourCast(), JpegCompression(quality=(40.0, 80.0))),
    )
