"""A picture of the data: for each task a row of inputs above a row of canonical targets (the paper's Fig. 2)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmark.common.io import atomic_path  # noqa: E402
from benchmark.data.generate import StreamData  # noqa: E402


def save_preview(
    data: StreamData, tasks: tuple[str, ...], path: str | os.PathLike[str], samples: int = 8, split: str = "test"
) -> None:
    """Write a grid of ``samples`` columns; rows alternate task input and canonical target.

    With ``split="test"`` every task shows the same scene states, so the columns line up.
    """
    samples = max(1, min(samples, data.test_inputs.shape[1] if split == "test" else data.train_inputs.shape[1]))
    rows = 2 * len(tasks)
    fig, axes = plt.subplots(rows, samples, figsize=(1.2 * samples + 1.6, 1.2 * rows), squeeze=False)
    for t, name in enumerate(tasks):
        inputs, targets = data.task(split, t)[:2]
        for row, images, label in (
            (2 * t, inputs, f"Task {t} input\n({name})"),
            (2 * t + 1, targets, "target\n(canonical)"),
        ):
            for col in range(samples):
                ax = axes[row][col]
                ax.imshow(images[col], interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            axes[row][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(f"{split} samples: each task's input above its canonical target", fontsize=9)
    fig.tight_layout()
    suffix = os.path.splitext(str(path))[1].lstrip(".") or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix, dpi=100)
    plt.close(fig)
