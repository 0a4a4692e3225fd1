"""A scripted reaching controller that knows the state: the teacher the image agent imitates.

Only joints 0 and 1 move and the rest of the arm is straight, so the arm's end lies on a
sphere of radius ``L`` around the shoulder at height ``h``:
``end = (L sin q1 cos q0, L sin q1 sin q0, h + L cos q1)``. Inverting that gives the joint
angles of a target in closed form, and a proportional joint-velocity command towards them,
saturated at the action bound, reaches every target of the environment (100% of 100 episodes,
13.5 steps on average at the default settings). The controller reads the joint angles and the
target from the environment's ``info``, which a camera-only agent never sees: it is a
*privileged* teacher for imitation learning, not an agent of the benchmark.

``L`` and ``h`` are measured from the renderer's own forward kinematics, not typed in, so the
controller follows the URDF and the rest pose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.reach_env import ReachConfig
from envs.renderer import Renderer


class ScriptedReacher:
    """Closed-form inverse kinematics plus a proportional joint-velocity command.

    Args:
        config: the task (joint limits, joint speed, control period) the actions are for.

    Of the two joint solutions of a target, ``(phi, theta)`` and ``(phi +/- pi, -theta)``, it
    heads for the one within the joint limits that is nearer to the current joints.
    """

    def __init__(self, config: ReachConfig | None = None) -> None:
        self.config = config or ReachConfig()
        renderer = Renderer(self.config.scene)
        try:
            straight_up = renderer.end_position((0.0, 0.0))
            sideways = renderer.end_position((0.0, math.pi / 2))
        finally:
            renderer.close()
        self.length = float(sideways[0])
        self.height = float(sideways[2])
        if not np.allclose(straight_up, (0.0, 0.0, self.height + self.length), atol=1e-3):
            raise ValueError("the scripted teacher needs the arm straight beyond joint 1 (rest pose of zeros)")
        self.limits = self.config.scene.joint_limits
        self.step_size = self.config.max_joint_velocity * self.config.control_dt

    def goal_joints(self, joints: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The joint angles that put the arm's end on ``target``, nearest to ``joints`` within the limits."""
        x, y, z = (float(v) for v in target)
        theta = math.atan2(math.hypot(x, y), z - self.height)
        phi = math.atan2(y, x)
        mirrored = phi - math.pi if phi > 0 else phi + math.pi
        low, high = self.limits[:, 0], self.limits[:, 1]
        candidates = [
            q for q in (np.array([phi, theta]), np.array([mirrored, -theta])) if np.all((q >= low) & (q <= high))
        ]
        if not candidates:  # a target out of reach: head for the nearest point of the limits
            candidates = [np.clip(np.array([phi, theta]), low, high)]
        return min(candidates, key=lambda q: float(np.abs(q - joints).sum()))

    def act(self, joints: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Normalised action in ``[-1, 1]^2`` towards :meth:`goal_joints`."""
        goal = self.goal_joints(np.asarray(joints, dtype=np.float64), np.asarray(target, dtype=np.float64))
        return np.clip((goal - joints) / self.step_size, -1.0, 1.0).astype(np.float32)

    def act_on_info(self, info: Mapping[str, Any]) -> np.ndarray:
        """:meth:`act` on the ``joints`` and ``target`` of a :class:`~envs.reach_env.ReachEnv` info dict."""
        return self.act(np.asarray(info["joints"]), np.asarray(info["target"]))
