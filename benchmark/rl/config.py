"""Typed configuration of the RL agent: how it is trained, the task it learns, and presets.

An :class:`AgentConfig` holds everything that determines a trained agent, so its hash is the
agent's cache key (see :mod:`benchmark.rl.agent`). The agent always learns in the
``canonical`` domain; the domains it is evaluated in come later, through the VAE.

The agent's task differs from the data sets' scenes in one respect: its shoulder joint stays
on one side (0 to 100 degrees instead of -100 to 100). Seen from above, the arm poses
``(q0, q1)`` and ``(q0 +/- pi, -q1)`` are the same line from the base to the same end point;
only a few pixels of link texture tell them apart, yet the joint-1 command that moves the end
towards the target has opposite signs in the two. With both signs allowed the image does not
determine the right action: imitation from images stalled at 55% success over 100 episodes,
and with one side the same training reached 96%. Every end position is still reachable, and
the VAEs, trained on both signs, see a subset of their training poses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmark.mapping.vae import vae_file
from envs.reach_env import ReachConfig
from envs.renderer import SceneConfig

METHODS = ("dagger", "ppo")
"""Ways to train the agent: imitation of the scripted teacher (then optional PPO), or PPO alone."""
AGENT_SCENE = SceneConfig(joint1_limits_deg=(0.0, 100.0))
"""The agent's scene: the data sets' scene with the shoulder on one side (see the module docstring)."""


@dataclass(frozen=True)
class AgentConfig:
    """A stable-baselines3 PPO image policy on 64x64 canonical images, trained by ``method``.

    ``dagger``: behaviour cloning and DAgger from a privileged scripted teacher
    (:mod:`benchmark.rl.imitation`), then ``total_timesteps`` of PPO (none by default).
    ``ppo``: PPO (Schulman et al. 2017) alone for ``total_timesteps``, after a supervised warm
    start of the CNN (:mod:`benchmark.rl.pretrain`).
    """

    preset: str = "quick"
    """Name of the preset this config came from (kept with the agent, part of its key)."""
    method: str = "dagger"
    """``dagger`` or ``ppo``; see the class docstring."""
    total_timesteps: int = 0
    """Environment steps of PPO, over all environments (after imitation for ``dagger``)."""
    n_envs: int = 4
    """Environments stepped together; each runs in its own process where there is more than one core.
    Part of the key because it changes the rollouts, so the same config gives the same agent anywhere."""
    seed: int = 0
    env: ReachConfig = field(default_factory=lambda: ReachConfig(scene=AGENT_SCENE, max_steps=100))
    """The reaching task, shoulder on one side. Episodes are cut at 100 steps: the scripted teacher
    needs at most 53 (13.5 on average)."""
    teacher_frames: int = 20_000
    """``dagger``: frames driven by the teacher (with ``teacher_noise``) for behaviour cloning."""
    teacher_noise: float = 0.3
    """Standard deviation of the Gaussian noise added to the teacher's actions while it drives (DART)."""
    dagger_rounds: int = 4
    """Rounds in which the policy drives and the teacher labels what it visits."""
    dagger_frames: int = 8_000
    """Frames added per DAgger round."""
    dagger_noise: float = 0.1
    """Noise added to the policy's actions while it drives in a DAgger round."""
    bc_epochs: int = 15
    """Epochs over the teacher's frames before the first DAgger round."""
    dagger_epochs: int = 5
    """Epochs over all frames after each DAgger round."""
    bc_lr: float = 1e-3
    bc_batch_size: int = 128
    augment_blur: float = 1.5
    """Imitation: each training frame is blurred with a Gaussian of sigma drawn from ``[0, augment_blur]``
    pixels (0: no blur). The agent still learns from canonical renders only; the blur teaches it
    to ignore what a VAE's reconstruction lacks in sharpness (unaugmented, a blur of sigma 0.8
    took it from 96% to 57% canonical success). See :func:`benchmark.rl.imitation.augment`."""
    augment_grow: int = 0
    """Imitation: the target and the arm of each training frame are grown into the floor by up to this
    many pixels (each by its own draw from ``0..augment_grow``; 0: never). A VAE draws the target a
    pixel or so too wide, and a target grown by one pixel turns the default agent's joint the wrong
    way on 15% of the canonical test images; but the agent trained with ``augment_grow=2`` reached
    85% canonical success alone (against 99%) and did no better through the VAEs, so it is off
    (README, "The agent and the closed loop")."""
    augment_colour: float = 0.03
    """Imitation: standard deviation of a per-image, per-channel gain and offset and of per-pixel noise
    (fractions of the intensity range) added to each training frame (0: none)."""
    mapping: str = ""
    """Imitation: a trained VAE (``model.pt`` or its run folder) whose reconstructions of the *canonical*
    frames the agent also learns from ("" : none). A fraction ``mapping_fraction`` of the frames it is
    fitted to are replaced by ``decode(mu)`` of the canonical frame, and in the DAgger rounds it drives
    on the reconstruction, so it visits the states it reaches in the closed loop and the teacher labels
    them. It never sees a task domain. Meant for a Task-0 (canonical-only) VAE; see
    :mod:`benchmark.rl.imitation`. The key holds the file's digest (:attr:`mapping_digest`), not the path."""
    mapping_digest: str = ""
    """SHA-256 of the :attr:`mapping` file, filled in by :func:`agent_config`; the agent's key uses it."""
    mapping_fraction: float = 0.5
    """Share of the fitted frames replaced by the mapping's reconstruction when :attr:`mapping` is set."""
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
        if self.method not in METHODS:
            raise ValueError(f"unknown training method {self.method!r}; valid: {', '.join(METHODS)}")
        if self.method == "ppo" and self.total_timesteps < 1:
            raise ValueError("method ppo needs total_timesteps of at least 1")
        for name in (
            "pretrain_images", "pretrain_epochs", "total_timesteps", "dagger_rounds", "dagger_frames", "augment_blur",
            "augment_colour", "augment_grow",
        ):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("n_envs", "n_steps", "batch_size", "n_epochs", "eval_freq", "bc_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.gamma <= 1 or not 0 < self.gae_lambda <= 1:
            raise ValueError("gamma and gae_lambda must be in (0, 1]")
        if self.learning_rate <= 0 or self.bc_lr <= 0:
            raise ValueError("learning_rate and bc_lr must be positive")
        if self.method == "dagger" and (self.teacher_frames < 1 or self.bc_epochs < 1):
            raise ValueError("method dagger needs teacher_frames and bc_epochs of at least 1")
        if not 0 <= self.mapping_fraction <= 1:
            raise ValueError(f"mapping_fraction must be in [0, 1], got {self.mapping_fraction}")
        if self.mapping and (self.method != "dagger" or not self.mapping_digest):
            raise ValueError("a mapping needs method dagger and its file's digest (use agent_config)")

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
        """Cache folder name: the preset, the resolution and a hash of every field.

        Fields added after agents were cached (:data:`KEY_OPTIONAL`) enter the hash only when they
        differ from their off value, so adding an option keeps every cached agent valid.
        """
        fields = {
            k: v for k, v in self.to_dict().items() if KEY_OPTIONAL.get(k, object()) != v and k not in KEY_EXCLUDED
        }
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.preset}-r{self.resolution}-s{self.seed}-{digest}"

    def family(self) -> str:
        """The :meth:`key` of this configuration trained through no mapping.

        Agents that differ only in the Task-0 model they were trained through (``--agent task0``:
        one per seed of a sweep) share it, so the report pools their matrices over seeds."""
        return replace(self, mapping="", mapping_digest="").key()


