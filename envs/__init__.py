"""The reaching environment, its renderer and its visual domains.

Importing this package registers the gymnasium id ``ciim/Reach-v0``::

    import gymnasium as gym
    import envs
    env = gym.make("ciim/Reach-v0", domain="randomized")
"""

import gymnasium

from envs.domains import Domain, available_domains, get_domain, register_domain
from envs.reach_env import ReachConfig, ReachEnv
from envs.renderer import Renderer, SceneConfig, SceneState

ENV_ID = "ciim/Reach-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="envs.reach_env:ReachEnv")

__all__ = [
    "ENV_ID",
    "Domain",
    "ReachConfig",
    "ReachEnv",
    "Renderer",
    "SceneConfig",
    "SceneState",
    "available_domains",
    "get_domain",
    "register_domain",
]
