"""Checkpointing the per-parameter state of Avalanche's regularisation plugins (``ParamData`` dicts).

EWC, MAS and SI keep anchors and importances as dicts of Avalanche ``ParamData``; for
``--resume`` they are saved as plain CPU tensors and rebuilt on the run's device.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training.utils import ParamData


def params_state(params: dict[Any, Any]) -> dict[Any, Any]:
    """A (nested) dict of ``ParamData`` with every leaf as a CPU tensor."""
    return {
        k: v.data.detach().cpu() if isinstance(v, ParamData) else params_state(v) if isinstance(v, dict) else v
        for k, v in params.items()
    }


def params_from_state(state: dict[Any, Any], device: Any) -> dict[Any, Any]:
    """Inverse of :func:`params_state`: every tensor leaf becomes a ``ParamData`` on ``device``."""
    return {
        k: ParamData(str(k), tuple(v.shape), init_tensor=v, device=device)
        if isinstance(v, torch.Tensor)
        else params_from_state(v, device)
        for k, v in state.items()
    }
