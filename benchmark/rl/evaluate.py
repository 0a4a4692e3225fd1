"""Closed-loop evaluation of an agent behind an observation pipeline: success rate and its interval.

:func:`run_episodes` steps a vectorized environment until episodes ``0 .. n-1`` of the
:class:`~benchmark.rl.episodes.SeededEpisodes` schedule are finished, with deterministic
actions, and returns one :class:`EpisodeOutcome` per episode. It can also keep the frames of
the first few episodes (what the environment rendered and what the agent saw) for strips
like the paper's Fig. 6.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from scipy import stats
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from benchmark.common.io import atomic_path
from benchmark.rl.pipelines import PipelineWrapper


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy's); ``(0, 1)`` when ``n = 0``."""
    if n == 0:
        return 0.0, 1.0
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def format_success(rate: float, ci: tuple[float, float] | list[float], episodes: int) -> str:
    """``"success 92.0% [95% CI 85.0-96.0] over 100 episodes"``."""
    low, high = ci
    return f"success {100 * rate:.1f}% [95% CI {100 * low:.1f}-{100 * high:.1f}] over {episodes} episodes"


class EpisodeOutcome(NamedTuple):
    episode_id: int
    success: bool
    final_distance: float
    """End-to-target distance (m) at the last step."""
    episode_return: float
    length: int


@dataclass
class EvalResult:
    """Outcomes of episodes ``0 .. n-1``, and the frames of the first few."""

    outcomes: list[EpisodeOutcome]
    frames: dict[int, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    """Episode id -> ``(rendered image, image the agent saw)`` per step."""

    @property
    def episodes(self) -> int:
        return len(self.outcomes)

    @property
    def success_rate(self) -> float:
        return sum(o.success for o in self.outcomes) / max(self.episodes, 1)

    @property
    def success_ci(self) -> tuple[float, float]:
        return wilson_interval(sum(o.success for o in self.outcomes), self.episodes)

    @property
    def mean_final_distance(self) -> float:
        return float(np.mean([o.final_distance for o in self.outcomes]))

    @property
    def mean_return(self) -> float:
        return float(np.mean([o.episode_return for o in self.outcomes]))

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (no per-episode rows)."""
        low, high = self.success_ci
        return {
            "episodes": self.episodes,
            "success_rate": self.success_rate,
            "success_ci95": [low, high],
            "mean_final_distance": self.mean_final_distance,
            "mean_return": self.mean_return,
            "mean_length": float(np.mean([o.length for o in self.outcomes])),
        }


INFERENCE_BATCH = 8
"""The agent acts on observations in batches of exactly this many (padded): its float results then do
not depend on how many environments step together (measured: batches of 1 and 3 differed by
~1e-9 in the actions, which changed episode figures in the 9th digit)."""


def predict(model: BaseAlgorithm, obs: np.ndarray, batch: int = INFERENCE_BATCH) -> np.ndarray:
    """``model``'s deterministic actions on ``obs`` ``(N, ...)``, computed in padded batches of ``batch``."""
    n = len(obs)
    if n == 0:
        return np.empty((0, *(model.action_space.shape or ())), dtype=np.float32)
    padded = np.concatenate([obs, np.zeros((-n % batch, *obs.shape[1:]), dtype=obs.dtype)])
    out = [model.predict(padded[i : i + batch], deterministic=True)[0] for i in range(0, len(padded), batch)]
    return np.concatenate(out)[:n]


def run_episodes(model: BaseAlgorithm, venv: VecEnv, episodes: int, record: int = 0) -> EvalResult:
    """Run episodes ``0 .. episodes-1`` of ``venv``'s schedule with ``model``'s deterministic actions.

    ``venv`` must be built by :func:`benchmark.rl.agent.make_vec_env` (possibly inside a
    pipeline wrapper); its schedules are restarted here, so the same call always plays the same
    episodes. ``record`` keeps the frames of episodes ``0 .. record-1``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    n = venv.num_envs
    base = venv.get_attr("_base", indices=[0])[0]
    for w in range(n):
        venv.env_method("set_schedule", base, w, n, indices=[w])
    outcomes: dict[int, EpisodeOutcome] = {}
    frames: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {i: [] for i in range(min(record, episodes))}
    obs = np.asarray(venv.reset())  # image observations: one array
    count = [1] * n  # episodes begun by each worker: worker w's current one is w + (count - 1) * n
    while len(outcomes) < episodes:
        ids = [w + (count[w] - 1) * n for w in range(n)]
        if frames:
            rendered = venv.last_inputs if isinstance(venv, PipelineWrapper) and venv.last_inputs is not None else obs
            for w, eid in enumerate(ids):
                if eid in frames:
                    frames[eid].append((np.array(rendered[w]), np.array(obs[w])))
        step_obs, _, dones, infos = venv.step(predict(model, obs))
        obs = np.asarray(step_obs)
        for w in map(int, np.flatnonzero(dones)):
            info = infos[w]
            if info["episode_id"] != ids[w]:
                raise RuntimeError(f"episode schedule out of step: {info['episode_id']} != {ids[w]}")
            if ids[w] < episodes:
                outcomes[ids[w]] = EpisodeOutcome(
                    ids[w], bool(info["is_success"]), info["distance"], info["episode_return"], info["episode_length"]
                )
            count[w] += 1
    return EvalResult([outcomes[i] for i in range(episodes)], frames)


def save_strip(frames: list[tuple[np.ndarray, np.ndarray]], path: str | os.PathLike[str], columns: int = 8) -> None:
    """Write a two-row strip: top, the rendered images; bottom, what the agent saw; ``columns`` evenly spaced steps."""
    if not frames:
        raise ValueError("no frames to save")
    picks = np.unique(np.linspace(0, len(frames) - 1, min(columns, len(frames))).round().astype(int))
    top = np.concatenate([frames[i][0] for i in picks], axis=1)
    bottom = np.concatenate([frames[i][1] for i in picks], axis=1)
    gap = np.full((2, top.shape[1], 3), 255, dtype=np.uint8)
    image = Image.fromarray(np.concatenate([top, gap, bottom], axis=0))
    image = image.resize((image.width * 2, image.height * 2), Image.Resampling.NEAREST)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
