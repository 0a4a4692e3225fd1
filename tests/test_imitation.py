"""The scripted teacher and the imitation trainer that the image agent learns from."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from benchmark.rl.agent import build_ppo, make_vec_env
from benchmark.rl.config import AGENT_SCENE, agent_config
from benchmark.rl.imitation import ImitationTrainer, actor_mean
from envs.reach_env import ReachConfig, ReachEnv
from envs.teacher import ScriptedReacher


@pytest.mark.parametrize("scene", [AGENT_SCENE, ReachConfig().scene], ids=["agent", "data"])
def test_teacher_goal_joints_put_the_end_on_the_target(scene):
    config = ReachConfig(scene=scene)
    teacher, env = ScriptedReacher(config), ReachEnv(config=config)
    limits = scene.joint_limits
    for seed in range(20):
        _, info = env.reset(seed=seed)
        goal = teacher.goal_joints(info["joints"], info["target"])
        assert np.all(goal >= limits[:, 0] - 1e-9) and np.all(goal <= limits[:, 1] + 1e-9)
        assert np.linalg.norm(env.renderer.end_position(goal) - info["target"]) < 1e-6
    env.close()


def test_teacher_reaches_every_target_within_the_episode_limit():
    config = agent_config("quick").env
    teacher, env = ScriptedReacher(config), ReachEnv(config=config)
    lengths = []
    for seed in range(15):
        _, info = env.reset(seed=100 + seed)
        terminated = truncated = False
        steps = 0
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(teacher.act_on_info(info))
            steps += 1
        assert info["is_success"], f"episode {seed} ended {info['distance']:.3f} m from the target"
        lengths.append(steps)
    assert max(lengths) <= 60
    env.close()


def test_teacher_prefers_the_nearer_of_two_joint_solutions():
    teacher = ScriptedReacher(ReachConfig())
    q = np.array([1.0, 0.7])  # its mirror (1.0 - pi, -0.7) is within the limits too
    target = np.array([teacher.length * np.sin(q[1]) * np.cos(q[0]), teacher.length * np.sin(q[1]) * np.sin(q[0]),
                       teacher.height + teacher.length * np.cos(q[1])])  # fmt: skip
    mirrored = np.array([q[0] - np.pi, -q[1]])
    assert np.allclose(teacher.goal_joints(q + 0.1, target), q)
    assert np.allclose(teacher.goal_joints(mirrored + 0.1, target), mirrored)
    assert np.allclose(teacher.act(q, target), 0.0)


def test_imitation_labels_the_teacher_actions_and_fitting_lowers_the_error():
    cfg = agent_config("smoke")
    venv = make_vec_env("canonical", cfg.env, 2, seed=3, processes=False)
    try:
        torch.manual_seed(0)
        model = build_ppo(cfg, venv, "cpu")
        trainer = ImitationTrainer(model, venv, cfg, progress=False)
        trainer.collect(120, learner=False, noise=0.0)
        assert trainer.frames >= 120
        # With no noise the teacher drives: replaying its labels from the same seeds gives the same frames.
        images, actions = np.concatenate(trainer.images), np.concatenate(trainer.actions)
        assert images.shape[1:] == (3, 64, 64) and images.dtype == np.uint8
        assert np.all(np.abs(actions) <= 1.0) and np.abs(actions).mean() > 0.1
        env = ReachEnv(config=cfg.env)
        _, info = env.reset(seed=3)  # worker 0's first episode
        assert np.allclose(actions[0], ScriptedReacher(cfg.env).act_on_info(info))
        env.close()
        losses = trainer.fit(6)
        assert losses[-1] < losses[0]
        with torch.no_grad():
            mean = actor_mean(model, torch.as_tensor(images[:4]).float())
        assert mean.shape == (4, 2)
        trainer.collect(40, learner=True, noise=0.1)
        assert trainer.frames >= 160
    finally:
        venv.close()


def test_method_choice_and_its_step_counts():
    assert agent_config("quick").method == "dagger" and agent_config("quick").total_timesteps == 0
    assert agent_config("quick", method="ppo").total_timesteps == 200_000
    assert agent_config("quick", method="ppo", total_timesteps=5).total_timesteps == 5
    assert agent_config("quick").env.scene.joint1_limits_deg == (0.0, 100.0)
    assert agent_config("quick", method="ppo").key() != agent_config("quick").key()
    with pytest.raises(ValueError, match="unknown training method"):
        agent_config("quick", method="sac")
    with pytest.raises(ValueError, match="needs total_timesteps"):
        agent_config("quick", method="ppo", total_timesteps=0)


class _FlatMapping:
    """A stand-in VAE whose every reconstruction is one grey level: easy to tell from a render."""

    def __init__(self, level: int) -> None:
        self.level, self.calls = level, 0

    def map_images(self, images: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.full_like(images, self.level)


def test_mapping_reconstructions_are_stored_driven_on_and_fitted_by_share(monkeypatch):
    cfg = agent_config("smoke")
    venv = make_vec_env("canonical", cfg.env, 2, seed=3, processes=False)
    seen: list[torch.Tensor] = []

    def spy(model, images):
        seen.append(images.clone())
        return actor_mean(model, images)

    monkeypatch.setattr("benchmark.rl.imitation.actor_mean", spy)
    try:
        torch.manual_seed(0)
        mapping = _FlatMapping(7)
        trainer = ImitationTrainer(build_ppo(cfg, venv, "cpu"), venv, cfg, False, mapping)  # type: ignore[arg-type]
        trainer.collect(20, learner=False, noise=0.0)
        assert len(trainer.mapped) == len(trainer.images) == mapping.calls and not seen  # the teacher drove
        assert all(np.all(m == 7) for m in trainer.mapped) and not any(np.all(i == 7) for i in trainer.images)
        trainer.collect(10, learner=True, noise=0.0)
        assert seen and all(torch.all(s == 7) for s in seen)  # the learner drives on the reconstruction

        fitted: list[torch.Tensor] = []
        monkeypatch.setattr("benchmark.rl.imitation.augment", lambda batch, *a, **k: fitted.append(batch) or batch)
        shares = {}
        for fraction in (0.0, 0.5, 1.0):
            trainer.cfg = dataclasses.replace(cfg, mapping_fraction=fraction)
            fitted.clear()
            trainer.fit(4)
            frames = torch.cat(fitted)
            shares[fraction] = (frames == 7).flatten(1).all(1).float().mean().item()
        assert shares[0.0] == 0.0 and shares[1.0] == 1.0 and 0.2 < shares[0.5] < 0.8
    finally:
        venv.close()
