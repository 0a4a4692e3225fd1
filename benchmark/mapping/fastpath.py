"""How the VAE computes: numeric precision, memory format and compilation, chosen once per run.

``--precision auto`` runs the VAE's forward passes under bf16 autocast where the hardware has
*fast* bf16 arithmetic (a CUDA device with bf16, a CPU with AMX tiles) and in fp32 elsewhere;
``fp32`` and ``bf16`` force one. A CPU with AVX512-BF16 but no AMX counts as "elsewhere": on
ours (2 cores, Xeon with AVX512-BF16, no AMX) bf16 training of this VAE ran at 0.75-0.79x of
fp32, autocast or pure bf16 weights alike (``bench/train.py``; the README, "Speed").
Autocast covers only the model's convolutions and linear layers:
:class:`~benchmark.mapping.vae.ConvVAE` returns its outputs as fp32, so the loss, its KL term and
every metric are computed in fp32. Weights and optimizer state stay fp32 (bf16
has fp32's exponent range, so no loss scaling is needed).

``channels_last`` stores the VAE's weights and inputs as NHWC, which oneDNN's and cuDNN's
convolutions prefer (on by default: 1.05-1.11x in fp32 on our CPU); ``compile`` wraps the
forward pass in ``torch.compile`` (off by default: 0.65x on our CPU). The defaults follow
``bench/train.py``'s measurements.

:class:`FloatBatches` is the data side of the fast path: the data sets hand out uint8 images
(4x less to collate and to copy to the device) and this plugin turns each whole minibatch into
float on the device, once, before the forward pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from avalanche.core import SupervisedPlugin

log = logging.getLogger("ciim.fastpath")
PRECISIONS = ("fp32", "bf16", "auto")


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` has fast bf16 arithmetic (see the module docstring), and why, for the log."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported(including_emulation=False)
        return ok, f"{torch.cuda.get_device_name(device)} {'has' if ok else 'lacks'} bf16"
    if device.type == "cpu":
        if torch.cpu._is_amx_tile_supported() and torch.backends.mkldnn.is_available():
            return True, "CPU with AMX"
        if torch.cpu._is_avx512_bf16_supported():
            return False, "CPU with AVX512-BF16 but no AMX, where bf16 measured slower than fp32"
        return False, "CPU without bf16 instructions"
    return False, f"no bf16 autocast on {device.type}"


@dataclass(frozen=True)
class FastPath:
    """The resolved choice: what the run records in ``config.json``."""

    precision: str = "fp32"
    """``fp32`` or ``bf16`` (never ``auto``: that is resolved against the device)."""
    channels_last: bool = False
    compile: bool = False
    reason: str = ""
    """Why this precision: what was asked and what the device has."""

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bf16" else None


def resolve_fast_path(
    precision: str, device: torch.device, channels_last: bool | None = None, compile: bool = False
) -> FastPath:
    """Resolve ``precision`` (``fp32``, ``bf16`` or ``auto``) for ``device``.

    ``channels_last=None`` means NHWC (measured faster). An explicit ``bf16`` on hardware without
    fast bf16 is honoured, with a warning.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    native, why = bf16_support(device)
    if precision == "auto":
        chosen, reason = ("bf16" if native else "fp32"), f"auto: {why}"
    else:
        chosen, reason = precision, f"asked for {precision}; {why}"
        if precision == "bf16" and not native:
            log.warning("precision: bf16 asked for on a %s; expect it slower than fp32", why)
    if channels_last is None:
        channels_last = True
    return FastPath(chosen, channels_last, compile, reason)


def apply_fast_path(model: Any, fast: FastPath) -> Any:
    """Set ``fast`` on a :class:`~benchmark.mapping.vae.ConvVAE` (in place) and return it."""
    model.autocast_dtype = fast.autocast_dtype
    model.channels_last = fast.channels_last
    if fast.channels_last:
        model.to(memory_format=torch.channels_last)
    if fast.compile:
        model.compile()  # in place: the state dict keeps its keys, so checkpoints stay portable
    return model


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float in ``[0, 1]``; float images unchanged."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


class FloatBatches(SupervisedPlugin):
    """Turns a minibatch's uint8 input and target images into float on the device, before the forward pass.

    It must come first among the plugins, so every other plugin and metric sees float images.
    """

    def _convert(self, strategy: Any) -> None:
        batch = strategy.mbatch
        for i in (0, 1):
            batch[i] = to_float_images(batch[i])

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        self._convert(strategy)

    def before_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        self._convert(strategy)
