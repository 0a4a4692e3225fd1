"""Continual-learning strategies for the VAE, each one builder function found by name.

Importing this package registers the built-in strategies: ``single``, ``finetune``,
``joint``, ``er`` and ``der``. See :mod:`strategies.registry` to add one.
"""

from strategies import baselines, der, er  # noqa: F401  (registers the built-in strategies)
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
