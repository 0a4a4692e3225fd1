"""Render the three-task data sets in worker processes.

Each sample is ``(input image, canonical target image, auxiliary vector, target mask)``: one
scene state rendered in the task's domain and in ``canonical``, and the segmentation of the
canonical render (which pixels are the arm and which the target), from PyBullet's
segmentation buffer of the same camera call. Every sample draws its scene state and its
appearance from its own ``numpy`` seed sequence keyed by ``(seed, split, task, index)``, so
the bytes do not depend on how samples are split across workers. The test scene states are
keyed without the task: all tasks share them, and so share one set of canonical targets.

Workers are processes holding one PyBullet client each (PyBullet clients are not
thread-safe and TinyRenderer is single-threaded). With ``workers=1`` everything runs in the
calling process.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from benchmark.common.device import available_cores
from benchmark.data.spec import DataSpec
from envs.domains import get_domain
from envs.effects import apply_effects
from envs.renderer import AUX_SIZE, Renderer, SceneState

CHUNK = 32
"""Samples per worker job: large enough to batch the post-processing, small enough to balance."""
_SPLIT_CODE = {"train": 0, "test": 1}


@dataclass
class StreamData:
    """All arrays of one generated benchmark, uint8 images ``(..., H, W, 3)``.

    ``train_*`` arrays have a leading task axis. The test split has per-task inputs but one
    shared set of targets and auxiliary vectors, because the test scene states are shared.
    """

    train_inputs: np.ndarray  # (T, N, H, W, 3)
    train_targets: np.ndarray  # (T, N, H, W, 3)
    train_aux: np.ndarray  # (T, N, AUX_SIZE) float32
    test_inputs: np.ndarray  # (T, M, H, W, 3)
    test_targets: np.ndarray  # (M, H, W, 3)
    test_aux: np.ndarray  # (M, AUX_SIZE) float32
    train_masks: np.ndarray  # (T, N, H, W) uint8 labels of the canonical targets (envs.renderer.MASK_*)
    test_masks: np.ndarray  # (M, H, W) uint8

    @staticmethod
    def names() -> tuple[str, ...]:
        return (
            "train_inputs", "train_targets", "train_aux", "test_inputs", "test_targets", "test_aux",
            "train_masks", "test_masks",
        )  # fmt: skip

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.names()}

    @property
    def num_tasks(self) -> int:
        return int(self.train_inputs.shape[0])

    def task(self, split: str, task: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(inputs, targets, aux, masks)`` of one task and split."""
        if split == "train":
            return self.train_inputs[task], self.train_targets[task], self.train_aux[task], self.train_masks[task]
        if split == "test":
            return self.test_inputs[task], self.test_targets, self.test_aux, self.test_masks
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def expected_shapes(spec: DataSpec) -> dict[str, tuple[int, ...]]:
    """Shape of every array of :class:`StreamData` for ``spec``."""
    t, n, m, r = len(spec.tasks), spec.n_train, spec.n_test, spec.scene.resolution
    return {
        "train_inputs": (t, n, r, r, 3),
        "train_targets": (t, n, r, r, 3),
        "train_aux": (t, n, AUX_SIZE),
        "test_inputs": (t, m, r, r, 3),
        "test_targets": (m, r, r, 3),
        "test_aux": (m, AUX_SIZE),
        "train_masks": (t, n, r, r),
        "test_masks": (m, r, r),
    }


class Job(NamedTuple):
    split: str
    task: int
    start: int
    stop: int
    with_targets: bool


class JobResult(NamedTuple):
    job: Job
    inputs: np.ndarray
    targets: np.ndarray | None
    masks: np.ndarray | None
    """Segmentation of ``targets`` (see :meth:`envs.renderer.Renderer.render_with_mask`)."""
    aux: np.ndarray
    renders: int


def state_seed(spec: DataSpec, split: str, task: int, index: int) -> np.random.SeedSequence:
    """Seed of the scene state of one sample (test states ignore the task: they are shared)."""
    key = [spec.seed, _SPLIT_CODE[split], index] if split == "test" else [spec.seed, 0, task, index]
    return np.random.SeedSequence(key)


def appearance_seed(spec: DataSpec, split: str, task: int, index: int) -> np.random.SeedSequence:
    """Seed of the domain appearance (camera, light, noise) of one sample."""
    return np.random.SeedSequence([spec.seed, 2 + _SPLIT_CODE[split], task, index])


def sample_scene(renderer: Renderer, spec: DataSpec, split: str, rng: np.random.Generator) -> SceneState:
    """One sample's scene state: an approach pose for ``spec.approach_fraction`` of the training
    samples (see :class:`~benchmark.data.spec.DataSpec`), else independent arm and target."""
    if spec.approach_fraction and split == "train" and rng.random() < spec.approach_fraction:
        return renderer.sample_approach_state(rng)
    return renderer.sample_state(rng)


