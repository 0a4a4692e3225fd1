"""The agent's image encoder: a small CNN with coordinate channels (CoordConv).

stable-baselines3's default ``NatureCNN`` (Mnih et al. 2015) is sized for 84x84 Atari frames
and learns slowly here. The reaching task is about *where* two small things are (the red
target and the arm's end), so the encoder appends two channels holding each pixel's x and y
in ``[-1, 1]`` (Liu et al. 2018, "An intriguing failing of convolutional neural networks and
the CoordConv solution"), which lets the convolutions read positions directly.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class CoordCNN(BaseFeaturesExtractor):
    """Four stride-2 3x3 convolutions (16-32-32-32 channels) over the image plus coordinate channels,
    then one linear layer. About 3M multiply-adds per 64x64 image, a quarter of a 32-64-64-64
    version with a 5x5 first layer, which learned no faster here (PPO's updates, not the
    rendering, were the bottleneck on 2 cores).

    Args:
        observation_space: channel-first image space (stable-baselines3 transposes HWC for us).
        features_dim: size of the output feature vector.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128) -> None:
        super().__init__(observation_space, features_dim)
        channels, height, width = observation_space.shape
        self.cnn = nn.Sequential(
            nn.Conv2d(channels + 2, 16, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, channels + 2, height, width)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        coords: torch.Tensor = self.coords  # type: ignore[assignment]
        coords = coords.expand(observations.shape[0], -1, -1, -1).to(observations.dtype)
        return self.linear(self.cnn(torch.cat([observations, coords], dim=1)))
