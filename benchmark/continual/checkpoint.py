"""Per-experience checkpoints and the random-number state that makes ``--resume`` exact.

Avalanche 0.6.0's ``save_checkpoint`` pickles the whole strategy with dill (datasets
included) and fails under torch 2.14 (dill cannot find ``torch.optim.sgd`` by reference), so
a checkpoint here is a plain ``torch.save`` of what a resumed run needs: model and optimizer
state, the loss's iteration counter, plugin states, Avalanche's clock, the log snapshot, the
rows of the results matrices so far, and the global RNG states (Avalanche's data loaders shuffle
with torch's global generator).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.common.io import atomic_path


def rng_state() -> dict[str, Any]:
    """The global RNG states of Python, NumPy and torch (CPU and CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed the global generators once, at the start of a run (library code never does this)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write a checkpoint atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (a file this benchmark wrote itself)."""
    return torch.load(Path(path), map_location="cpu", weights_only=False)
