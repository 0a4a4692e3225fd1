"""Reinforcement learning: the PPO agent trained on canonical images and the closed-loop evaluation.

- :mod:`.config`: :class:`AgentConfig` and per-preset agent sizes.
- :mod:`.policy`: the agent's CNN.
- :mod:`.agent`: vectorized environments, training, the agent cache, loading.
- :mod:`.episodes`: seeded episode schedules, so every pipeline faces the same episodes.
- :mod:`.pipelines`: what the agent sees: raw, oracle or a VAE's reconstruction.
- :mod:`.evaluate`: success rate with a Wilson interval, and Fig. 6-like strips.
- :mod:`.matrix`: pipelines x domains, saved as CSV and JSON.
"""
