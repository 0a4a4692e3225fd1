"""The reaching environment: both env checkers, determinism, rewards, limits."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs import ENV_ID, ReachConfig, ReachEnv, available_domains


@pytest.mark.parametrize("domain", available_domains())
def test_env_checkers(domain):
    env = ReachEnv(domain=domain)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(ReachEnv(domain=domain), warn=True)
    env.close()


def test_registered_id_makes_the_env():
    env = gym.make(ENV_ID, domain="noisy", max_episode_steps=None)
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert isinstance(env.unwrapped, ReachEnv) and env.unwrapped.domain_name == "noisy"
    env.close()


@pytest.mark.parametrize("domain", available_domains())
def test_same_seed_same_bytes(domain):
    def rollout(seed):
        env = ReachEnv(domain=domain)
        obs, _ = env.reset(seed=seed)
        frames = [obs]
        for a in np.linspace(-1, 1, 6):
            frames.append(env.step(np.array([a, -a], dtype=np.float32))[0])
        env.close()
        return np.stack(frames)

    first, second = rollout(7), rollout(7)
    assert first.tobytes() == second.tobytes()
    assert rollout(8).tobytes() != first.tobytes()


def test_reward_is_negative_distance_and_info():
    env = ReachEnv()
    _, info = env.reset(seed=1)
    _, reward, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
    assert reward == pytest.approx(-info["distance"])
    assert info["is_success"] == (info["distance"] < env.config.success_distance)
    assert set(info) >= {"distance", "is_success", "joints", "target"}
    env.close()


def test_reaching_the_target_succeeds_and_terminates():
    env = ReachEnv()
    env.reset(seed=2)
    goal = np.array([0.5, 1.0])
    env._target = env.renderer.end_position(goal)
    env._joints = goal - np.array([0.05, 0.0])  # one step of action 0.5 covers 0.05 rad
    _, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0], dtype=np.float32))
    assert info["is_success"] and terminated and not truncated
    assert info["distance"] < 1e-6 and reward == pytest.approx(-info["distance"])
    env.close()


def test_truncation_after_max_steps_and_joint_limits():
    env = ReachEnv(config=ReachConfig(max_steps=5))
    env.reset(seed=3)
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(np.ones(2, dtype=np.float32))
    assert truncated or terminated
    limits = np.radians([[-150, 150], [-100, 100]])
    for _ in range(40):
        env.step(np.ones(2, dtype=np.float32))
    assert np.all(env.state.joints <= limits[:, 1] + 1e-9)
    env.close()


def test_unknown_domain_lists_valid_ones():
    with pytest.raises(KeyError, match="valid domains: canonical, randomized, noisy, textured, heldout"):
        ReachEnv(domain="mars")


def test_targets_are_reachable():
    env = ReachEnv()
    rng = np.random.default_rng(0)
    for _ in range(20):
        state = env.renderer.sample_state(rng)
        assert np.linalg.norm(state.target) < 1.4 and state.target[2] > 0.0
    env.close()


def test_package_exports_registry():
    assert {"canonical", "randomized", "noisy", "heldout"} <= set(envs.available_domains())
