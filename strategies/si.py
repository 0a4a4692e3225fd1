"""Synaptic intelligence (Zenke et al., ICML 2017) with Avalanche's ``SynapticIntelligencePlugin``.

SI estimates each parameter's importance online, from the path integral of the gradient of
the training loss along the parameter's trajectory during an experience. The plugin reads
only the gradients and weights of each step, never the criterion, so it works with Eq. 1 as
it is, auxiliary term included (the gradients are those of the whole training loss).

Because the importance of Task 0 needs Task 0's trajectory, SI trains its own Task-0 model
with the plugin watching (``shares_task0=False``) rather than starting from the shared one;
on the first experience the plugin's penalty is zero, so that model is the shared model's
twin. The plugin's state (anchors, importances, running path integrals) is checkpointed for
``--resume``.

``si_lambda`` 1 and ``si_eps`` 0.1: ContinualAI's continual-learning-baselines,
``experiments/split_mnist/synaptic_intelligence.py``. Avalanche clips each importance at
0.001 (its ``update_ewc_data``), which we keep. Avalanche's weight snapshots share memory
with the model on a CPU, which makes its SI do nothing there; :class:`SI` fixes that.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training import Naive
from avalanche.training.plugins import SynapticIntelligencePlugin
from avalanche.training.templates import SupervisedTemplate

from strategies.param_state import params_from_state, params_state
from strategies.registry import StrategyContext, register_strategy


class SI(SynapticIntelligencePlugin):
    """Avalanche's SI with its weight snapshots copied, and a state that survives ``--resume``.

    Avalanche snapshots the weights with ``param.detach().cpu().flatten()``, which on a CPU
    returns the parameter's own storage for a contiguous parameter rather than a copy: the
    "old" weights then move with the model, the path integral of every such parameter is
    zero, and the anchor of each experience is the live weights, so the penalty is always
    zero (measured: all importances 0 after three steps on the CPU). The snapshots taken
    before an experience and before each step are cloned here; the rest is Avalanche's.
    """

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)
        _own_copies(self.ewc_data[0])

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_iteration(strategy, **kwargs)
        _own_copies(self.syn_data["old_theta"])

    def state_dict(self) -> dict[str, Any]:
        return {"ewc_data": params_state(dict(enumerate(self.ewc_data))), "syn_data": params_state(self.syn_data)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        # Avalanche keeps SI's state on the CPU whatever the strategy's device (see its extract_weights).
        ewc = params_from_state(state["ewc_data"], "cpu")
        self.ewc_data = (ewc[0], ewc[1])
        self.syn_data = params_from_state(state["syn_data"], "cpu")


def _own_copies(snapshot: dict[str, Any]) -> None:
    for item in snapshot.values():
        item.data = item.data.clone()


@register_strategy("si", shares_task0=False, reads=("si_lambda", "si_eps"))
def si(ctx: StrategyContext) -> SupervisedTemplate:
    """Synaptic intelligence: a pull towards earlier weights, weighted by each one's share of the loss's descent."""
    return Naive(**ctx.template_kwargs(SI(ctx.config.si_lambda, eps=ctx.config.si_eps)))
