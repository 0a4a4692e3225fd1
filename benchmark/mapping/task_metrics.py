"""What the agent needs of a reconstruction: where the target lands, and whether the arm is where it is.

Per-pixel MSE is dominated by the floor (~97% of the pixels) and hardly sees the target, which
covers ~12 pixels at 64x64; yet the agent needs the target to within about a pixel. These
measures compare a reconstruction with the canonical target image it should equal, using the
canonical image's segmentation mask (``envs.renderer.MASK_*``, rendered with it by PyBullet):

- **Target position, canonical side (exact):** the centroid of the mask's target pixels. An
  image whose target is hidden under the arm has none and is left out of the target figures.
- **Target position, reconstruction side (a detector):** the target is the only pure red thing
  in the canonical look (the floor is grey, the arm blue, grey and orange), so each pixel's
  *redness* ``R - 2.5 max(G, B)`` is the evidence: measured on 200 canonical renders it is at
  least 0.47 on every target pixel and at most -0.03 on every arm pixel (orange included;
  plain ``R - max(G, B)`` reaches 0.58 on the orange links), negative on the floor. The
  detector takes the reddest pixel; if its redness is below :data:`REDNESS_THRESHOLD` the
  target is *missing*; otherwise the position is the centroid of the pixels above the
  threshold within :func:`window_radius` pixels of that peak (so a red smear elsewhere does
  not drag it). On canonical renders it lands within a fraction of a pixel of the mask
  centroid (``tests/test_task_metrics.py``).
- **Target error:** the distance between the two positions in pixels and in metres at the
  target's height (a pixel spans ``2 (h - z) tan(fov / 2) / resolution`` metres there), so
  figures of different resolutions compare.
- **Arm IoU:** the reconstruction's arm is every pixel that differs from the canonical floor
  colour by more than :data:`ARM_THRESHOLD` in some channel and is not red; its intersection
  over union with the mask's arm pixels. The floor colour is read off the canonical image's
  floor pixels, so the measure holds for any canonical floor.

Everything here works on batches of tensors and returns per-image values; the Avalanche metric
(:class:`benchmark.mapping.metrics.MappingMetrics`) aggregates them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from benchmark.mapping.fastpath import to_float_images
from envs.renderer import MASK_ARM, MASK_FLOOR, MASK_TARGET, SceneConfig

REDNESS_THRESHOLD = 0.2
"""Redness ``R - 2.5 max(G, B)`` above which a pixel counts as target (canonical target pixels: >= 0.47)."""
ARM_THRESHOLD = 0.1
"""Largest channel difference from the floor colour above which a non-red pixel counts as arm."""


def window_radius(resolution: int) -> int:
    """Half-width in pixels of the detector's window around the reddest pixel: 4 at 64x64, wider than the
    largest target (7 px across when it is highest, nearest the camera)."""
    return max(2, round(4 * resolution / 64))


def redness(images: torch.Tensor) -> torch.Tensor:
    """``R - 2.5 max(G, B)`` per pixel, ``(N, H, W)``, of images ``(N, 3, H, W)`` (float in [0, 1] or uint8)."""
    x = to_float_images(images).float()
    return x[:, 0] - 2.5 * torch.maximum(x[:, 1], x[:, 2])


def _grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(height, dtype=torch.float32, device=device).view(1, height, 1)
    cols = torch.arange(width, dtype=torch.float32, device=device).view(1, 1, width)
    return rows, cols


def mask_centroids(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid ``(row, col)`` of each mask's target pixels, ``(N, 2)``, and whether it has any, ``(N,)``."""
    target = (masks == MASK_TARGET).float()
    count = target.sum(dim=(1, 2))
    rows, cols = _grid(masks.shape[1], masks.shape[2], masks.device)
    safe = count.clamp(min=1)
    centre = torch.stack([(target * rows).sum(dim=(1, 2)) / safe, (target * cols).sum(dim=(1, 2)) / safe], dim=1)
    return centre, count > 0


def detect_targets(images: torch.Tensor, threshold: float = REDNESS_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """The detector of the module docstring: positions ``(N, 2)`` (row, col) and whether found ``(N,)``."""
    red = redness(images)
    n, height, width = red.shape
    flat = red.reshape(n, -1)
    peak_value, peak = flat.max(dim=1)
    peak_row = (peak // width).float().view(n, 1, 1)
    peak_col = (peak % width).float().view(n, 1, 1)
    rows, cols = _grid(height, width, red.device)
    radius = window_radius(width)
    window = ((rows - peak_row).abs() <= radius) & ((cols - peak_col).abs() <= radius)
    weights = (window & (red > threshold)).float()
    total = weights.sum(dim=(1, 2)).clamp(min=1e-12)
    centre = torch.stack([(weights * rows).sum(dim=(1, 2)) / total, (weights * cols).sum(dim=(1, 2)) / total], dim=1)
    return centre, peak_value > threshold


def metres_per_pixel(scene: SceneConfig, heights: torch.Tensor) -> torch.Tensor:
    """Width in metres of one pixel at height ``heights`` (m) above the floor, seen by the canonical camera."""
    half = math.tan(math.radians(scene.fov_deg) / 2)
    return 2 * (scene.camera_height - heights.float()) * half / scene.resolution


def arm_iou(images: torch.Tensor, canonical: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """IoU, ``(N,)``, of the arm found in ``images`` (see the module docstring) with the masks' arm pixels.

    ``canonical`` are the canonical target images the masks belong to (for the floor colour).
    An image with no arm in either has IoU 1.
    """
    x = to_float_images(images).float()
    ref = to_float_images(canonical).float()
    floor_pixels = (masks == MASK_FLOOR).unsqueeze(1)
    count = floor_pixels.sum(dim=(2, 3)).clamp(min=1)
    floor = ((ref * floor_pixels).sum(dim=(2, 3)) / count).view(-1, 3, 1, 1)  # mean floor colour per image
    found = ((x - floor).abs().amax(dim=1) > ARM_THRESHOLD) & (redness(x) <= REDNESS_THRESHOLD)
    truth = masks == MASK_ARM
    inter = (found & truth).sum(dim=(1, 2)).float()
    union = (found | truth).sum(dim=(1, 2)).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


class TaskErrors(NamedTuple):
    """Per-image task measures of a batch of reconstructions (see the module docstring)."""

    visible: torch.Tensor
    """``(N,)`` bool: the canonical image shows the target (the target figures use only these)."""
    found: torch.Tensor
    """``(N,)`` bool: the detector found a target in the reconstruction."""
    error_px: torch.Tensor
    """``(N,)`` distance in pixels between the detected and the true target (meaningful where both)."""
    error_m: torch.Tensor
    """``(N,)`` the same distance in metres at the target's height."""
    arm_iou: torch.Tensor
    """``(N,)`` IoU of the reconstruction's arm with the canonical arm."""


@torch.no_grad()
def task_errors(
    recon: torch.Tensor, canonical: torch.Tensor, masks: torch.Tensor, target_heights: torch.Tensor, scene: SceneConfig
) -> TaskErrors:
    """Every measure of the module docstring for reconstructions ``recon`` of canonical images ``canonical``.

    ``masks`` are the canonical images' segmentation masks ``(N, H, W)``, ``target_heights`` the
    true target heights in metres ``(N,)`` (the auxiliary vector's third component).
    """
    truth, visible = mask_centroids(masks)
    detected, found = detect_targets(recon)
    error_px = (detected - truth).norm(dim=1)
    error_m = error_px * metres_per_pixel(scene, target_heights.to(error_px.device))
    return TaskErrors(visible, found, error_px, error_m, arm_iou(recon, canonical, masks))
