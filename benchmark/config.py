"""Typed configuration: the data spec and the named presets.

A :class:`DataSpec` holds everything that determines the bytes of the generated data sets
(scene geometry, task domains, sizes, seed), so it is also the cache key. A :class:`Preset`
names a size: ``smoke`` for tests, ``quick`` (the default) for a laptop, ``paper`` for the
paper's sizes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from benchmark.loss import LossConfig
from benchmark.vae import VAEConfig
from envs.domains import get_domain
from envs.renderer import SceneConfig

TASK_DOMAINS: tuple[str, ...] = ("canonical", "randomized", "noisy")
"""Domain of Task 0, 1 and 2, as in the paper."""


@dataclass(frozen=True)
class DataSpec:
    """What to generate; two equal specs always give byte-identical data."""

    scene: SceneConfig = field(default_factory=SceneConfig)
    """Camera, resolution and arm geometry."""
    tasks: tuple[str, ...] = TASK_DOMAINS
    """Domain of each task, in stream order; the targets are always ``canonical``."""
    n_train: int = 2000
    """Training samples per task."""
    n_test: int = 500
    """Test samples per task; the test scene states are shared by all tasks."""
    seed: int = 0
    """Seed of the scene states and appearances (independent of the training seed)."""

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_test < 1:
            raise ValueError(f"n_train and n_test must be positive, got {self.n_train} and {self.n_test}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if not self.tasks:
            raise ValueError("at least one task is needed")
        for name in self.tasks:
            get_domain(name)  # raises with the list of valid names

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSpec:
        """Inverse of :meth:`to_dict`."""
        scene: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["scene"].items()}
        return cls(
            scene=SceneConfig(**scene),
            tasks=tuple(data["tasks"]),
            n_train=int(data["n_train"]),
            n_test=int(data["n_test"]),
            seed=int(data["seed"]),
        )


@dataclass(frozen=True)
class Preset:
    """A named size of the whole benchmark."""

    name: str
    n_train: int
    """Training images per task."""
    n_test: int
    """Test images per task."""
    epochs: tuple[int, int, int]
    """Epochs on Task 0, 1 and 2 (the paper: 250/100/100)."""

    def train_config(self, **overrides: Any) -> TrainConfig:
        """This preset's training config; ``overrides`` that are not None replace fields."""
        values: dict[str, Any] = {"epochs": self.epochs}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig(**values)

    def data_spec(self, **overrides: Any) -> DataSpec:
        """The data spec of this preset; ``overrides`` replace fields (``resolution`` goes to the scene)."""
        resolution = overrides.pop("resolution", None)
        scene = SceneConfig() if resolution is None else SceneConfig(resolution=resolution)
        values: dict[str, Any] = {"scene": scene, "n_train": self.n_train, "n_test": self.n_test}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return DataSpec(**values)


@dataclass(frozen=True)
class TrainConfig:
    """Everything about training the VAEs; every field is also a ``benchmark.run`` flag (``--batch-size``...)."""

    epochs: tuple[int, ...] = (25, 10, 10)
    """Epochs on Task 0, 1 and 2. Continual strategies follow it; single-task and joint models
    train for the sum (the paper: 250/100/100, 450 in total)."""
    batch_size: int = 32
    """Training minibatch (replay strategies add as many buffer samples). Small batches learn
    more per image here: on quick, 1,200 steps of 32 reach a lower test MSE than 300 of 128."""
    eval_batch_size: int = 512
    lr: float = 1e-3
    """Adam learning rate."""
    latent_size: int = 32
    decoder_coords: bool = False
    """CoordConv decoder: coordinate channels before each transposed convolution (see
    :class:`benchmark.vae.VAEConfig`)."""
    alpha: float = 1.0
    """Eq. 1: weight of the reconstruction term."""
    beta: float = 10.0
    """Eq. 1: weight of the auxiliary term."""
    gamma: float = 0.01
    """Eq. 1: final weight of the KL term (1.0 collapses the posterior: the model returns the mean image)."""
    kl_anneal_iterations: int = 500
    """Iterations over which the KL weight ramps up from 0."""
    arm_weight: float = 19.0
    """Foreground-weighted Eq. 1: extra weight of the arm's pixels of the canonical target in the
    reconstruction term (x20 in all); 0 with ``target_weight`` 0 is the paper's plain Eq. 1
    (see :mod:`benchmark.loss` and the README, "Task metrics")."""
    target_weight: float = 99.0
    """Foreground-weighted Eq. 1: extra weight of the target's pixels (x100 in all)."""
    weight_dilation: int = 0
    """Foreground-weighted Eq. 1: the weighted regions grown by this many pixels."""
    grad_clip: float = 100.0
    """Largest global gradient norm of one step (0: no clipping). At a task switch the first
    gradients are hundreds of times the usual (norm ~10^4 against a median of ~40 on quick) while Adam's
    second moments still hold the previous task's small ones, so the first steps are huge and
    finetune and DER collapsed to the mean image on Task 1; clipping at 100 prevents that."""
    mem_size: int = 1000
    """Replay buffer size of ER and DER, in samples."""
    der_alpha: float = 0.3
    """DER: weight of the distillation on stored outputs (Buzzega et al. 2020)."""
    der_beta: float = 0.5
    """DER++: weight of Eq. 1 on a second buffer sample; 0 gives plain DER."""

    def __post_init__(self) -> None:
        if not self.epochs or any(e < 1 for e in self.epochs):
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        for name in ("batch_size", "eval_batch_size", "latent_size", "mem_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "alpha"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in (
            "beta", "gamma", "der_alpha", "der_beta", "kl_anneal_iterations", "grad_clip",
            "arm_weight", "target_weight", "weight_dilation",
        ):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")

    @property
    def total_epochs(self) -> int:
        return sum(self.epochs)

    def vae_config(self, resolution: int) -> VAEConfig:
        """The architecture this config trains, for ``resolution`` images."""
        return VAEConfig(resolution=resolution, latent_size=self.latent_size, decoder_coords=self.decoder_coords)

    def loss_config(self) -> LossConfig:
        """The Eq. 1 weights and KL schedule of this config."""
        return LossConfig(
            self.alpha,
            self.beta,
            self.gamma,
            self.kl_anneal_iterations,
            self.arm_weight,
            self.target_weight,
            self.weight_dilation,
        )


PRESETS: dict[str, Preset] = {
    "smoke": Preset("smoke", n_train=48, n_test=24, epochs=(1, 1, 1)),
    "quick": Preset("quick", n_train=2000, n_test=500, epochs=(25, 10, 10)),
    "paper": Preset("paper", n_train=10000, n_test=1000, epochs=(250, 100, 100)),
}
DEFAULT_PRESET = "quick"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ``KeyError`` lists the valid names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}") from None
