"""Observation pipelines: what the agent sees of a (vectorized) environment rendered in some domain.

- ``raw``: the domain's image as rendered (no wrapper).
- ``oracle``: :class:`OracleObservation`, the canonical render of the same state, the best a
  perfect image mapping could give.
- a VAE: :class:`VAEObservation`, the VAE's reconstruction of the domain's image, the paper's
  closed loop (the agent, trained on canonical images only, acts on the reconstruction).

Each is a stable-baselines3 ``VecEnvWrapper``, so the images of all environments go through
the VAE as one batch on the chosen device, and any SB3 model can act on it. Each keeps the
images it received in :attr:`PipelineWrapper.last_inputs` for the Fig. 6 strips.
"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from benchmark.mapping.vae import ConvVAE

RAW, ORACLE = "raw", "oracle"


class PipelineWrapper(VecEnvWrapper):
    """Replaces every observation batch with :meth:`transform` of it; subclasses define the transform."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.last_inputs: np.ndarray | None = None

    def transform(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _apply(self, obs: np.ndarray) -> np.ndarray:
        self.last_inputs = obs
        return self.transform(obs)

    def reset(self) -> np.ndarray:  # type: ignore[override]
        return self._apply(self.venv.reset())  # type: ignore[arg-type]

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        return self._apply(obs), rewards, dones, infos  # type: ignore[arg-type]


class OracleObservation(PipelineWrapper):
    """The agent sees the canonical render of each environment's current state."""

    def transform(self, obs: np.ndarray) -> np.ndarray:
        return np.stack(self.venv.env_method("render_state", "canonical"))


class VAEObservation(PipelineWrapper):
    """The agent sees the VAE's reconstruction (``decode(mu)``) of each image, as uint8 HWC.

    Args:
        venv: environments whose observations are ``(N, H, W, 3)`` uint8 images.
        vae: a trained :class:`~benchmark.mapping.vae.ConvVAE` of the same resolution.
        device: where the VAE runs; it is moved there.

    Raises ``ValueError`` when the VAE's resolution is not the environment's.
    """

    def __init__(self, venv: VecEnv, vae: ConvVAE, device: str | torch.device = "cpu") -> None:
        shape = tuple(venv.observation_space.shape or ())
        res = vae.config.resolution
        if shape != (res, res, 3):
            raise ValueError(
                f"the VAE maps {res}x{res} images but the environment renders {shape[0]}x{shape[1]}; "
                f"use a VAE trained at --resolution {shape[0]}"
            )
        super().__init__(venv)
        self.device = torch.device(device)
        self.vae = vae.to(self.device).eval()

    def transform(self, obs: np.ndarray) -> np.ndarray:
        return self.vae.map_images(obs)