KEY_OPTIONAL: dict[str, Any] = {"augment_grow": 0, "mapping_digest": "", "mapping_fraction": 0.5}
"""Fields left out of :meth:`AgentConfig.key` at these values (see there)."""
KEY_EXCLUDED = frozenset({"mapping"})
"""Fields never in :meth:`AgentConfig.key`: the mapping's path (its digest is), so a moved file keeps its agent."""


def file_digest(path: str | Path) -> str:
    """SHA-256 of a VAE file, given as the file or the run folder holding its ``model.pt``."""
    return hashlib.sha256(vae_file(path).read_bytes()).hexdigest()


AGENT_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(total_timesteps=128, n_envs=2, n_steps=64, batch_size=64, n_epochs=1, eval_freq=128,
                  eval_episodes=2, final_episodes=4, env=ReachConfig(scene=AGENT_SCENE, max_steps=20),
                  pretrain_images=64, pretrain_epochs=1, teacher_frames=64, dagger_rounds=1, dagger_frames=32,
                  bc_epochs=1, dagger_epochs=1),
    "quick": {},
    "paper": dict(dagger_rounds=8, dagger_frames=16_000, teacher_frames=40_000),
}  # fmt: skip
"""Overrides of :class:`AgentConfig`'s defaults per benchmark preset."""
MAPPING_AGENT_PRESETS: dict[str, dict[str, Any]] = {"quick": dict(dagger_rounds=8)}
"""Further overrides, per preset, for an agent trained through a mapping (``train --mapping``,
``--agent task0``). Four rounds teach it the renders (80-82%) but not the reconstructions: played
through its Task-0 model its rounds stay at 65-70%, and jump to 95% from the sixth round on; with
8 rounds it reaches 97% alone and 86% through Task 0, against 82% / 76% with 4 (seed 0, 6,000
images per task; README, "Three times the images, and eight DAgger rounds"). It doubles the
agent's training time (about 50 min on two cores)."""
PPO_TIMESTEPS: dict[str, int] = {"smoke": 256, "quick": 200_000, "paper": 1_000_000}
"""PPO steps per preset when ``method`` is ``ppo`` and no step count is given."""