def render_job(renderer: Renderer, spec: DataSpec, job: Job) -> JobResult:
    """Render the samples ``job.start:job.stop`` of one split and task."""
    domain = get_domain(spec.tasks[job.task])
    canonical_look = get_domain("canonical").sample(np.random.default_rng(0)).look
    count = job.stop - job.start
    res = spec.scene.resolution
    raw = np.empty((count, res, res, 3), dtype=np.uint8)
    targets = np.empty_like(raw) if job.with_targets else None
    masks = np.empty((count, res, res), dtype=np.uint8) if job.with_targets else None
    aux = np.empty((count, AUX_SIZE), dtype=np.float32)
    appearances = []
    renders = 0
    for k, index in enumerate(range(job.start, job.stop)):
        rng = np.random.default_rng(state_seed(spec, job.split, job.task, index))
        state = sample_scene(renderer, spec, job.split, rng)
        appearance = domain.sample(np.random.default_rng(appearance_seed(spec, job.split, job.task, index)))
        appearances.append(appearance)
        if targets is None or masks is None:
            raw[k] = renderer.render_look(state, appearance.look)
        elif appearance.look == canonical_look:  # the input is its own target: one render
            raw[k], masks[k] = renderer.render_with_mask(state, canonical_look)
            targets[k] = raw[k]
        else:
            raw[k] = renderer.render_look(state, appearance.look)
            targets[k], masks[k] = renderer.render_with_mask(state, canonical_look)
            renders += 1
        renders += 1
        aux[k] = state.aux_vector()
    inputs = apply_effects(
        raw, domain.effects, [a.effect_params for a in appearances], [a.noise_seed for a in appearances]
    )
    return JobResult(job, inputs, targets, masks, aux, renders)


def make_jobs(spec: DataSpec, chunk: int = CHUNK) -> list[Job]:
    """All jobs of a spec; the test targets are rendered with the first task only."""
    jobs = []
    for split, size in (("train", spec.n_train), ("test", spec.n_test)):
        for task in range(len(spec.tasks)):
            with_targets = split == "train" or task == 0
            jobs += [Job(split, task, s, min(s + chunk, size), with_targets) for s in range(0, size, chunk)]
    return jobs


_worker: tuple[Renderer, DataSpec] | None = None


def _init_worker(spec: DataSpec) -> None:
    global _worker
    import torch

    torch.set_num_threads(1)
    _worker = (Renderer(spec.scene), spec)


def _run_in_worker(job: Job) -> JobResult:
    assert _worker is not None, "worker not initialised"
    return render_job(_worker[0], _worker[1], job)


def _results(spec: DataSpec, jobs: list[Job], workers: int) -> Iterator[JobResult]:
    if workers == 1:
        renderer = Renderer(spec.scene)
        try:
            for job in jobs:
                yield render_job(renderer, spec, job)
        finally:
            renderer.close()
        return
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(workers, initializer=_init_worker, initargs=(spec,)) as pool:
        yield from pool.imap(_run_in_worker, jobs)


@dataclass(frozen=True)
class GenerationStats:
    """How a generation went: for logs, the manifest and ``bench/render.py``."""

    seconds: float
    workers: int
    samples: int
    renders: int
    """Calls of ``getCameraImage``."""
    images: int
    """Distinct images written (inputs plus the targets not shared with them)."""


def generate(spec: DataSpec, workers: int | None = None, progress: bool = True) -> tuple[StreamData, GenerationStats]:
    """Render every array of ``spec``; the result is identical for any ``workers``."""
    workers = available_cores() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    shapes = expected_shapes(spec)
    arrays = {
        name: np.empty(shape, dtype=np.float32 if name.endswith("aux") else np.uint8) for name, shape in shapes.items()
    }
    jobs = make_jobs(spec)
    total = sum(j.stop - j.start for j in jobs)
    renders = images = 0
    start = time.perf_counter()
    with tqdm(total=total, desc="rendering", unit="img", disable=not progress, file=sys.stderr) as bar:
        for result in _results(spec, jobs, workers):
            job = result.job
            sl = slice(job.start, job.stop)
            arrays[f"{job.split}_inputs"][job.task, sl] = result.inputs
            images += len(result.inputs)
            if job.split == "train":
                arrays["train_aux"][job.task, sl] = result.aux
                if result.targets is not None:
                    arrays["train_targets"][job.task, sl] = result.targets
                    arrays["train_masks"][job.task, sl] = result.masks
            elif result.targets is not None:
                arrays["test_targets"][sl] = result.targets
                arrays["test_masks"][sl] = result.masks
                arrays["test_aux"][sl] = result.aux
            if result.targets is not None and spec.tasks[job.task] != "canonical":
                images += len(result.targets)
            renders += result.renders
            bar.update(job.stop - job.start)
    stats = GenerationStats(time.perf_counter() - start, workers, total, renders, images)
    return StreamData(**arrays), stats
