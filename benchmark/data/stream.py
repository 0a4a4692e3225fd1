"""The Avalanche benchmark: a train and a test stream of three experiences, one per task.

Built with Avalanche's own API (``benchmark_from_datasets`` then ``with_task_labels``). Each
experience's dataset is an ``AvalancheDataset`` whose samples are
``(input, canonical_target, aux, mask, task_label)``: the images as uint8 tensors ``(3, H, W)``
(turned into float in ``[0, 1]`` a whole minibatch at a time, on the device, by
:class:`benchmark.mapping.fastpath.FloatBatches` or by the model itself), ``aux`` a float vector
(target x, y, z, joint 0, joint 1). Avalanche's supervised templates read ``mbatch[0]`` as
the input, ``mbatch[1]`` as the target and ``mbatch[-1]`` as the task label, so the canonical
target travels where a class label would, the auxiliary vector is ``mbatch[2]`` and the
canonical target's segmentation mask (uint8 ``(H, W)``, labels ``envs.renderer.MASK_*``) is
``mbatch[3]``, for the foreground-weighted loss and the task metrics.
"""

from __future__ import annotations

import numpy as np
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.generic_scenario import CLScenario
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.benchmarks.utils.data_attribute import TaskLabels
from torch.utils.data import Dataset

from benchmark.data.generate import StreamData


class ImageMappingDataset(Dataset):
    """``(input, target, aux, mask)`` samples over uint8 image arrays ``(N, H, W, 3)`` and masks ``(N, H, W)``.

    The images stay uint8 in memory and in the samples (4x smaller than float to hold, collate
    and copy); nothing is converted per sample.
    """

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, aux: np.ndarray, masks: np.ndarray) -> None:
        if not len(inputs) == len(targets) == len(aux) == len(masks):
            raise ValueError(
                f"length mismatch: {len(inputs)} inputs, {len(targets)} targets, {len(aux)} aux, {len(masks)} masks"
            )
        self.inputs = torch.from_numpy(np.ascontiguousarray(inputs)).permute(0, 3, 1, 2)
        self.targets = torch.from_numpy(np.ascontiguousarray(targets)).permute(0, 3, 1, 2)
        self.aux = torch.from_numpy(np.ascontiguousarray(aux, dtype=np.float32))
        self.masks = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.uint8))

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index], self.aux[index], self.masks[index]


def task_dataset(
    inputs: np.ndarray, targets: np.ndarray, aux: np.ndarray, masks: np.ndarray, task_label: int
) -> AvalancheDataset:
    """One task's ``AvalancheDataset`` with its task label appended to every sample."""
    base = ImageMappingDataset(inputs, targets, aux, masks)
    return AvalancheDataset([base], data_attributes=[TaskLabels([task_label] * len(base))])


def build_benchmark(data: StreamData) -> CLScenario:
    """The three-experience train and test streams, with task labels 0, 1, 2."""
    streams = {
        split: [task_dataset(*data.task(split, t), task_label=t) for t in range(data.num_tasks)]
        for split in ("train", "test")
    }
    return with_task_labels(benchmark_from_datasets(**streams))


def joint_dataset(data: StreamData, seed: int = 0) -> AvalancheDataset:
    """One third of each task's training set (a seeded subset), the same size as one task.

    Each sample keeps its own task label. Used by the joint-training baseline.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x10147]))
    n = data.train_inputs.shape[1]
    parts = []
    for t in range(data.num_tasks):
        share = n // data.num_tasks + (1 if t < n % data.num_tasks else 0)
        index = np.sort(rng.choice(n, size=share, replace=False))
        inputs, targets, aux, masks = (a[index] for a in data.task("train", t))
        parts.append(task_dataset(inputs, targets, aux, masks, task_label=t))
    return AvalancheDataset(parts)
