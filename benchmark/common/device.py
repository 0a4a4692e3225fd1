"""Device choice and CPU threading, shared by every command that runs a model."""

from __future__ import annotations

import os

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def available_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is a ``ValueError``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but no CUDA device is available; use --device auto or cpu")
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; valid: {', '.join(DEVICE_CHOICES)}")


def configure_threads() -> int:
    """Use one torch thread per available core; returns the count."""
    cores = available_cores()
    torch.set_num_threads(cores)
    return cores
