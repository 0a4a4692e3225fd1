"""Gymnasium environment: reach a target with the first two joints of a KUKA iiwa, seen from above.

The observation is a top-view RGB image rendered in any registered visual domain, so the
same environment serves the canonical agent, domain-randomized evaluation and the held-out
realistic proxy. The action commands the velocities of joints 0 and 1, normalised to
``[-1, 1]`` and scaled by ``max_joint_velocity``; they are integrated kinematically over
``control_dt`` (the arm has no dynamics to learn here, and kinematic integration keeps every
step exactly reproducible). Joints 2-6 stay at the rest pose.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np

from envs.domains import Appearance, get_domain
from envs.renderer import Renderer, SceneConfig, SceneState


@dataclass(frozen=True)
class ReachConfig:
    """Task parameters of :class:`ReachEnv`."""

    scene: SceneConfig = field(default_factory=SceneConfig)
    """Camera, resolution, joint ranges and rest pose."""
    max_joint_velocity: float = 1.0
    """Joint speed (rad/s) that an action of magnitude 1 commands."""
    control_dt: float = 0.1
    """Seconds per environment step."""
    success_distance: float = 0.05
    """End-to-target distance (m) under which the episode succeeds and terminates."""
    max_steps: int = 200
    """Steps after which the episode is truncated."""

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be positive, got {self.max_steps}")
        if self.max_joint_velocity <= 0 or self.control_dt <= 0 or self.success_distance <= 0:
            raise ValueError("max_joint_velocity, control_dt and success_distance must be positive")


class ReachEnv(gym.Env[np.ndarray, np.ndarray]):
    """Target reaching from images; see the module docstring.

    Args:
        domain: name of the visual domain the observation is rendered in.
        config: task parameters.
        render_mode: ``None`` or ``"rgb_array"`` (returns the current observation).

    The domain's scene appearance (camera jitter, floor, light) is drawn once per episode,
    as a real camera does not move between frames; its post-processing noise is drawn
    afresh for every frame. All randomness comes from the environment's ``np_random``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self, domain: str = "canonical", config: ReachConfig | None = None, render_mode: str | None = None
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = config or ReachConfig()
        self.domain_name = domain
        self.domain = get_domain(domain)
        self.render_mode = render_mode
        res = self.config.scene.resolution
        self.observation_space = gym.spaces.Box(0, 255, (res, res, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self._renderer: Renderer | None = None
        self._joints = np.zeros(2)
        self._target = np.zeros(3)
        self._appearance: Appearance | None = None
        self._steps = 0
        self._obs: np.ndarray | None = None

    @property
    def renderer(self) -> Renderer:
        """The PyBullet renderer, created on first use (one client per environment)."""
        if self._renderer is None:
            self._renderer = Renderer(self.config.scene)
        return self._renderer

    @property
    def state(self) -> SceneState:
        """The current scene state (joint angles and target position)."""
        j, t = self._joints, self._target
        return SceneState(joints=(float(j[0]), float(j[1])), target=(float(t[0]), float(t[1]), float(t[2])))

    def render_state(self, domain: str = "canonical", rng: np.random.Generator | None = None) -> np.ndarray:
        """Render the current state in another domain (canonical by default), e.g. for an oracle.

        The other domain's appearance is drawn from ``rng`` (default: a fixed generator), never
        from the environment's own stream, so calling this does not change later episodes.
        """
        other = get_domain(domain)
        appearance = other.sample(rng if rng is not None else np.random.default_rng(0))
        return self.renderer.render([self.state], other, [appearance])[0]

    def _observe(self) -> np.ndarray:
        assert self._appearance is not None
        if self.domain.effects:
            seed = int(self.np_random.integers(0, 2**31 - 1))
            self._appearance = replace(self._appearance, noise_seed=seed)
        self._obs = self.renderer.render([self.state], self.domain, [self._appearance])[0]
        return self._obs

    def _info(self, distance: float) -> dict[str, Any]:
        return {
            "distance": distance,
            "is_success": distance < self.config.success_distance,
            "joints": self._joints.copy(),
            "target": self._target.copy(),
        }

    def _distance(self) -> float:
        return float(np.linalg.norm(self.renderer.end_position(self._joints) - self._target))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        start = self.renderer.sample_state(self.np_random)
        self._joints = np.array(start.joints)
        self._target = np.array(start.target)
        self._appearance = self.domain.sample(self.np_random)
        self._steps = 0
        return self._observe(), self._info(self._distance())

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._appearance is None:
            raise RuntimeError("call reset() before step()")
        cfg = self.config
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        limits = cfg.scene.joint_limits
        self._joints = np.clip(
            self._joints + action * cfg.max_joint_velocity * cfg.control_dt, limits[:, 0], limits[:, 1]
        )
        self._steps += 1
        distance = self._distance()
        info = self._info(distance)
        terminated = bool(info["is_success"])
        truncated = self._steps >= cfg.max_steps and not terminated
        return self._observe(), -distance, terminated, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode == "rgb_array":
            return None if self._obs is None else self._obs.copy()
        return None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
