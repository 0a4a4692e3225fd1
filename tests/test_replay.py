"""Avalanche's replay machinery carries our (input, target image, aux, task) samples through intact."""

from __future__ import annotations

import torch
from avalanche.benchmarks.utils.data_loader import ReplayDataLoader

from benchmark.data.stream import build_benchmark
from strategies.er import SeededExperienceBalancedBuffer


class _Agent:
    pass


def test_replay_loader_keeps_image_targets_aux_and_masks(smoke_data):
    bm = build_benchmark(smoke_data)
    policy = SeededExperienceBalancedBuffer(max_size=20, seed=0)
    policy.post_adapt(_Agent(), bm.train_stream[0])
    assert len(policy.buffer) == 20
    loader = ReplayDataLoader(bm.train_stream[1].dataset, policy.buffer, batch_size=8, batch_size_mem=8, shuffle=True)
    x, y, aux, masks, t = next(iter(loader))
    assert x.shape == y.shape == (16, 3, 64, 64) and aux.shape == (16, 5)
    assert t[:8].tolist() == [1] * 8 and t[8:].tolist() == [0] * 8
    # Every replayed row is exactly a Task-0 training sample: input, target, aux and mask together.
    inputs = torch.from_numpy(smoke_data.train_inputs[0]).permute(0, 3, 1, 2)
    targets = torch.from_numpy(smoke_data.train_targets[0]).permute(0, 3, 1, 2)
    aux_all = torch.from_numpy(smoke_data.train_aux[0])
    masks_all = torch.from_numpy(smoke_data.train_masks[0])
    for row in range(8, 16):
        match = torch.nonzero((aux_all == aux[row]).all(dim=1)).flatten()
        assert len(match) == 1
        i = int(match)
        assert torch.equal(x[row], inputs[i]) and torch.equal(y[row], targets[i])
        assert torch.equal(masks[row], masks_all[i])


def test_seeded_buffer_is_a_function_of_the_seed(smoke_data):
    bm = build_benchmark(smoke_data)

    def kept(seed):
        policy = SeededExperienceBalancedBuffer(max_size=10, seed=seed)
        policy.post_adapt(_Agent(), bm.train_stream[0])
        policy.post_adapt(_Agent(), bm.train_stream[1])
        return [tuple(policy.buffer[i][2].tolist()) for i in range(len(policy.buffer))]

    assert kept(0) == kept(0) and kept(0) != kept(1)