EVAL_EPISODES: dict[str, int] = {"smoke": 4, "quick": 100, "paper": 100}
"""Episodes per cell of the evaluation matrix, per preset."""


TASK0_AGENT = "task0"
"""``--agent task0`` (``benchmark.run --rl``): instead of a folder, the preset's agent trained through the
run's own shared Task-0 model (``train --mapping``), trained after the VAEs if it is not cached. With
``--freeze-decoder`` the final models keep that model's decoder, so the agent sees the reconstructions
it learnt from (README, "A frozen decoder, and the agent trained through Task 0")."""


def agent_folder(path: str | os.PathLike[str]) -> Path:
    """The trained agent folder a user means by ``path``: the folder itself, or the one holding a ``model.zip``."""
    path = Path(path)
    return path.parent if path.suffix == ".zip" else path


def matrix_folder(runs: Path, preset: str, agent: Path | None = None) -> Path:
    """Where the evaluation matrix of ``runs`` goes: ``<runs>/rl_eval/<preset>`` through the preset's
    agent, ``<runs>/rl_eval/<agent folder's name>`` through the agent folder ``agent``, so that the
    matrices of two agents (say the default one and one trained with ``--mapping``) sit side by side
    instead of one overwriting the other."""
    name = preset if agent is None else agent_folder(agent).resolve().name
    return runs / "rl_eval" / name


def agent_config(preset: str, resolution: int = 64, seed: int = 0, **overrides: Any) -> AgentConfig:
    """The agent config of ``preset`` at ``resolution``; ``overrides`` that are not None replace fields."""
    if preset not in AGENT_PRESETS:
        raise KeyError(f"unknown preset {preset!r}; valid presets: {', '.join(AGENT_PRESETS)}")
    values: dict[str, Any] = {"preset": preset, "seed": seed, **AGENT_PRESETS[preset]}
    if overrides.get("mapping"):
        values.update(MAPPING_AGENT_PRESETS.get(preset, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("method") == "ppo" and overrides.get("total_timesteps") is None:
        values["total_timesteps"] = PPO_TIMESTEPS[preset]
    if values.get("mapping"):
        values["mapping"] = str(values["mapping"])
        values["mapping_digest"] = file_digest(values["mapping"])
    env: ReachConfig = values.get("env", AgentConfig().env)
    values["env"] = dataclasses.replace(env, scene=dataclasses.replace(env.scene, resolution=resolution))
    return AgentConfig(**values)
