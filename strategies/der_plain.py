"""Plain dark experience replay (Buzzega et al., NeurIPS 2020): DER without the ``++`` term.

The same plugin as ``der`` (:mod:`strategies.der`) with ``der_beta`` 0: only the stored
outputs are distilled, no stored target is replayed through Eq. 1, so the tables show what
the ``++`` term adds. ``der_alpha`` keeps its value (mammoth's ``der`` and ``derpp`` share it).
"""

from __future__ import annotations

from avalanche.training import Naive
from avalanche.training.templates import SupervisedTemplate

from strategies.der import DERPlugin
from strategies.registry import StrategyContext, register_strategy


@register_strategy("der-plain", reads=("mem_size", "der_alpha"))
def der_plain(ctx: StrategyContext) -> SupervisedTemplate:
    """Dark experience replay without the ++ term: distil stored outputs only."""
    cfg = ctx.config
    plugin = DERPlugin(ctx.criterion, cfg.mem_size, cfg.batch_size, cfg.der_alpha, 0.0, ctx.seed)
    return Naive(**ctx.template_kwargs(plugin))
