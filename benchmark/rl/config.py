"""Typed configuration of the RL agent: PPO hyperparameters, the task it learns, and presets.

An :class:`AgentConfig` holds everything that determines a trained agent, so its hash is the
agent's cache key (see :mod:`benchmark.rl.agent`). The agent always learns in the
``canonical`` domain; the domains it is evaluated in come later, through the VAE.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from envs.reach_env import ReachConfig
from envs.renderer import SceneConfig


@dataclass(frozen=True)
class AgentConfig:
    """PPO on 64x64 canonical images (Schulman et al. 2017, as in stable-baselines3)."""

    preset: str = "quick"
    """Name of the preset this config came from (kept with the agent, part of its key)."""
    total_timesteps: int = 200_000
    """Environment steps of training, over all environments."""
    n_envs: int = 4
    """Environments stepped together; each runs in its own process where there is more than one core.
    Part of the key because it changes the rollouts, so the same config gives the same agent anywhere."""
    seed: int = 0
    env: ReachConfig = field(default_factory=lambda: ReachConfig(max_steps=100))
    """The reaching task. Episodes are cut at 100 steps: a controller that knows the joint angles
    needs at most 53 (13.5 on average)."""
    n_steps: int = 256
    """Rollout length per environment between updates."""
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 1e-3
    """Above SB3's 3e-4: with the state as input, 1e-3 reached 40% success at 200k steps, 3e-4 24%."""
    gamma: float = 0.95
    """Below SB3's 0.99: a reach takes about 25 steps, and 0.95 learned faster than 0.98 here."""
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    log_std_init: float = -1.0
    """Initial log standard deviation of the Gaussian policy (SB3: 0); smaller noise helps the 5 cm precision."""
    features_dim: int = 128
    """Width of the CNN's output (see :class:`benchmark.rl.policy.CoordCNN`)."""
    pretrain_images: int = 3000
    """Canonical images the CNN is first trained on to regress the scene state (0: no warm start);
    see :mod:`benchmark.rl.pretrain`."""
    pretrain_epochs: int = 15
    pretrain_lr: float = 1e-3
    eval_freq: int = 20_000
    """Environment steps between the evaluation callback's checks during training."""
    eval_episodes: int = 20
    """Episodes per check of the evaluation callback."""
    final_episodes: int = 100
    """Episodes of the canonical evaluation stored with the trained agent."""

    def __post_init__(self) -> None:
        if self.pretrain_images < 0 or self.pretrain_epochs < 0:
            raise ValueError("pretrain_images and pretrain_epochs must not be negative")
        for name in ("total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "eval_freq"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.gamma <= 1 or not 0 < self.gae_lambda <= 1:
            raise ValueError("gamma and gae_lambda must be in (0, 1]")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")

    @property
    def resolution(self) -> int:
        return self.env.scene.resolution

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentConfig:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        env = dict(values.pop("env"))
        scene: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in env.pop("scene").items()}
        return cls(env=ReachConfig(scene=SceneConfig(**scene), **env), **values)

    def key(self) -> str:
        """Cache folder name: the preset, the resolution and a hash of every field."""
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.preset}-r{self.resolution}-s{self.seed}-{digest}"


AGENT_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(total_timesteps=256, n_envs=2, n_steps=64, batch_size=64, n_epochs=1, eval_freq=128,
                  eval_episodes=2, final_episodes=4, env=ReachConfig(max_steps=20), pretrain_images=64,
                  pretrain_epochs=1),
    "quick": {},
    "paper": dict(total_timesteps=1_000_000),
}  # fmt: skip
"""Overrides of :class:`AgentConfig`'s defaults per benchmark preset."""

EVAL_EPISODES: dict[str, int] = {"smoke": 4, "quick": 100, "paper": 100}
"""Episodes per cell of the evaluation matrix, per preset."""


def agent_config(preset: str, resolution: int = 64, seed: int = 0, **overrides: Any) -> AgentConfig:
    """The agent config of ``preset`` at ``resolution``; ``overrides`` that are not None replace fields."""
    if preset not in AGENT_PRESETS:
        raise KeyError(f"unknown preset {preset!r}; valid presets: {', '.join(AGENT_PRESETS)}")
    values: dict[str, Any] = {"preset": preset, "seed": seed, **AGENT_PRESETS[preset]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    env: ReachConfig = values.get("env", AgentConfig().env)
    values["env"] = dataclasses.replace(env, scene=dataclasses.replace(env.scene, resolution=resolution))
    return AgentConfig(**values)
