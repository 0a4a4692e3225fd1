"""Rendering throughput: raw getCameraImage vs dataset generation, and 1 vs 2 workers.

    python bench/render.py [--n-train 600 --n-test 150]

Prints, measured side by side in one run:
- raw ``getCameraImage`` frames/s for one 64x64 canonical render (reference);
- the share of the single-worker generation's wall time spent inside ``getCameraImage``
  (the same calls, timed in place), i.e. generation renders/s per worker divided by raw
  renders/s on the very same mix of scenes (goal: at least 0.8);
- generation renders/s with 1 and with 2 workers, and the speed-up (goal: at least 1.7x).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", message="no QP solver found")

import numpy as np  # noqa: E402
import pybullet  # noqa: E402

from benchmark.data.generate import generate  # noqa: E402
from benchmark.presets import get_preset  # noqa: E402
from envs import Renderer, get_domain  # noqa: E402


def raw_fps(frames: int = 400) -> float:
    renderer = Renderer()
    state = renderer.sample_state(np.random.default_rng(0))
    look = get_domain("canonical").sample(np.random.default_rng(0)).look
    renderer.render_look(state, look)  # place the scene
    view, res = renderer.view_matrix(look), renderer.scene.resolution
    start = time.perf_counter()
    for _ in range(frames):
        pybullet.getCameraImage(
            res,
            res,
            view,
            renderer.projection,
            renderer=pybullet.ER_TINY_RENDERER,
            flags=pybullet.ER_NO_SEGMENTATION_MASK,
            physicsClientId=renderer.client_id,
        )
    fps = frames / (time.perf_counter() - start)
    renderer.close()
    return fps


def timed_generation(spec) -> tuple[float, float, int]:
    """Generate with one in-process worker, timing every getCameraImage call in place."""
    original = pybullet.getCameraImage
    spent = [0.0]

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t

    pybullet.getCameraImage = timed
    try:
        _, stats = generate(spec, workers=1, progress=False)
    finally:
        pybullet.getCameraImage = original
    return stats.seconds, spent[0], stats.renders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-test", type=int, default=150)
    args = parser.parse_args(argv)
    spec = replace(get_preset("quick").data_spec(), n_train=args.n_train, n_test=args.n_test)

    fps = raw_fps()
    wall, in_camera, renders = timed_generation(spec)
    _, one = generate(spec, workers=1, progress=False)
    _, two = generate(spec, workers=2, progress=False)
    r1, r2 = one.renders / one.seconds, two.renders / two.seconds
    raw_mix = renders / in_camera
    print(f"data: {spec.n_train} train + {spec.n_test} test samples per task, {renders} renders, {one.images} images")
    print(f"raw getCameraImage, one 64x64 canonical render:   {fps:8.1f} frames/s")
    print(f"raw getCameraImage, the generation's scene mix:   {raw_mix:8.1f} frames/s")
    for label, stats, rate in (("1 worker: ", one, r1), ("2 workers:", two, r2)):
        images = stats.images / stats.seconds
        print(f"generation, {label}                            {rate:8.1f} renders/s ({images:.1f} images/s)")
    print(f"ratio generation per worker / raw (same mix):     {in_camera / wall:8.2f}   (goal >= 0.8)")
    print(f"ratio generation per worker / raw canonical:      {r1 / fps:8.2f}   (scene mix has shadows)")
    print(f"speed-up 1 -> 2 workers:                          {r2 / r1:8.2f}x  (goal >= 1.7)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
