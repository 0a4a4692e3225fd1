"""Reproducible evaluation episodes: every episode has an id, and the id fixes its seed.

Evaluating one agent behind different observation pipelines (oracle, raw, each VAE) is only
a fair comparison if every pipeline faces the same start states and targets. Episode lengths
differ between pipelines, so relying on the environment's running random stream would not
do. :class:`SeededEpisodes` resets episode ``k`` of worker ``w`` (of ``n``) with seed
``base + w + k * n``: the id ``w + k * n`` names the same episode in every pipeline, whatever
order the workers finish in. It also keeps the episode's return and length in float64 (vectorized
environments pass rewards on as float32 or float64 depending on their kind).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class SeededEpisodes(gym.Wrapper[np.ndarray, np.ndarray, np.ndarray, np.ndarray]):
    """Resets with a seed taken from a fixed schedule; puts ``episode_id`` into every ``info``."""

    def __init__(self, env: gym.Env, base_seed: int = 0, worker: int = 0, workers: int = 1) -> None:
        super().__init__(env)
        self.set_schedule(base_seed, worker, workers)
        self._episode_id, self._return, self._length = -1, 0.0, 0

    def set_schedule(self, base_seed: int, worker: int, workers: int) -> None:
        """Restart the schedule: the next reset is episode ``worker``, then ``worker + workers``..."""
        if not 0 <= worker < workers:
            raise ValueError(f"worker must be in [0, {workers}), got {worker}")
        self._base, self._worker, self._workers, self._count = base_seed, worker, workers, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        self._episode_id = self._worker + self._count * self._workers
        self._count += 1
        self._return, self._length = 0.0, 0
        obs, info = self.env.reset(seed=self._base + self._episode_id, options=options)
        return obs, {**info, "episode_id": self._episode_id}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._length += 1
        extra = {"episode_id": self._episode_id, "episode_return": self._return, "episode_length": self._length}
        return obs, float(reward), terminated, truncated, {**info, **extra}
