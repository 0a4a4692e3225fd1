"""Typed configs of continual training: how VAEs train (:class:`TrainConfig`), what a run is (:class:`RunConfig`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.data.cache import spec_key
from benchmark.data.spec import DataSpec
from benchmark.mapping.fastpath import FastPath
from benchmark.mapping.loss import LossConfig
from benchmark.mapping.vae import VAEConfig

LR_SCHEDULES = ("constant", "cosine")
"""Learning-rate schedules of :attr:`TrainConfig.lr_schedule`."""


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
    """Adam learning rate (the peak of each experience under ``lr_schedule`` ``cosine``)."""
    lr_schedule: str = "constant"
    """``constant``, or ``cosine``: decayed to ``lr_floor * lr`` over each experience and reset
    at the next (:class:`benchmark.continual.plugins.CosineLR`)."""
    lr_floor: float = 0.0
    """``cosine``: the last iteration's rate as a fraction of ``lr``."""
    latent_size: int = 32
    decoder_refine: bool = True
    """A 3x3 convolution after each upsampling of the decoder but the last (see
    :class:`benchmark.mapping.vae.VAEConfig`; measured in the README, "What makes the mapping
    keep the task")."""
    decoder_coords: bool = False
    """CoordConv decoder: coordinate channels before each transposed convolution (see
    :class:`benchmark.mapping.vae.VAEConfig`)."""
    freeze_decoder: bool = False
    """Continual strategies: keep the decoder (``from_latent`` and ``decoder``) at its Task-0
    weights in every later experience, so only the encoder and the auxiliary head learn the later
    tasks; they map a new domain into the latent space whose reconstructions the first task
    fixed (see :class:`benchmark.continual.plugins.FreezeDecoder`). Not part of the shared Task-0
    model's key: that model trains with the decoder free."""
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
    (see :mod:`benchmark.mapping.loss` and the README, "Task metrics")."""
    target_weight: float = 99.0
    """Foreground-weighted Eq. 1: extra weight of the target's pixels (x100 in all)."""
    weight_dilation: int = 0
    """Foreground-weighted Eq. 1: the weighted regions grown by this many pixels."""
    stray_weight: float = 19.0
    """Foreground-weighted Eq. 1: extra weight of the floor pixels the reconstruction paints off
    the floor colour (see :func:`benchmark.mapping.loss.stray_pixels`)."""
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
    """DER++: weight of Eq. 1 on a second buffer sample (``der``); ``der-plain`` sets it to 0."""
    ewc_lambda: float = 1.0
    """EWC: weight of the quadratic penalty (see :mod:`strategies.ewc` for the value's source)."""
    si_lambda: float = 1.0
    """SI: weight of the path-integral penalty (:mod:`strategies.si`)."""
    mas_lambda: float = 1.0
    """MAS: weight of the penalty (:mod:`strategies.mas`)."""
    mas_alpha: float = 0.5
    """MAS: the old importances' share when a new experience's are merged in."""
    agem_patterns: int = 250
    """A-GEM: samples kept per experience (:mod:`strategies.agem`)."""
    agem_sample_size: int = 32
    """A-GEM: memory samples of each reference gradient (see :mod:`strategies.agem` for why not 256)."""
    si_eps: float = 0.1
    """SI: damping of the importance's denominator."""
    lwf_alpha: float = 1.0
    """LwF: weight of the distillation on the previous model's outputs (:mod:`strategies.lwf`)."""
    mir_subsample: int = 160
    """MIR: buffer samples scored per step, of which ``batch_size`` are replayed (:mod:`strategies.mir`)."""

    def __post_init__(self) -> None:
        if not self.epochs or any(e < 1 for e in self.epochs):
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        for name in ("batch_size", "eval_batch_size", "latent_size", "mem_size", "agem_patterns", "agem_sample_size",
                     "mir_subsample"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0 <= self.lr_floor <= 1:
            raise ValueError(f"lr_floor must lie in [0, 1], got {self.lr_floor}")
        for name in ("lr", "alpha"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in (
            "beta", "gamma", "der_alpha", "der_beta", "kl_anneal_iterations", "grad_clip",
            "arm_weight", "target_weight", "weight_dilation", "stray_weight", "ewc_lambda", "si_lambda", "mas_lambda",
            "lwf_alpha", "si_eps",
        ):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.mas_alpha <= 1:
            raise ValueError(f"mas_alpha must lie in [0, 1], got {self.mas_alpha}")

    @property
    def total_epochs(self) -> int:
        return sum(self.epochs)

    def vae_config(self, resolution: int) -> VAEConfig:
        """The architecture this config trains, for ``resolution`` images."""
        return VAEConfig(
            resolution=resolution,
            latent_size=self.latent_size,
            decoder_coords=self.decoder_coords,
            decoder_refine=self.decoder_refine,
        )

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
            self.stray_weight,
        )


STRATEGY_FIELDS = (
    "mem_size", "der_alpha", "der_beta", "ewc_lambda", "si_lambda", "mas_lambda", "mas_alpha", "agem_patterns",
    "agem_sample_size", "lwf_alpha", "si_eps", "mir_subsample",
)  # fmt: skip
"""The :class:`TrainConfig` fields only a strategy's plugin reads: they do not change the shared
Task-0 model (trained without plugins), so they stay out of its key."""

LATER_TASK_FIELDS = (*STRATEGY_FIELDS, "freeze_decoder")
"""The :class:`TrainConfig` fields that act only after the first task: the shared Task-0 model's
key leaves them out, so runs that differ in them share it."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run's results; saved as ``config.json``."""

    strategy: str
    preset: str
    seed: int
    device: str
    data: DataSpec
    train: TrainConfig
    fast: FastPath = FastPath()
    """Precision, memory format and compilation of the VAE (see :mod:`benchmark.mapping.fastpath`)."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["data"] = self.data.to_dict()
        out["data_key"] = spec_key(self.data)
        return out


RESUME_IGNORES = {("fast", "reason")}
"""Fields of ``config.json`` that may differ on resume: the wording of why a precision was chosen."""


def run_dir(out: Path, strategy: str, seed: int) -> Path:
    return out / strategy / f"seed{seed}"
