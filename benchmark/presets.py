"""The named presets: ``smoke`` for tests, ``quick`` (the default) for a laptop, ``paper`` for the paper's sizes.

A :class:`Preset` names a size of the whole benchmark: images per task and epochs per task,
from which it makes the :class:`~benchmark.data.spec.DataSpec` and the
:class:`~benchmark.continual.config.TrainConfig` of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmark.continual.config import TrainConfig
from benchmark.data.spec import DataSpec
from envs.renderer import SceneConfig


@dataclass(frozen=True)
class Preset:
    """A named size of the whole benchmark."""

    name: str
    n_train: int
    """Training images per task."""
    n_test: int
    """Test images per task."""
    epochs: tuple[int, int, int]
    """Epochs on Task 0, 1 and 2 (the paper: 250/100/100); a longer stream gives every later
    task the epochs of Task 1."""

    def train_config(self, tasks: int = 3, **overrides: Any) -> TrainConfig:
        """This preset's training config for a stream of ``tasks`` tasks; ``overrides`` that are
        not None replace fields (``epochs`` as :func:`expand_epochs` reads it)."""
        epochs = overrides.pop("epochs", None)
        values: dict[str, Any] = {"epochs": expand_epochs(epochs or self.epochs, tasks, given=epochs is not None)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig(**values)

    def data_spec(self, **overrides: Any) -> DataSpec:
        """The data spec of this preset; ``overrides`` replace fields (``resolution`` goes to the scene)."""
        resolution = overrides.pop("resolution", None)
        scene = SceneConfig() if resolution is None else SceneConfig(resolution=resolution)
        values: dict[str, Any] = {"scene": scene, "n_train": self.n_train, "n_test": self.n_test}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return DataSpec(**values)


def expand_epochs(epochs: tuple[int, ...], tasks: int, given: bool = True) -> tuple[int, ...]:
    """Epochs per task of a ``tasks``-task stream: one value per task as is, one value for every
    task, or two values (the first task, then every later one). A preset's three values serve a
    stream of any length (its first, then its second for every later task)."""
    if len(epochs) == tasks:
        return tuple(epochs)
    if len(epochs) == 1:
        return tuple(epochs) * tasks
    if len(epochs) == 2 or not given:
        return (epochs[0], *([epochs[1]] * (tasks - 1)))[:tasks]
    raise ValueError(
        f"--epochs needs one value per task ({tasks}), one value for all, or two (the first task, then the rest); "
        f"got {len(epochs)}"
    )


PRESETS: dict[str, Preset] = {
    "smoke": Preset("smoke", n_train=48, n_test=24, epochs=(1, 1, 1)),
    "quick": Preset("quick", n_train=2000, n_test=500, epochs=(25, 10, 10)),
    "paper": Preset("paper", n_train=10000, n_test=1000, epochs=(250, 100, 100)),
}
DEFAULT_PRESET = "quick"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ``KeyError`` lists the valid names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}") from None
