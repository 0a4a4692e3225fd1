"""Agent agreement: does the agent act on a VAE's reconstruction as it acts on the canonical image?

A closed-loop proxy that needs no episodes: over a test set, the trained agent's deterministic
action on the reconstruction of each input is compared with its action on the canonical image
of the same scene. Two figures per (pipeline, test task):

- ``action_error``: the mean Euclidean distance between the two actions (actions lie in
  ``[-1, 1]^2``);
- ``wrong_sign``: the fraction of images where the action on the reconstruction turns at least
  one joint the other way from the action on the canonical image (joints the canonical action
  barely moves, ``|a| < SIGN_DEADBAND``, are not counted), the mistake that sends the arm away.

Only the test scenes whose arm pose lies in the agent's task are used (its shoulder stays on
one side, see :mod:`benchmark.rl.config`); the others are poses the agent never trained on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from benchmark.data.generate import StreamData
from benchmark.mapping.vae import ConvVAE
from benchmark.rl.evaluate import predict
from envs.renderer import SceneConfig

SIGN_DEADBAND = 0.05
"""Canonical actions smaller than this on a joint do not count for ``wrong_sign``."""


def compare_actions(seen: np.ndarray, canonical: np.ndarray) -> dict[str, float]:
    """``action_error`` and ``wrong_sign`` (module docstring) of actions ``seen`` vs actions on canonical images."""
    if len(seen) == 0:
        return {"images": 0, "action_error": float("nan"), "wrong_sign": float("nan")}
    error = np.linalg.norm(seen - canonical, axis=1)
    flipped = (np.sign(seen) != np.sign(canonical)) & (np.abs(canonical) >= SIGN_DEADBAND)
    return {
        "images": int(len(seen)),
        "action_error": float(error.mean()),
        "wrong_sign": float(flipped.any(axis=1).mean()),
    }


def in_agent_scene(aux: np.ndarray, scene: SceneConfig) -> np.ndarray:
    """Which scenes (auxiliary vectors ``(N, 5)``) have both joint angles within ``scene``'s limits."""
    limits = scene.joint_limits
    joints = aux[:, 3:5]
    return np.all((joints >= limits[:, 0]) & (joints <= limits[:, 1]), axis=1)


def agreement(
    model: BaseAlgorithm, vaes: dict[str, ConvVAE | None], data: StreamData, tasks: tuple[str, ...], scene: SceneConfig
) -> list[dict[str, Any]]:
    """One row per pipeline and test task: the agent on each pipeline's view of the test inputs vs on canonical images.

    ``vaes`` maps a pipeline label to its VAE, or to None for ``raw`` (the agent sees the input itself).
    """
    keep = in_agent_scene(data.test_aux, scene)
    canonical = data.test_targets[keep]
    reference = predict(model, canonical)  # as in the closed loop
    rows = []
    for label, vae in vaes.items():
        for t, task in enumerate(tasks):
            inputs = data.test_inputs[t][keep]
            seen = inputs if vae is None else vae.map_images(inputs)
            rows.append(
                {"pipeline": label, "task": t, "domain": task, **compare_actions(predict(model, seen), reference)}
            )
    return rows
