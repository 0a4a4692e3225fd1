"""The Avalanche benchmark built from the cached data."""

from __future__ import annotations

import numpy as np
import torch
from avalanche.benchmarks.utils import AvalancheDataset

from benchmark.data.stream import build_benchmark, joint_dataset


def test_streams_length_task_labels_and_samples(smoke_data):
    bm = build_benchmark(smoke_data)
    assert set(bm.streams) == {"train", "test"}
    for name, size in (("train", 48), ("test", 24)):
        stream = list(bm.streams[name])
        assert len(stream) == 3
        for t, exp in enumerate(stream):
            assert exp.current_experience == t and exp.task_label == t and exp.task_labels == [t]
            assert isinstance(exp.dataset, AvalancheDataset) and len(exp.dataset) == size
            x, y, aux, mask, label = exp.dataset[3]
            # uint8 samples: the minibatch becomes float on the device (benchmark.mapping.fastpath.FloatBatches)
            assert x.shape == y.shape == (3, 64, 64) and x.dtype == y.dtype == torch.uint8
            assert aux.shape == (5,) and label == t
            assert mask.shape == (64, 64) and mask.dtype == torch.uint8
            inputs, targets, aux_np, masks = smoke_data.task(name, t)
            assert torch.equal(x, torch.from_numpy(inputs[3]).permute(2, 0, 1))
            assert torch.equal(y, torch.from_numpy(targets[3]).permute(2, 0, 1))
            assert np.allclose(aux.numpy(), aux_np[3])
            assert torch.equal(mask, torch.from_numpy(masks[3]))


def test_test_streams_share_canonical_targets(smoke_data):
    test = list(build_benchmark(smoke_data).streams["test"])
    for i in (0, 5, 23):
        assert torch.equal(test[0].dataset[i][1], test[1].dataset[i][1])
        assert torch.equal(test[1].dataset[i][1], test[2].dataset[i][1])


def test_minibatches_collate(smoke_data):
    exp = list(build_benchmark(smoke_data).streams["train"])[1]
    loader = torch.utils.data.DataLoader(exp.dataset, batch_size=8, collate_fn=exp.dataset.collate_fn)
    x, y, aux, mask, t = next(iter(loader))
    assert x.shape == (8, 3, 64, 64) and y.shape == (8, 3, 64, 64) and aux.shape == (8, 5)
    assert mask.shape == (8, 64, 64)
    assert t.tolist() == [1] * 8


def test_joint_dataset_takes_a_third_of_each_task(smoke_data):
    joint = joint_dataset(smoke_data, seed=0)
    assert len(joint) == 48
    labels = [int(joint[i][-1]) for i in range(len(joint))]
    assert [labels.count(t) for t in range(3)] == [16, 16, 16]
    assert joint_dataset(smoke_data, seed=0)[20][0].equal(joint[20][0])
    # every joint sample is a real sample of its task
    x, _, aux, _, t = joint[20]
    matches = np.where(np.all(np.isclose(smoke_data.train_aux[t], aux.numpy()), axis=1))[0]
    assert len(matches) == 1
