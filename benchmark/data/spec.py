"""The data spec: everything that determines the bytes of a generated data set.

A :class:`DataSpec` holds the scene geometry, the task domains, the sizes and the seed, so it
is also the data cache's key (:mod:`benchmark.data.cache`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from envs.domains import get_domain
from envs.renderer import SceneConfig

TASK_DOMAINS: tuple[str, ...] = ("canonical", "randomized", "noisy")
"""Domain of Task 0, 1 and 2, as in the paper."""


@dataclass(frozen=True)
class DataSpec:
    """What to generate; two equal specs always give byte-identical data."""

    scene: SceneConfig = field(default_factory=SceneConfig)
    """Camera, resolution and arm geometry."""
    tasks: tuple[str, ...] = TASK_DOMAINS
    """Domain of each task, in stream order; the targets are always ``canonical``."""
    n_train: int = 2000
    """Training samples per task."""
    n_test: int = 500
    """Test samples per task; the test scene states are shared by all tasks."""
    seed: int = 0
    """Seed of the scene states and appearances (independent of the training seed)."""
    approach_fraction: float = 0.0
    """Fraction of the *training* scenes whose arm is about to reach the target
    (:meth:`~envs.renderer.Renderer.sample_approach_state`) instead of posed independently of it,
    as the paper's scenes are. The closed loop spends its last steps in such poses, where a
    mapping trained on independent poses draws the arm's end onto the target. Test scenes
    stay independent, so test figures compare across values. Left out of :meth:`to_dict` at 0,
    so the keys of data sets made before the option existed still hold."""

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_test < 1:
            raise ValueError(f"n_train and n_test must be positive, got {self.n_train} and {self.n_test}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if not self.tasks:
            raise ValueError("at least one task is needed")
        if not 0.0 <= self.approach_fraction <= 1.0:
            raise ValueError(f"approach_fraction must be in [0, 1], got {self.approach_fraction}")
        for name in self.tasks:
            get_domain(name)  # raises with the list of valid names

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists); ``approach_fraction`` only where it is not 0."""
        data = dataclasses.asdict(self)
        if data["approach_fraction"] == 0.0:
            del data["approach_fraction"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSpec:
        """Inverse of :meth:`to_dict`."""
        scene: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["scene"].items()}
        return cls(
            scene=SceneConfig(**scene),
            tasks=tuple(data["tasks"]),
            n_train=int(data["n_train"]),
            n_test=int(data["n_test"]),
            seed=int(data["seed"]),
            approach_fraction=float(data.get("approach_fraction", 0.0)),
        )
