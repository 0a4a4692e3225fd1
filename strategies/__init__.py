"""Continual-learning strategies for the VAE, each one builder function found by name.

Importing this package registers the built-in strategies, by family: the baselines ``single``,
``finetune`` and ``joint``; parameter regularisation ``ewc``, ``si`` and ``mas``; gradient
projection ``agem``; functional distillation ``lwf``; replay ``er``, ``mir``,
``der`` (DER++) and ``der-plain``. See :mod:`strategies.registry` to add one.
"""

# Registration order is the order of ``all`` and of the tables: by family.
from strategies import baselines, ewc, si, mas, agem, lwf, er, mir, der, der_plain  # noqa: F401, I001
from strategies.registry import (
    StrategyContext,
    StrategyEntry,
    available_strategies,
    get_strategy,
    register_strategy,
    unregister_strategy,
)

__all__ = [
    "StrategyContext",
    "StrategyEntry",
    "available_strategies",
    "get_strategy",
    "register_strategy",
    "unregister_strategy",
]
